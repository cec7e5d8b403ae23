"""Deterministic names of a pool's WarmPods, their pods, and the pool's own children (pure).

WarmPods are named by **slot**: ``<pool>-<index>``. Every replica computes the same names for
the same free slots, so two replicas filling one pool create the same objects and the second
create answers AlreadyExists: duplicate creation is impossible by construction, whatever each
replica's view. When the pool has a ``maxSize``, indices run from 0 to ``maxSize - 1`` only,
so the total can never exceed it either.

A WarmPod's pod is ``<warmpod>-<first 8 characters of the WarmPod's UID>``: a re-created slot
(same WarmPod name, new UID) never collides with its predecessor's pod while that one is
still being deleted, and a repeated create of the same WarmPod's pod is idempotent.

Every name is at most 63 characters of ``[a-z0-9.-]`` (valid for pods, ServiceAccounts,
NetworkPolicies and WarmPods, and short enough to be a label value); a longer one keeps a
readable prefix and adds 10 hex characters of a SHA-256. No I/O.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

MAX_LENGTH: Final = 63
_HASH_LENGTH: Final = 10
_UID_PREFIX_LENGTH: Final = 8
_VALID = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")


def bounded(stem: str, *, suffix: str) -> str:
    """``<stem>-<suffix>`` if that is a valid name, else ``<stem prefix>-<hash>-<suffix>``."""
    if not stem or not suffix:
        raise ValueError("stem and suffix are required")
    plain = f"{stem}-{suffix}"
    if len(plain) <= MAX_LENGTH and _VALID.match(plain):
        return plain
    digest = hashlib.sha256(stem.encode()).hexdigest()[:_HASH_LENGTH]
    room = MAX_LENGTH - len(suffix) - _HASH_LENGTH - 2
    readable = re.sub(r"[^-a-z0-9.]", "-", stem.lower())[:room].strip("-.")
    head = f"{readable}-" if readable else ""
    return f"{head}{digest}-{suffix}"


def warm_pod_name(pool_name: str, *, slot: int) -> str:
    """The WarmPod occupying ``slot`` of the pool."""
    if slot < 0:
        raise ValueError(f"slot {slot} must be >= 0")
    return bounded(pool_name, suffix=str(slot))


def pod_name(warm_pod_name: str, *, uid: str) -> str:
    """The pod of the WarmPod ``warm_pod_name`` with UID ``uid``."""
    token = re.sub(r"[^a-z0-9]", "", uid.lower())[:_UID_PREFIX_LENGTH]
    if not token:
        raise ValueError("a WarmPod UID is required")
    return bounded(warm_pod_name, suffix=token)


def service_account_name(pool_name: str) -> str:
    """The pool's ServiceAccount (no token, no bindings): the identity of its warm pods."""
    return bounded(f"warmpool-{pool_name}", suffix="pods")


def policy_name(pool_name: str) -> str:
    """The pool's default-deny NetworkPolicy for its unclaimed warm pods."""
    return bounded(f"warmpool-{pool_name}", suffix="deny")


def is_valid(name: str) -> bool:
    """Whether ``name`` is a name this module could have produced (length and characters)."""
    return len(name) <= MAX_LENGTH and _VALID.match(name) is not None
