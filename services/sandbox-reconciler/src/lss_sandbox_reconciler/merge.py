"""Merge a Sandbox with its SandboxProfile and RuntimeEnvironment into one EffectiveSpec (pure).

DESIGN §5: a Sandbox field that is set wins; an unset one takes the profile's value;
otherwise the built-in default (``lss_common.models.parts``; the CRDs carry no schema default
for fields a profile can supply, ``docs/decisions-crds.md`` §2). Security may only *tighten*
through a profile, never loosen. Field by field (``docs/decisions-sandbox.md`` §2):

- ``securityLevel``: the stricter of sandbox and profile (standard < custom < high; the
  profile's level is a minimum). A ``custom`` sandbox takes its profile's level.
- seccomp: profile → runtime → sandbox → RuntimeDefault (``Unconfined`` does not exist).
  A profile's or runtime's choice binds: the sandbox may repeat it, not replace it
  (``ProfileConflict``); the sandbox's own choice applies where neither sets one.
- ``filesystem.readOnlyRoot``: the sandbox's (schema default true); a profile listing
  ``readOnlyPaths`` contradicts a writable root, and a writable path, ``/data`` or a
  writable shared volume overlapping one of them contradicts the profile: each is a
  :class:`SpecConflict` (``ProfileConflict``), never a silent loosening.
- network: the profile's rules are extra *allowances* the sandbox opts into by referencing
  it (the CRD says so); domain ports union per domain; default TCP 443 and 80 per rule.
  No rule opens the inside of the cluster or the cloud (``egress_ranges.py``): a domain
  under the cluster's DNS domain (or ``.svc``, ``.local``, ``.internal``, ...) or a
  single-label name, and a CIDR inside a denied range, are refused (``EgressNotAllowed``);
  a CIDR holding denied ranges keeps them out (``ipBlock.except``). A domain that is not
  a valid DNS name is ``InvalidSpec``.
- resources: sandbox → profile ``resourceDefaults`` → built-in; never below the runtime's
  ``resourceRequirements`` minimum (``InsufficientResources``). cpuPinning rounds CPU up to
  whole cores and requests equal limits (Guaranteed QoS).

Contradictions the schema cannot catch raise :class:`SpecConflict` with a condition reason
and the JSON path of the field to fix. No I/O; settings are an argument.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from lss_common import errors
from lss_common.logic import quantities
from lss_common.models import meta, parts
from lss_common.models import profile as profile_model
from lss_common.models import runtime as runtime_model
from lss_common.models import sandbox as sandbox_model
from lss_sandbox_reconciler import egress_ranges
from lss_sandbox_reconciler import settings as settings_module

DATA_PATH: Final = "/data"
AGENT_PORT: Final = 8080
DEFAULT_VOLUME_SIZE: Final = "5Gi"
_LEVEL_RANK: Final = {
    meta.SecurityLevel.STANDARD: 0,
    meta.SecurityLevel.CUSTOM: 1,
    meta.SecurityLevel.HIGH: 2,
}
_MILLICORES_PER_CORE: Final = 1000
_MAX_LABEL: Final = 63
_MAX_DOMAIN: Final = 253
#: Names that resolve to the cluster or the host whatever public DNS says (the configured
#: cluster domain is checked too).
_INTERNAL_SUFFIXES: Final = ("svc", "local", "localhost", "internal", "localdomain")


class Reason(enum.StrEnum):
    """Condition reasons of merge failures."""

    PROFILE_CONFLICT = "ProfileConflict"
    RUNTIME_REQUIRES_ROOT = "RuntimeRequiresRoot"
    INSUFFICIENT_RESOURCES = "InsufficientResources"
    INVALID_SPEC = "InvalidSpec"
    EGRESS_NOT_ALLOWED = "EgressNotAllowed"
    SECCOMP_NOT_ALLOWED = "SeccompProfileNotAllowed"
    SHARED_VOLUME_NOT_ALLOWED = "SharedVolumeNotAllowed"
    """Raised by ``shared_volumes`` (it needs the claims read), not by the merge."""


class SpecConflict(errors.PermanentError):
    """The sandbox, its profile and its runtime cannot be satisfied together."""

    def __init__(self, message: str, *, reason: Reason, field: str) -> None:
        super().__init__(f"{field}: {message}", reason=reason.value)
        self.field = field


@dataclasses.dataclass(frozen=True, slots=True)
class Port:
    """One allowed port."""

    port: int
    protocol: str


@dataclasses.dataclass(frozen=True, slots=True)
class DomainRule:
    """Egress to one domain on these ports."""

    domain: str
    ports: tuple[Port, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class CidrRule:
    """Traffic to (egress) or from (ingress) one network on these ports, less the ranges
    in ``excluded`` (``ipBlock.except``)."""

    cidr: str
    ports: tuple[Port, ...]
    excluded: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityProfile:
    """A seccomp or AppArmor profile in the pod API's shape."""

    type: str
    localhost_profile: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SharedMount:
    """An existing claim mounted into the sandbox."""

    claim_name: str
    mount_path: str
    read_only: bool


