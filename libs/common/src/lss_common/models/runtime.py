"""The RuntimeEnvironment kind (cluster-scoped): an image that sandboxes may run.

Schema: ``deploy/crds/runtimeenvironments.yaml``.

Pure data: no I/O. A Sandbox's ``spec.runtime`` ``"<language>:<version>"`` selects the
RuntimeEnvironment whose ``spec.language`` and ``spec.version`` match.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from lss_common.models import codec, kinds, meta, parts

KIND: Final = kinds.RUNTIME_ENVIRONMENT.kind


class SecurityFeature(enum.StrEnum):
    """Security features a runtime may declare in ``spec.securityFeatures``."""

    GVISOR = "gvisor"
    SECCOMP = "seccomp"
    APPARMOR = "apparmor"
    NO_NEW_PRIVS = "no-new-privs"


class ResourceRequirements(meta.Model):
    """Minimum and recommended resources of a sandbox of this runtime (quantity strings)."""

    min_cpu: str | None = None
    min_memory: str | None = None
    recommended_cpu: str | None = None
    recommended_memory: str | None = None


class RuntimeEnvironmentSpec(meta.Model):
    """The runtime: image, language and version, and what it offers."""

    image: str
    language: str
    version: str
    image_digest: str | None = None
    tags: list[str] | None = None
    pre_installed_packages: list[str] | None = None
    package_manager: str | None = None
    security_features: list[str] | None = None
    security_level: str | None = None
    seccomp_profile: parts.SecurityProfile | None = None
    app_armor_profile: parts.SecurityProfile | None = None
    run_as_non_root: bool | None = None
    required_node_features: list[str] | None = None
    resource_requirements: ResourceRequirements | None = None


class VulnerabilityStatus(meta.Model):
    """Result of the last image scan."""

    last_scan_time: str | None = None
    critical_count: int | None = None
    high_count: int | None = None
    medium_count: int | None = None
    low_count: int | None = None


class RuntimeEnvironmentStatus(meta.Model):
    """Validation result, written only by the validator via the status subresource."""

    available: bool | None = None
    last_validated: str | None = None
    observed_generation: int | None = None
    vulnerability_status: VulnerabilityStatus | None = None
    conditions: list[meta.Condition] | None = None


class RuntimeEnvironment(meta.TopLevel, kw_only=True):
    """A RuntimeEnvironment object as stored by the API server (no namespace)."""

    api_version: str = kinds.API_VERSION
    kind: str = KIND
    metadata: meta.ObjectMeta = msgspec.field(default_factory=meta.ObjectMeta)
    spec: RuntimeEnvironmentSpec
    status: RuntimeEnvironmentStatus | msgspec.UnsetType = msgspec.UNSET


class RuntimeEnvironmentList(meta.TopLevel, kw_only=True):
    """A list response (``GET .../runtimeenvironments``)."""

    api_version: str = kinds.API_VERSION
    kind: str = f"{KIND}List"
    metadata: meta.ListMeta = msgspec.field(default_factory=meta.ListMeta)
    items: list[RuntimeEnvironment] = msgspec.field(default_factory=list)


def status_of(obj: RuntimeEnvironment) -> RuntimeEnvironmentStatus:
    """The object's status, or an empty one when the API server has none yet."""
    return (
        obj.status
        if isinstance(obj.status, RuntimeEnvironmentStatus)
        else RuntimeEnvironmentStatus()
    )


def decode(data: bytes | str) -> RuntimeEnvironment:
    """Decode a RuntimeEnvironment from JSON."""
    return codec.decode(data, model=RuntimeEnvironment)


def encode(obj: RuntimeEnvironment) -> bytes:
    """Encode a RuntimeEnvironment to JSON."""
    return codec.encode(obj)


def from_dict(data: Mapping[str, Any]) -> RuntimeEnvironment:
    """Convert a parsed RuntimeEnvironment (e.g. from kubernetes_asyncio) into the model."""
    return codec.from_dict(data, model=RuntimeEnvironment)
