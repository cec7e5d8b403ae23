"""The Sandbox kind: one isolated pod running LLM-written code.

Schema: ``deploy/crds/sandboxes.yaml``.

Pure data: no I/O. ``spec.timeout`` is the sandbox's lifetime in seconds from Running.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from lss_common.models import codec, kinds, meta, parts

KIND: Final = kinds.SANDBOX.kind
DEFAULT_TIMEOUT_SECONDS: Final = 300


class Phase(enum.StrEnum):
    """Lifecycle phase of a sandbox (``status.phase``)."""

    PENDING = "Pending"
    CREATING = "Creating"
    RUNNING = "Running"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"
    FAILED = "Failed"


class SandboxResources(parts.ResourceLimits):
    """Container limits plus CPU pinning."""

    cpu_pinning: bool | None = None


class EgressRule(meta.Model):
    """One domain the sandbox may connect to, on the listed ports (TCP 443 and 80 if none)."""

    domain: str
    ports: list[parts.PortRule] | None = None


class NetworkAccess(meta.Model):
    """Allowed traffic; everything else is denied."""

    egress: list[EgressRule] | None = None
    ingress: bool | None = None


class Filesystem(meta.Model):
    """Root filesystem mode and the paths mounted writable."""

    read_only_root: bool | None = None
    writable_paths: list[str] | None = None


class SharedVolume(meta.Model):
    """An existing PersistentVolumeClaim mounted into the sandbox (never deleted by us)."""

    claim_name: str
    mount_path: str
    read_only: bool | None = None


class Storage(meta.Model):
    """The sandbox's own persistent volume (at /data) and shared claims."""

    persistent: bool | None = None
    volume_size: str | None = None
    storage_class: str | None = None
    shared_volumes: list[SharedVolume] | None = None


class SecurityContext(meta.Model):
    """Process identity and seccomp profile of the sandbox container."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    seccomp_profile: parts.SecurityProfile | None = None


class SandboxSpec(meta.Model):
    """Desired sandbox. Immutable except ``timeout`` and ``network_access`` (CEL-enforced)."""

    runtime: str
    security_level: str | None = None
    timeout: int | None = None
    resources: SandboxResources | None = None
    network_access: NetworkAccess | None = None
    filesystem: Filesystem | None = None
    storage: Storage | None = None
    security_context: SecurityContext | None = None
    profile_ref: parts.ProfileRef | None = None


class WarmPodRef(meta.Model):
    """The WarmPod a sandbox claimed (warm start)."""

    name: str
    namespace: str | None = None


class ResourceUsage(meta.Model):
    """Observed usage as quantity strings, when a metrics source reports it."""

    cpu_usage: str | None = None
    memory_usage: str | None = None


class SandboxStatus(meta.Model):
    """Observed state, written only by the sandbox reconciler via the status subresource."""

    phase: str | None = None
    observed_generation: int | None = None
    conditions: list[meta.Condition] | None = None
    pod_name: str | None = None
    pod_namespace: str | None = None
    start_time: str | None = None
    endpoint: str | None = None
    warm_pod_ref: WarmPodRef | None = None
    resources: ResourceUsage | None = None


class Sandbox(meta.TopLevel, kw_only=True):
    """A Sandbox object as stored by the API server."""

    api_version: str = kinds.API_VERSION
    kind: str = KIND
    metadata: meta.ObjectMeta = msgspec.field(default_factory=meta.ObjectMeta)
    spec: SandboxSpec
    status: SandboxStatus | msgspec.UnsetType = msgspec.UNSET


class SandboxList(meta.TopLevel, kw_only=True):
    """A list response (``GET .../sandboxes``)."""

    api_version: str = kinds.API_VERSION
    kind: str = f"{KIND}List"
    metadata: meta.ListMeta = msgspec.field(default_factory=meta.ListMeta)
    items: list[Sandbox] = msgspec.field(default_factory=list)


def status_of(obj: Sandbox) -> SandboxStatus:
    """The object's status, or an empty one when the API server has none yet."""
    return obj.status if isinstance(obj.status, SandboxStatus) else SandboxStatus()


def decode(data: bytes | str) -> Sandbox:
    """Decode a Sandbox from JSON."""
    return codec.decode(data, model=Sandbox)


def encode(obj: Sandbox) -> bytes:
    """Encode a Sandbox to JSON."""
    return codec.encode(obj)


def from_dict(data: Mapping[str, Any]) -> Sandbox:
    """Convert a parsed Sandbox (e.g. from kubernetes_asyncio) into the model."""
    return codec.from_dict(data, model=Sandbox)