@dataclasses.dataclass(frozen=True, slots=True)
class EffectiveSpec:
    """Everything the children are built from; no field is left to a later default."""

    runtime: str
    image: str
    security_level: str
    """What the sandbox declared (schema default standard)."""
    isolation_level: str
    """The level that chose the RuntimeClass, after the profile's minimum."""
    runtime_class_name: str | None
    timeout_seconds: int
    cpu_limit: str
    cpu_request: str
    memory: str
    ephemeral_storage: str
    ephemeral_storage_bytes: int
    cpu_pinning: bool
    read_only_root: bool
    writable_paths: tuple[str, ...]
    """Paths backed by a size-limited emptyDir; always /tmp and /workspace, never /data
    when the claim provides it."""
    read_only_paths: tuple[str, ...]
    persistent: bool
    volume_size: str
    storage_class: str | None
    shared_volumes: tuple[SharedMount, ...]
    run_as_user: int
    run_as_group: int
    seccomp: SecurityProfile
    app_armor: SecurityProfile | None
    egress_domains: tuple[DomainRule, ...]
    egress_cidrs: tuple[CidrRule, ...]
    ingress_open: bool
    ingress_cidrs: tuple[CidrRule, ...]
    required_node_features: tuple[str, ...]
    profile_name: str | None


def merge_spec(
    obj: sandbox_model.Sandbox,
    *,
    profile: profile_model.SandboxProfile | None,
    runtime: runtime_model.RuntimeEnvironment,
    settings: settings_module.SandboxOptions,
    started: bool = False,
) -> EffectiveSpec:
    """The effective spec of ``obj``; SpecConflict when the three cannot be reconciled.

    ``started``: the sandbox runs on a pod already. A Localhost seccomp profile outside
    ``seccomp_localhost_prefixes`` is then not refused: the pod was admitted with it (by an
    earlier version, or before the setting changed), and failing the sandbox for it would
    end it mid-run; it is refused before any pod is made."""
    spec = obj.spec
    pspec = profile.spec if profile is not None else None
    rspec = runtime.spec
    if rspec.run_as_non_root is False:
        raise SpecConflict(
            f"RuntimeEnvironment {runtime.metadata.name} needs root (runAsNonRoot: false); "
            "sandboxes never run as root, pick another runtime",
            reason=Reason.RUNTIME_REQUIRES_ROOT,
            field="spec.runtime",
        )
    if pspec is not None and pspec.language != rspec.language:
        raise SpecConflict(
            f"profile {profile_name_of(profile)} is for language {pspec.language!r}, "
            f"the runtime is {rspec.language!r}",
            reason=Reason.PROFILE_CONFLICT,
            field="spec.profileRef",
        )
    security_level, isolation_level = _security_levels(spec, pspec)
    cpu_limit, cpu_request, memory, ephemeral, ephemeral_bytes, pinned = _resources(
        spec, pspec, rspec, settings=settings
    )
    read_only_root, writable, read_only_paths, persistent, shared = _filesystem(spec, pspec)
    storage = spec.storage or sandbox_model.Storage()
    context = spec.security_context or sandbox_model.SecurityContext()
    run_as_user = _identity(context.run_as_user, default=settings.default_run_as_user)
    run_as_group = _identity(context.run_as_group, default=settings.default_run_as_group)
    egress_domains, egress_cidrs, ingress_cidrs = _network(spec, pspec, settings=settings)
    network = spec.network_access or sandbox_model.NetworkAccess()
    return EffectiveSpec(
        runtime=spec.runtime,
        image=_image(rspec),
        security_level=security_level,
        isolation_level=isolation_level,
        runtime_class_name=_runtime_class(isolation_level, settings=settings),
        timeout_seconds=(
            spec.timeout if spec.timeout is not None else sandbox_model.DEFAULT_TIMEOUT_SECONDS
        ),
        cpu_limit=cpu_limit,
        cpu_request=cpu_request,
        memory=memory,
        ephemeral_storage=ephemeral,
        ephemeral_storage_bytes=ephemeral_bytes,
        cpu_pinning=pinned,
        read_only_root=read_only_root,
        writable_paths=writable,
        read_only_paths=read_only_paths,
        persistent=persistent,
        volume_size=storage.volume_size or DEFAULT_VOLUME_SIZE,
        storage_class=(storage.storage_class or settings.default_storage_class)
        if persistent
        else None,
        shared_volumes=shared,
        run_as_user=run_as_user,
        run_as_group=run_as_group,
        seccomp=_seccomp(
            context,
            pspec,
            rspec,
            namespace=obj.metadata.namespace or "",
            settings=settings,
            checked=not started,
        ),
        app_armor=_app_armor(rspec) if settings.app_armor_enabled else None,
        egress_domains=egress_domains,
        egress_cidrs=egress_cidrs,
        ingress_open=bool(network.ingress),
        ingress_cidrs=ingress_cidrs,
        required_node_features=tuple(sorted(set(rspec.required_node_features or ()))),
        profile_name=profile.metadata.name if profile is not None else None,
    )


