"""The SandboxProfile kind: a reusable security and resource preset.

Schema: ``deploy/crds/sandboxprofiles.yaml``.

Pure data: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from lss_common.models import codec, kinds, meta, parts

KIND: Final = kinds.SANDBOX_PROFILE.kind


class Direction(enum.StrEnum):
    """Direction of a profile's network policy."""

    EGRESS = "egress"
    INGRESS = "ingress"


class NetworkRule(meta.Model):
    """One allowed peer: exactly one of ``domain`` (egress only) or ``cidr``."""

    domain: str | None = None
    cidr: str | None = None
    ports: list[parts.PortRule] | None = None


class NetworkPolicy(meta.Model):
    """A group of allowances in one direction."""

    type: str
    rules: list[NetworkRule] | None = None


class FilesystemConfig(meta.Model):
    """Paths kept read-only and paths mounted writable (never overlapping)."""

    read_only_paths: list[str] | None = None
    writable_paths: list[str] | None = None


class SandboxProfileSpec(meta.Model):
    """The preset."""

    language: str
    security_level: str | None = None
    seccomp_profile: parts.SecurityProfile | None = None
    network_policies: list[NetworkPolicy] | None = None
    pre_installed_packages: list[str] | None = None
    resource_defaults: parts.ResourceLimits | None = None
    filesystem_config: FilesystemConfig | None = None


class SandboxProfileStatus(meta.Model):
    """Validation result, written only by the validator via the status subresource."""

    valid: bool | None = None
    observed_generation: int | None = None
    conditions: list[meta.Condition] | None = None


class SandboxProfile(meta.TopLevel, kw_only=True):
    """A SandboxProfile object as stored by the API server."""

    api_version: str = kinds.API_VERSION
    kind: str = KIND
    metadata: meta.ObjectMeta = msgspec.field(default_factory=meta.ObjectMeta)
    spec: SandboxProfileSpec
    status: SandboxProfileStatus | msgspec.UnsetType = msgspec.UNSET


class SandboxProfileList(meta.TopLevel, kw_only=True):
    """A list response (``GET .../sandboxprofiles``)."""

    api_version: str = kinds.API_VERSION
    kind: str = f"{KIND}List"
    metadata: meta.ListMeta = msgspec.field(default_factory=meta.ListMeta)
    items: list[SandboxProfile] = msgspec.field(default_factory=list)


def status_of(obj: SandboxProfile) -> SandboxProfileStatus:
    """The object's status, or an empty one when the API server has none yet."""
    return obj.status if isinstance(obj.status, SandboxProfileStatus) else SandboxProfileStatus()


def decode(data: bytes | str) -> SandboxProfile:
    """Decode a SandboxProfile from JSON."""
    return codec.decode(data, model=SandboxProfile)


def encode(obj: SandboxProfile) -> bytes:
    """Encode a SandboxProfile to JSON."""
    return codec.encode(obj)


def from_dict(data: Mapping[str, Any]) -> SandboxProfile:
    """Convert a parsed SandboxProfile (e.g. from kubernetes_asyncio) into the model."""
    return codec.from_dict(data, model=SandboxProfile)
