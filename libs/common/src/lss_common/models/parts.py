"""Spec fragments several kinds share, and the defaults applied by the controller, not the schema.

Pure data: no I/O. The built-in defaults below are *not* schema defaults on purpose: a
Sandbox or WarmPool field left unset takes its SandboxProfile's value first, and the API
server cannot tell "unset" from "set to the default" once it has filled a default in
(``docs/decisions-crds.md``). The profile merge applies them last.
"""

from __future__ import annotations

import enum
from typing import Final

from lss_common.models import meta

DEFAULT_CPU: Final = "500m"
DEFAULT_MEMORY: Final = "512Mi"
DEFAULT_EPHEMERAL_STORAGE: Final = "1Gi"
DEFAULT_WRITABLE_PATHS: Final = ("/tmp", "/workspace")


class SecurityProfileType(enum.StrEnum):
    """Kinds of seccomp (and AppArmor) profile a sandbox container may get."""

    RUNTIME_DEFAULT = "RuntimeDefault"
    LOCALHOST = "Localhost"


class Protocol(enum.StrEnum):
    """Transport protocols of network rules."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class ProfileRef(meta.Model):
    """Reference to a SandboxProfile; ``namespace`` unset means the referrer's namespace."""

    name: str
    namespace: str | None = None


class SecurityProfile(meta.Model):
    """A seccomp or AppArmor profile; ``localhost_profile`` is set exactly for type Localhost."""

    type: str
    localhost_profile: str | None = None


class PortRule(meta.Model):
    """One allowed port; ``protocol`` is TCP when unset (the schema defaults it)."""

    port: int
    protocol: str | None = None


class ResourceLimits(meta.Model):
    """Container limits as Kubernetes quantity strings; unset ones are resolved by the merge."""

    cpu: str | None = None
    memory: str | None = None
    ephemeral_storage: str | None = None