def profile_name_of(profile: profile_model.SandboxProfile | None) -> str:
    """``namespace/name`` of a profile, for messages."""
    if profile is None:
        return "-"
    return f"{profile.metadata.namespace or ''}/{profile.metadata.name or ''}"


# -- security level -------------------------------------------------------------------------


def _level(value: str | None, *, field: str) -> meta.SecurityLevel:
    try:
        return meta.SecurityLevel(value or meta.SecurityLevel.STANDARD)
    except ValueError:
        # A level added to the schema later: building a pod with a guessed isolation would
        # fail open, so it fails closed with a clear message instead.
        raise SpecConflict(
            f"unknown security level {value!r}", reason=Reason.INVALID_SPEC, field=field
        ) from None


def _security_levels(
    spec: sandbox_model.SandboxSpec, pspec: profile_model.SandboxProfileSpec | None
) -> tuple[str, str]:
    declared = _level(spec.security_level, field="spec.securityLevel")
    if pspec is None:
        if declared is meta.SecurityLevel.CUSTOM:
            raise SpecConflict(
                "securityLevel custom requires profileRef",
                reason=Reason.INVALID_SPEC,
                field="spec.profileRef",
            )
        return declared.value, declared.value
    minimum = _level(pspec.security_level, field="spec.profileRef")
    if declared is meta.SecurityLevel.CUSTOM:
        return declared.value, minimum.value
    effective = max(declared, minimum, key=_LEVEL_RANK.__getitem__)
    return declared.value, effective.value


def _runtime_class(level: str, *, settings: settings_module.SandboxOptions) -> str | None:
    if level == meta.SecurityLevel.HIGH:
        return settings.runtime_class_high
    if level == meta.SecurityLevel.CUSTOM:
        return settings.runtime_class_custom or None
    return settings.runtime_class_standard or None


# -- resources ------------------------------------------------------------------------------


