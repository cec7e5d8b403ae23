"""The WarmPod kind: one pre-started pod of a pool, and the record it is claimed through.

Schema: ``deploy/crds/warmpods.yaml``.

Pure data: no I/O. A claim is one compare-and-swap on the status (Ready to Assigned with
``assigned_to`` = the sandbox's UID) carrying the resourceVersion it read.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from lss_common.models import codec, kinds, meta, parts

KIND: Final = kinds.WARM_POD.kind


class Phase(enum.StrEnum):
    """Lifecycle phase of a warm pod (``status.phase``)."""

    PENDING = "Pending"
    READY = "Ready"
    ASSIGNED = "Assigned"
    TERMINATING = "Terminating"
    FAILED = "Failed"


class PoolRef(meta.Model):
    """The WarmPool a warm pod belongs to; ``namespace`` unset means the warm pod's."""

    name: str
    namespace: str | None = None


class WarmPodResources(meta.Model):
    """Effective limits the pod was built with: all three always resolved."""

    cpu: str
    memory: str
    ephemeral_storage: str


class WarmPodSpec(meta.Model):
    """The pool and the effective configuration the pod was built with (immutable)."""

    pool_ref: PoolRef
    runtime: str
    security_level: str
    resources: WarmPodResources
    profile_ref: parts.ProfileRef | None = None


class WarmPodStatus(meta.Model):
    """Lifecycle; ``last_heartbeat`` lives here, not in spec, so status writes keep it."""

    phase: str | None = None
    pod_name: str | None = None
    pod_namespace: str | None = None
    pod_uid: str | None = msgspec.field(default=None, name="podUID")
    """The pod as its creator stored it (``lss_common.logic.pod_records``): its UID …"""
    pod_spec_hash: str | None = None
    """… and the hash of its spec; a claim adopts only the pod that matches both."""
    assigned_to: str | None = None
    assigned_at: str | None = None
    last_heartbeat: str | None = None
    recycle_count: int | None = None
    observed_generation: int | None = None
    conditions: list[meta.Condition] | None = None


class WarmPod(meta.TopLevel, kw_only=True):
    """A WarmPod object as stored by the API server."""

    api_version: str = kinds.API_VERSION
    kind: str = KIND
    metadata: meta.ObjectMeta = msgspec.field(default_factory=meta.ObjectMeta)
    spec: WarmPodSpec
    status: WarmPodStatus | msgspec.UnsetType = msgspec.UNSET


class WarmPodList(meta.TopLevel, kw_only=True):
    """A list response (``GET .../warmpods``)."""

    api_version: str = kinds.API_VERSION
    kind: str = f"{KIND}List"
    metadata: meta.ListMeta = msgspec.field(default_factory=meta.ListMeta)
    items: list[WarmPod] = msgspec.field(default_factory=list)


def status_of(obj: WarmPod) -> WarmPodStatus:
    """The object's status, or an empty one when the API server has none yet."""
    return obj.status if isinstance(obj.status, WarmPodStatus) else WarmPodStatus()


def decode(data: bytes | str) -> WarmPod:
    """Decode a WarmPod from JSON."""
    return codec.decode(data, model=WarmPod)


def encode(obj: WarmPod) -> bytes:
    """Encode a WarmPod to JSON."""
    return codec.encode(obj)


def from_dict(data: Mapping[str, Any]) -> WarmPod:
    """Convert a parsed WarmPod (e.g. from kubernetes_asyncio) into the model."""
    return codec.from_dict(data, model=WarmPod)
