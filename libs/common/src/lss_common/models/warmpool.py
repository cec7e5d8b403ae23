"""The WarmPool kind: pre-started pods of one configuration.

Schema: ``deploy/crds/warmpools.yaml``.

Pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from lss_common.models import codec, kinds, meta, parts

KIND: Final = kinds.WARM_POOL.kind


class PreloadScript(meta.Model):
    """A named script run in each warm pod before it becomes Ready.

    ``language`` (``shell``, ``python``, ``nodejs``, ``ruby``) picks the interpreter; unset
    means the runtime's language. ``timeout_seconds`` unset means the pool manager's default.
    """

    name: str
    content: str
    language: str | None = None
    timeout_seconds: int | None = None


class AutoScaling(meta.Model):
    """Utilization-driven growth above minSize (up to maxSize)."""

    enabled: bool | None = None
    target_utilization: int | None = None
    scale_down_delay: int | None = None


class WarmPoolSpec(meta.Model):
    """Desired pool. Durations (``ttl``, ``max_pod_age``, ...) are in seconds."""

    runtime: str
    min_size: int
    max_size: int | None = None
    security_level: str | None = None
    ttl: int | None = None
    resources: parts.ResourceLimits | None = None
    profile_ref: parts.ProfileRef | None = None
    preload_packages: list[str] | None = None
    preload_scripts: list[PreloadScript] | None = None
    auto_scaling: AutoScaling | None = None
    disable_pod_recycling: bool | None = None
    recycle_high_security_pods: bool | None = None
    max_pod_age: int | None = None
    max_pod_recycle_count: int | None = None
    min_pod_runtime_before_recycle: int | None = None


class PreloadStatus(meta.Model):
    """Recent preload failures of the pool's WarmPods (the creation backoff's state)."""

    consecutive_failures: int | None = None
    last_failure_time: str | None = None
    last_failure_message: str | None = None


class PodFailures(meta.Model):
    """Recent failures of the pool's WarmPods before or while Ready (their pod failed: an
    image that cannot be pulled, a crash loop; or never became Ready in time): the state of
    the creation backoff that keeps a broken pool from replacing its pods in a hot loop."""

    consecutive_failures: int | None = None
    last_failure_time: str | None = None
    last_failure_reason: str | None = None
    last_failure_message: str | None = None
    last_failed_warm_pod_uid: str | None = msgspec.field(default=None, name="lastFailedWarmPodUID")


class WarmPoolStatus(meta.Model):
    """Observed pool, written only by the pool manager via the status subresource."""

    available_pods: int | None = None
    assigned_pods: int | None = None
    pending_pods: int | None = None
    last_scale_time: str | None = None
    preload: PreloadStatus | None = None
    pod_failures: PodFailures | None = None
    observed_generation: int | None = None
    conditions: list[meta.Condition] | None = None


class WarmPool(meta.TopLevel, kw_only=True):
    """A WarmPool object as stored by the API server."""

    api_version: str = kinds.API_VERSION
    kind: str = KIND
    metadata: meta.ObjectMeta = msgspec.field(default_factory=meta.ObjectMeta)
    spec: WarmPoolSpec
    status: WarmPoolStatus | msgspec.UnsetType = msgspec.UNSET


class WarmPoolList(meta.TopLevel, kw_only=True):
    """A list response (``GET .../warmpools``)."""

    api_version: str = kinds.API_VERSION
    kind: str = f"{KIND}List"
    metadata: meta.ListMeta = msgspec.field(default_factory=meta.ListMeta)
    items: list[WarmPool] = msgspec.field(default_factory=list)


def status_of(obj: WarmPool) -> WarmPoolStatus:
    """The object's status, or an empty one when the API server has none yet."""
    return obj.status if isinstance(obj.status, WarmPoolStatus) else WarmPoolStatus()


def decode(data: bytes | str) -> WarmPool:
    """Decode a WarmPool from JSON."""
    return codec.decode(data, model=WarmPool)


def encode(obj: WarmPool) -> bytes:
    """Encode a WarmPool to JSON."""
    return codec.encode(obj)


def from_dict(data: Mapping[str, Any]) -> WarmPool:
    """Convert a parsed WarmPool (e.g. from kubernetes_asyncio) into the model."""
    return codec.from_dict(data, model=WarmPool)