def _resources(
    spec: sandbox_model.SandboxSpec,
    pspec: profile_model.SandboxProfileSpec | None,
    rspec: runtime_model.RuntimeEnvironmentSpec,
    *,
    settings: settings_module.SandboxOptions,
) -> tuple[str, str, str, str, int, bool]:
    own = spec.resources or sandbox_model.SandboxResources()
    preset = (pspec.resource_defaults if pspec else None) or parts.ResourceLimits()
    cpu = own.cpu or preset.cpu or parts.DEFAULT_CPU
    memory = own.memory or preset.memory or parts.DEFAULT_MEMORY
    ephemeral = own.ephemeral_storage or preset.ephemeral_storage or parts.DEFAULT_EPHEMERAL_STORAGE
    cpu_field = "spec.resources.cpu" if own.cpu else "spec.profileRef"
    memory_field = "spec.resources.memory" if own.memory else "spec.profileRef"
    millicores = _quantity(quantities.cpu_millicores, cpu, field=cpu_field)
    memory_bytes = _quantity(quantities.memory_bytes, memory, field=memory_field)
    ephemeral_bytes = _quantity(
        quantities.memory_bytes,
        ephemeral,
        field="spec.resources.ephemeralStorage" if own.ephemeral_storage else "spec.profileRef",
    )
    needs = rspec.resource_requirements
    if needs is not None and needs.min_cpu:
        minimum = _quantity(quantities.cpu_millicores, needs.min_cpu, field="spec.runtime")
        if millicores < minimum:
            raise SpecConflict(
                f"cpu {cpu} is below the runtime's minimum {needs.min_cpu}",
                reason=Reason.INSUFFICIENT_RESOURCES,
                field=cpu_field,
            )
    if needs is not None and needs.min_memory:
        minimum = _quantity(quantities.memory_bytes, needs.min_memory, field="spec.runtime")
        if memory_bytes < minimum:
            raise SpecConflict(
                f"memory {memory} is below the runtime's minimum {needs.min_memory}",
                reason=Reason.INSUFFICIENT_RESOURCES,
                field=memory_field,
            )
    pinned = bool(own.cpu_pinning)
    if pinned:
        # The kubelet's static CPU manager grants exclusive cores only to Guaranteed pods
        # with an integer CPU request; a fraction would silently run unpinned.
        cores = math.ceil(millicores / _MILLICORES_PER_CORE)
        whole = quantities.format_cpu(cores * _MILLICORES_PER_CORE)
        return whole, whole, memory, ephemeral, ephemeral_bytes, True
    request = max(1, math.ceil(millicores * settings.cpu_request_percent / 100))
    limit_text = quantities.format_cpu(millicores)
    request_text = limit_text if request == millicores else quantities.format_cpu(request)
    return limit_text, request_text, memory, ephemeral, ephemeral_bytes, False


def _quantity(parse: Callable[..., int], value: str, *, field: str) -> int:
    try:
        result = parse(value, field=field)
    except errors.InvalidObjectError as error:
        raise SpecConflict(str(error), reason=Reason.INVALID_SPEC, field=field) from error
    if result <= 0:
        raise SpecConflict(f"{value!r} must be positive", reason=Reason.INVALID_SPEC, field=field)
    return result


# -- filesystem -----------------------------------------------------------------------------


def _overlaps(left: str, right: str) -> bool:
    """Whether one path is the other or inside it (path-boundary aware: /tmp vs /tmpfoo no)."""
    return left == right or left.startswith(right + "/") or right.startswith(left + "/")


