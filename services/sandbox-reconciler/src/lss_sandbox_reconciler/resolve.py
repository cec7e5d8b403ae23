"""Pick the RuntimeEnvironment and check the SandboxProfile a Sandbox refers to (pure).

Rules (DESIGN §5, issue 4):

- ``spec.runtime`` ``"<language>:<version>"`` selects the RuntimeEnvironment whose
  ``spec.language`` and ``spec.version`` are equal to those parts. Exactly one must match:
  none → ``RuntimeNotFound``; several → ``RuntimeAmbiguous`` (an administrator's mistake,
  named in the message); the one match with ``status.available: false`` →
  ``RuntimeUnavailable``. A runtime the validator has not judged yet (``available`` unset) is
  used: only a verdict blocks.
- ``spec.profileRef.namespace`` unset means the sandbox's namespace. Another namespace is
  refused (``ProfileNamespaceForbidden``) unless the operator lists it as shared: a namespace
  is a tenancy boundary, and a profile carries network allowances its user could otherwise
  borrow from a namespace they cannot even read. A profile that is absent →
  ``ProfileNotFound``; one the validator rejected (``status.valid: false``) → ``ProfileInvalid``.

Every failure is a :class:`ResolveError` naming the field to fix and the condition type it
belongs to. No I/O: the caller fetched the candidates.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence

from lss_common import errors
from lss_common.models import profile as profile_model
from lss_common.models import runtime as runtime_model
from lss_common.models import sandbox as sandbox_model


class Reason(enum.StrEnum):
    """Condition reasons of resolution failures."""

    RUNTIME_NOT_FOUND = "RuntimeNotFound"
    RUNTIME_UNAVAILABLE = "RuntimeUnavailable"
    RUNTIME_AMBIGUOUS = "RuntimeAmbiguous"
    PROFILE_NOT_FOUND = "ProfileNotFound"
    PROFILE_INVALID = "ProfileInvalid"
    PROFILE_NAMESPACE_FORBIDDEN = "ProfileNamespaceForbidden"


class ConditionType(enum.StrEnum):
    """The condition a resolution result is reported on."""

    RUNTIME_RESOLVED = "RuntimeResolved"
    PROFILE_RESOLVED = "ProfileResolved"


class ResolveError(errors.PermanentError):
    """The sandbox refers to something that cannot be used; retrying will not help."""

    def __init__(
        self, message: str, *, reason: Reason, field: str, condition_type: ConditionType
    ) -> None:
        super().__init__(message, reason=reason.value)
        self.field = field
        self.condition_type = condition_type


def split_runtime(runtime: str) -> tuple[str, str]:
    """``"python:3.11"`` → ``("python", "3.11")``; anything else is ``RuntimeNotFound``."""
    language, sep, version = runtime.partition(":")
    if not sep or not language or not version:
        raise ResolveError(
            f"spec.runtime {runtime!r} is not <language>:<version> (e.g. python:3.11)",
            reason=Reason.RUNTIME_NOT_FOUND,
            field="spec.runtime",
            condition_type=ConditionType.RUNTIME_RESOLVED,
        )
    return language, version


def select_runtime(
    runtime: str, *, candidates: Sequence[runtime_model.RuntimeEnvironment]
) -> runtime_model.RuntimeEnvironment:
    """The one RuntimeEnvironment ``runtime`` names among ``candidates``, or ResolveError."""
    language, version = split_runtime(runtime)
    matches = [
        candidate
        for candidate in candidates
        if candidate.spec.language == language and candidate.spec.version == version
    ]
    if not matches:
        raise ResolveError(
            f"spec.runtime {runtime!r}: no RuntimeEnvironment has language {language!r} and "
            f"version {version!r}; create one or pick an existing runtime",
            reason=Reason.RUNTIME_NOT_FOUND,
            field="spec.runtime",
            condition_type=ConditionType.RUNTIME_RESOLVED,
        )
    if len(matches) > 1:
        names = ", ".join(sorted(m.metadata.name or "?" for m in matches))
        raise ResolveError(
            f"spec.runtime {runtime!r} matches several RuntimeEnvironments ({names}); an "
            "administrator must keep exactly one per language and version",
            reason=Reason.RUNTIME_AMBIGUOUS,
            field="spec.runtime",
            condition_type=ConditionType.RUNTIME_RESOLVED,
        )
    (match,) = matches
    if runtime_model.status_of(match).available is False:
        raise ResolveError(
            f"spec.runtime {runtime!r}: RuntimeEnvironment {match.metadata.name} is marked "
            "unavailable by the validator (see its conditions)",
            reason=Reason.RUNTIME_UNAVAILABLE,
            field="spec.runtime",
            condition_type=ConditionType.RUNTIME_RESOLVED,
        )
    return match


def profile_key(
    obj: sandbox_model.Sandbox, *, shared_namespaces: Collection[str] = ()
) -> tuple[str, str] | None:
    """``(namespace, name)`` of the profile to read; None without ``profileRef``."""
    ref = obj.spec.profile_ref
    if ref is None:
        return None
    own = obj.metadata.namespace or ""
    namespace = ref.namespace or own
    if namespace != own and namespace not in shared_namespaces:
        raise ResolveError(
            f"spec.profileRef.namespace {namespace!r}: a sandbox may use profiles of its own "
            f"namespace {own!r} only (or a shared profile namespace the operator configured)",
            reason=Reason.PROFILE_NAMESPACE_FORBIDDEN,
            field="spec.profileRef.namespace",
            condition_type=ConditionType.PROFILE_RESOLVED,
        )
    return namespace, ref.name


def check_profile(
    found: profile_model.SandboxProfile | None, *, key: tuple[str, str]
) -> profile_model.SandboxProfile:
    """The profile read at ``key``, or ResolveError when it is missing or rejected."""
    namespace, name = key
    if found is None:
        raise ResolveError(
            f"spec.profileRef: SandboxProfile {namespace}/{name} does not exist",
            reason=Reason.PROFILE_NOT_FOUND,
            field="spec.profileRef.name",
            condition_type=ConditionType.PROFILE_RESOLVED,
        )
    if profile_model.status_of(found).valid is False:
        raise ResolveError(
            f"spec.profileRef: SandboxProfile {namespace}/{name} was rejected by the validator "
            "(see its conditions)",
            reason=Reason.PROFILE_INVALID,
            field="spec.profileRef.name",
            condition_type=ConditionType.PROFILE_RESOLVED,
        )
    return found
