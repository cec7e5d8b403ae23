"""Deterministic names of a sandbox's children, valid as DNS-1035 labels (63 characters).

Every child is created under a name computed from the sandbox's name alone, so a create can
be repeated safely (it answers AlreadyExists) and any replica finds the same objects. All
names are DNS-1035 labels, the strictest form among the kinds involved (a Service name must
start with a letter and may not contain dots), so one rule serves every kind:

- ``sandbox-<name>[-<suffix>]`` when that fits in 63 characters and the sandbox name has no
  dot (a Sandbox name is a DNS *subdomain*: up to 253 characters, dots allowed);
- otherwise ``sandbox-<name, dots as hyphens, truncated>-<10 hex of sha256(name)>[-<suffix>]``.

The pod, Service and ServiceAccount share the plain name (different kinds never clash); the
claim and the policies add a suffix without a hyphen, so two untruncated names of one kind
never belong to different sandboxes. A hashed name can in principle equal another sandbox's
untruncated name (a crafted sandbox name); the planner therefore never adopts a child that
is not labelled with its own sandbox's UID.

Pure: no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import re
from typing import Final

PREFIX: Final = "sandbox-"
MAX_NAME_LENGTH: Final = 63
_HASH_LENGTH: Final = 10
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_UNSAFE = re.compile(r"[^-a-z0-9]")


class Policy(enum.StrEnum):
    """The sandbox's network policies; the value is the name's suffix."""

    DENY = "deny"
    """Default deny, ingress and egress, with egress to the cluster DNS and ingress from the
    LLMSafeSpace API to the agent port (the allowances every sandbox has)."""
    INGRESS = "ingress"
    """Ingress opened by networkAccess.ingress or profile CIDR rules."""
    EGRESS = "egress"
    """Egress by resolved domain addresses (ipblock mode) and profile CIDR rules."""
    FQDN = "fqdn"
    """CiliumNetworkPolicy toFQDNs egress (Cilium mode)."""


DATA_SUFFIX: Final = "data"


def child_name(sandbox_name: str, *, suffix: str = "") -> str:
    """The name of a child of the sandbox ``sandbox_name``; ``suffix`` has no hyphen."""
    if not sandbox_name:
        raise ValueError("a sandbox name is required")
    if "-" in suffix:
        raise ValueError(f"suffix {suffix!r} must not contain a hyphen")
    tail = f"-{suffix}" if suffix else ""
    plain = f"{PREFIX}{sandbox_name}{tail}"
    if len(plain) <= MAX_NAME_LENGTH and _DNS_1035.match(plain):
        return plain
    digest = hashlib.sha256(sandbox_name.encode()).hexdigest()[:_HASH_LENGTH]
    room = MAX_NAME_LENGTH - len(PREFIX) - 1 - _HASH_LENGTH - len(tail)
    # Dots (and anything else a label forbids) become hyphens; the hash keeps the result
    # unique, the readable part only helps a human find the sandbox.
    readable = _UNSAFE.sub("-", sandbox_name.lower())[:room].strip("-")
    stem = f"{PREFIX}{readable}-" if readable else PREFIX
    return f"{stem}{digest}{tail}"


def pod_name(sandbox_name: str) -> str:
    """The sandbox's pod."""
    return child_name(sandbox_name)


def service_name(sandbox_name: str) -> str:
    """The sandbox's ClusterIP Service (its DNS name is the endpoint); same as the pod's."""
    return child_name(sandbox_name)


WARM_SERVICE_PREFIX: Final = "warm-"


def warm_service_name(pod_name: str) -> str:
    """The Service a warm pod is prepared with, which a sandbox adopting the pod keeps:
    ``warm-<pod name>`` when that is a DNS-1035 label, else a readable prefix and a hash.

    Always ``warm-…``, never ``sandbox-…``: it cannot collide with a sandbox's own Service.
    """
    if not pod_name:
        raise ValueError("a pod name is required")
    plain = f"{WARM_SERVICE_PREFIX}{pod_name}"
    if len(plain) <= MAX_NAME_LENGTH and _DNS_1035.match(plain):
        return plain
    digest = hashlib.sha256(pod_name.encode()).hexdigest()[:_HASH_LENGTH]
    room = MAX_NAME_LENGTH - len(WARM_SERVICE_PREFIX) - 1 - _HASH_LENGTH
    readable = _UNSAFE.sub("-", pod_name.lower())[:room].strip("-")
    stem = f"{WARM_SERVICE_PREFIX}{readable}-" if readable else WARM_SERVICE_PREFIX
    return f"{stem}{digest}"


def service_account_name(sandbox_name: str) -> str:
    """The sandbox's own ServiceAccount (no token mounted); same as the pod's."""
    return child_name(sandbox_name)


def claim_name(sandbox_name: str) -> str:
    """The sandbox's own PersistentVolumeClaim (mounted at /data)."""
    return child_name(sandbox_name, suffix=DATA_SUFFIX)


def policy_name(sandbox_name: str, *, policy: Policy) -> str:
    """The name of one of the sandbox's network policies."""
    return child_name(sandbox_name, suffix=policy.value)


def isolation_namespace(sandbox_uid: str, *, prefix: str) -> str:
    """The namespace of a sandbox under namespace-per-sandbox isolation."""
    name = f"{prefix}{sandbox_uid.lower()}"
    if len(name) > MAX_NAME_LENGTH or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z", name):
        raise ValueError(f"isolation namespace {name!r} is not a valid namespace name")
    return name


def is_dns_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1035 label (what every child name must be)."""
    return len(name) <= MAX_NAME_LENGTH and _DNS_1035.match(name) is not None