def _filesystem(
    spec: sandbox_model.SandboxSpec, pspec: profile_model.SandboxProfileSpec | None
) -> tuple[bool, tuple[str, ...], tuple[str, ...], bool, tuple[SharedMount, ...]]:
    own = spec.filesystem or sandbox_model.Filesystem()
    preset = (pspec.filesystem_config if pspec else None) or profile_model.FilesystemConfig()
    read_only_root = True if own.read_only_root is None else own.read_only_root
    read_only_paths = tuple(sorted(set(preset.read_only_paths or ())))
    if own.writable_paths is not None:
        asked: Sequence[str] = own.writable_paths
        asked_field = "spec.filesystem.writablePaths"
    elif preset.writable_paths is not None:
        asked = preset.writable_paths
        asked_field = "spec.profileRef"
    else:
        asked = parts.DEFAULT_WRITABLE_PATHS
        asked_field = "spec.filesystem.writablePaths"
    storage = spec.storage or sandbox_model.Storage()
    persistent = bool(storage.persistent)
    # /tmp and /workspace are part of the runtime-image contract (DESIGN §4): always there.
    ordered = _unique([*parts.DEFAULT_WRITABLE_PATHS, *sorted(asked)])
    if persistent:
        ordered = [path for path in ordered if path != DATA_PATH]
    if read_only_paths and not read_only_root:
        raise SpecConflict(
            "readOnlyRoot false contradicts the profile's readOnlyPaths "
            f"({', '.join(read_only_paths)}); leave readOnlyRoot true or use another profile",
            reason=Reason.PROFILE_CONFLICT,
            field="spec.filesystem.readOnlyRoot",
        )
    for path in ordered:
        _check_not_read_only(path, read_only_paths, field=asked_field)
    if persistent:
        _check_not_read_only(DATA_PATH, read_only_paths, field="spec.storage.persistent")
    shared = tuple(
        SharedMount(
            claim_name=volume.claim_name,
            mount_path=volume.mount_path,
            read_only=True if volume.read_only is None else volume.read_only,
        )
        for volume in storage.shared_volumes or ()
    )
    taken = {*ordered, *([DATA_PATH] if persistent else [])}
    for mount in shared:
        if mount.mount_path in taken:
            raise SpecConflict(
                f"mountPath {mount.mount_path} is already a writable path or /data",
                reason=Reason.INVALID_SPEC,
                field="spec.storage.sharedVolumes",
            )
        if not mount.read_only:
            _check_not_read_only(
                mount.mount_path, read_only_paths, field="spec.storage.sharedVolumes"
            )
    return read_only_root, tuple(ordered), read_only_paths, persistent, shared


def _check_not_read_only(path: str, read_only_paths: Iterable[str], *, field: str) -> None:
    for kept in read_only_paths:
        if _overlaps(path, kept):
            raise SpecConflict(
                f"writable path {path} overlaps the profile's read-only path {kept}",
                reason=Reason.PROFILE_CONFLICT,
                field=field,
            )


def _unique(paths: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(paths))


# -- identity and syscall filtering ---------------------------------------------------------


def _identity(value: int | None, *, default: int) -> int:
    if value is None:
        return default
    if value < 1:
        raise SpecConflict(
            "sandboxes never run as root (UID/GID 0)",
            reason=Reason.INVALID_SPEC,
            field="spec.securityContext",
        )
    return value


def _security_profile(value: parts.SecurityProfile, *, field: str) -> SecurityProfile:
    try:
        kind = parts.SecurityProfileType(value.type)
    except ValueError:
        raise SpecConflict(
            f"unsupported profile type {value.type!r} (RuntimeDefault or Localhost)",
            reason=Reason.INVALID_SPEC,
            field=field,
        ) from None
    if kind is parts.SecurityProfileType.LOCALHOST and not value.localhost_profile:
        raise SpecConflict(
            "type Localhost needs localhostProfile", reason=Reason.INVALID_SPEC, field=field
        )
    if kind is parts.SecurityProfileType.LOCALHOST and not settings_module.is_descending_path(
        value.localhost_profile or ""
    ):
        raise SpecConflict(
            f"localhostProfile {value.localhost_profile!r} must be a relative path below the "
            "node's seccomp root (no leading /, no . or .. or empty segment)",
            reason=Reason.INVALID_SPEC,
            field=field,
        )
    return SecurityProfile(
        type=kind.value,
        localhost_profile=value.localhost_profile
        if kind is parts.SecurityProfileType.LOCALHOST
        else None,
    )


def _check_domain(domain: str, *, field: str, cluster_domain: str, reason: Reason) -> None:
    """A public DNS name: every label 1-63 characters (the schema's pattern cannot say so;
    a longer one made every resolution fail), at least two labels, and not a name the
    cluster's DNS answers itself (its services, pods and search list). An IP literal
    passes: it resolves to itself, and a non-public one is dropped like any answer."""
    labels = domain.split(".")
    if len(domain) > _MAX_DOMAIN or any(not 0 < len(label) <= _MAX_LABEL for label in labels):
        raise SpecConflict(
            f"{domain!r} is not a DNS name (labels of 1 to {_MAX_LABEL} characters, "
            f"{_MAX_DOMAIN} in all)",
            reason=reason,
            field=field,
        )
    if len(labels) < 2:
        raise SpecConflict(
            f"{domain!r} is not a public domain name (a single label names something the "
            "cluster's DNS search list or the host answers)",
            reason=Reason.EGRESS_NOT_ALLOWED,
            field=field,
        )
    for suffix in (cluster_domain, *_INTERNAL_SUFFIXES):
        if domain == suffix or domain.endswith(f".{suffix}"):
            raise SpecConflict(
                f"{domain!r} names the cluster's or the host's own network (.{suffix}); "
                "egress rules open the public internet only",
                reason=Reason.EGRESS_NOT_ALLOWED,
                field=field,
            )


def _egress_cidr(
    cidr: str, ports: tuple[Port, ...], ranges: egress_ranges.EgressRanges, *, field: str
) -> CidrRule:
    try:
        excluded = ranges.carve(cidr)
    except ValueError as error:
        raise SpecConflict(str(error), reason=Reason.PROFILE_CONFLICT, field=field) from None
    if excluded is None:
        raise SpecConflict(
            f"{cidr} lies inside the cluster's, the host's or the cloud's own network; egress "
            "rules open the public internet only (an operator may allow an internal range: "
            "LSS_SANDBOX__EGRESS_ALLOWED_PRIVATE_CIDRS)",
            reason=Reason.EGRESS_NOT_ALLOWED,
            field=field,
        )
    return CidrRule(cidr, ports, excluded)


def _seccomp(
    context: sandbox_model.SecurityContext,
    pspec: profile_model.SandboxProfileSpec | None,
    rspec: runtime_model.RuntimeEnvironmentSpec,
    *,
    namespace: str,
    settings: settings_module.SandboxOptions,
    checked: bool,
) -> SecurityProfile:
    field = "spec.securityContext.seccompProfile"
    own = (
        None
        if context.seccomp_profile is None
        else _security_profile(context.seccomp_profile, field=field)
    )
    if own is not None and checked:
        _check_localhost_allowed(own, field=field, namespace=namespace, settings=settings)
    binding: SecurityProfile | None = None
    source = ""
    if pspec is not None and pspec.seccomp_profile is not None:
        binding = _security_profile(pspec.seccomp_profile, field="spec.profileRef")
        if checked:
            _check_localhost_allowed(
                binding, field="spec.profileRef", namespace=namespace, settings=settings
            )
        source = "profile"
    elif rspec.seccomp_profile is not None:
        binding = _security_profile(rspec.seccomp_profile, field="spec.runtime")
        source = "runtime"
    if binding is None:
        return own or SecurityProfile(type=parts.SecurityProfileType.RUNTIME_DEFAULT.value)
    if own is not None and own != binding:
        # A sandbox replacing its profile's (or runtime's) seccomp profile could pick a
        # looser one: there is no strictness order to tell, so it may only repeat it.
        raise SpecConflict(
            f"the {source} sets seccomp profile {_describe(binding)}; the sandbox may not "
            f"replace it with {_describe(own)}",
            reason=Reason.PROFILE_CONFLICT,
            field=field,
        )
    return binding


def _check_localhost_allowed(
    profile: SecurityProfile,
    *,
    field: str,
    namespace: str,
    settings: settings_module.SandboxOptions,
) -> None:
    """A Localhost profile named by a Sandbox or a SandboxProfile (their authors are
    tenants) must be one installed for sandboxes: a node's profiles for other workloads may
    allow what RuntimeDefault denies. A RuntimeEnvironment's is the platform team's choice."""
    path = profile.localhost_profile
    if path is None:
        return
    prefixes = [p.replace("{namespace}", namespace) for p in settings.seccomp_localhost_prefixes]
    if any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes):
        return
    allowed = ", ".join(prefixes) if prefixes else "none"
    raise SpecConflict(
        f"Localhost seccomp profile {path!r} is not one installed for sandboxes (allowed "
        f"prefixes: {allowed}; LSS_SANDBOX__SECCOMP_LOCALHOST_PREFIXES)",
        reason=Reason.SECCOMP_NOT_ALLOWED,
        field=field,
    )


def _describe(profile: SecurityProfile) -> str:
    if profile.localhost_profile is None:
        return profile.type
    return f"{profile.type} {profile.localhost_profile}"


def _app_armor(rspec: runtime_model.RuntimeEnvironmentSpec) -> SecurityProfile:
    if rspec.app_armor_profile is not None:
        return _security_profile(rspec.app_armor_profile, field="spec.runtime")
    return SecurityProfile(type=parts.SecurityProfileType.RUNTIME_DEFAULT.value)


def _image(rspec: runtime_model.RuntimeEnvironmentSpec) -> str:
    # A digest pins the exact image the validator scanned; a tag alone can be re-pushed.
    if rspec.image_digest and "@" not in rspec.image:
        return f"{rspec.image}@{rspec.image_digest}"
    return rspec.image


# -- network --------------------------------------------------------------------------------

DEFAULT_EGRESS_PORTS: Final = (
    Port(443, parts.Protocol.TCP.value),
    Port(80, parts.Protocol.TCP.value),
)
DEFAULT_INGRESS_PORTS: Final = (Port(AGENT_PORT, parts.Protocol.TCP.value),)


def _ports(
    rules: Sequence[parts.PortRule] | None, *, default: tuple[Port, ...]
) -> tuple[Port, ...]:
    if not rules:
        return default
    found = {Port(rule.port, rule.protocol or parts.Protocol.TCP.value) for rule in rules}
    return tuple(sorted(found, key=lambda p: (p.port, p.protocol)))


def _network(
    spec: sandbox_model.SandboxSpec,
    pspec: profile_model.SandboxProfileSpec | None,
    *,
    settings: settings_module.SandboxOptions,
) -> tuple[tuple[DomainRule, ...], tuple[CidrRule, ...], tuple[CidrRule, ...]]:
    network = spec.network_access or sandbox_model.NetworkAccess()
    domains: dict[str, set[Port]] = {}
    for index, rule in enumerate(network.egress or ()):
        _check_domain(
            rule.domain,
            field=f"spec.networkAccess.egress[{index}].domain",
            cluster_domain=settings.cluster_domain,
            reason=Reason.INVALID_SPEC,
        )
        domains.setdefault(rule.domain, set()).update(
            _ports(rule.ports, default=DEFAULT_EGRESS_PORTS)
        )
    ranges = egress_ranges.of_settings(settings)
    egress_cidrs: list[CidrRule] = []
    ingress_cidrs: list[CidrRule] = []
    for index, policy in enumerate(pspec.network_policies or () if pspec else ()):
        field = f"spec.profileRef (networkPolicies[{index}])"
        if policy.type == profile_model.Direction.EGRESS:
            for number, peer in enumerate(policy.rules or ()):
                ports = _ports(peer.ports, default=DEFAULT_EGRESS_PORTS)
                rule_field = f"spec.profileRef (networkPolicies[{index}].rules[{number}])"
                if peer.domain and not peer.cidr:
                    _check_domain(
                        peer.domain,
                        field=rule_field,
                        cluster_domain=settings.cluster_domain,
                        reason=Reason.PROFILE_CONFLICT,
                    )
                    domains.setdefault(peer.domain, set()).update(ports)
                elif peer.cidr and not peer.domain:
                    egress_cidrs.append(_egress_cidr(peer.cidr, ports, ranges, field=rule_field))
                else:
                    raise SpecConflict(
                        "a rule needs exactly one of domain or cidr",
                        reason=Reason.PROFILE_CONFLICT,
                        field=field,
                    )
        elif policy.type == profile_model.Direction.INGRESS:
            for peer in policy.rules or ():
                if not peer.cidr or peer.domain:
                    raise SpecConflict(
                        "an ingress rule needs a cidr (and no domain)",
                        reason=Reason.PROFILE_CONFLICT,
                        field=field,
                    )
                ingress_cidrs.append(
                    CidrRule(peer.cidr, _ports(peer.ports, default=DEFAULT_INGRESS_PORTS))
                )
        else:
            raise SpecConflict(
                f"unknown policy type {policy.type!r}", reason=Reason.PROFILE_CONFLICT, field=field
            )
    egress_domains = tuple(
        DomainRule(domain, tuple(sorted(ports, key=lambda p: (p.port, p.protocol))))
        for domain, ports in sorted(domains.items())
    )
    return egress_domains, tuple(egress_cidrs), tuple(ingress_cidrs)
