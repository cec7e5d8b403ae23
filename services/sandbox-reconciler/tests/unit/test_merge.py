"""merge: precedence sandbox → profile → built-in for resources, writable paths and seccomp
(→ runtime → RuntimeDefault); security level is the stricter of sandbox and profile (custom
takes the profile's) and picks the configured RuntimeClass; pinning rounds up to whole cores
with requests == limits; /tmp and /workspace always writable, /data from the claim; profile
network rules add to the sandbox's; each contradiction the schema cannot catch is a
SpecConflict naming its field; hypothesis: a profile never lowers the isolation level."""

from __future__ import annotations

import ipaddress
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_sandbox_reconciler import merge, testing
from lss_sandbox_reconciler import settings as settings_module

OPTIONS = settings_module.SandboxOptions()


def merged(
    spec: dict[str, Any] | None = None,
    *,
    profile: dict[str, Any] | None = None,
    runtime: dict[str, Any] | None = None,
    options: settings_module.SandboxOptions = OPTIONS,
) -> merge.EffectiveSpec:
    if profile is not None:
        spec = {**(spec or {}), "profileRef": {"name": "preset"}}
    return merge.merge_spec(
        testing.make_sandbox(spec=spec),
        profile=testing.make_profile(spec=profile) if profile is not None else None,
        runtime=testing.make_runtime(spec=runtime),
        settings=options,
    )


# (sandbox spec, profile spec or None, attribute, expected)
PRECEDENCE = [
    ({}, None, "cpu_limit", "500m"),
    ({}, None, "memory", "512Mi"),
    ({}, None, "ephemeral_storage", "1Gi"),
    ({}, {"resourceDefaults": {"cpu": "2", "memory": "1Gi"}}, "cpu_limit", "2"),
    ({}, {"resourceDefaults": {"memory": "1Gi"}}, "memory", "1Gi"),
    ({}, {"resourceDefaults": {"ephemeralStorage": "3Gi"}}, "ephemeral_storage", "3Gi"),
    ({"resources": {"cpu": "250m"}}, {"resourceDefaults": {"cpu": "2"}}, "cpu_limit", "250m"),
    ({"resources": {"memory": "2Gi"}}, {"resourceDefaults": {"memory": "1Gi"}}, "memory", "2Gi"),
    ({}, None, "writable_paths", ("/tmp", "/workspace")),
    (
        {},
        {"filesystemConfig": {"writablePaths": ["/home/app"]}},
        "writable_paths",
        ("/tmp", "/workspace", "/home/app"),
    ),
    (
        {"filesystem": {"readOnlyRoot": True, "writablePaths": ["/cache"]}},
        {"filesystemConfig": {"writablePaths": ["/home/app"]}},
        "writable_paths",
        ("/tmp", "/workspace", "/cache"),
    ),
    ({}, None, "seccomp", merge.SecurityProfile("RuntimeDefault")),
    (
        {},
        {"seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/p.json"}},
        "seccomp",
        merge.SecurityProfile("Localhost", "llmsafespace/p.json"),
    ),
    (
        # The sandbox may repeat its profile's choice.
        {
            "securityContext": {
                "seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/p.json"}
            }
        },
        {"seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/p.json"}},
        "seccomp",
        merge.SecurityProfile("Localhost", "llmsafespace/p.json"),
    ),
    (
        # Its own choice applies where neither profile nor runtime sets one.
        {
            "securityContext": {
                "seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/own.json"}
            }
        },
        {},
        "seccomp",
        merge.SecurityProfile("Localhost", "llmsafespace/own.json"),
    ),
    ({"timeout": 60}, None, "timeout_seconds", 60),
    ({"securityContext": {"runAsUser": 2000, "runAsGroup": 3000}}, None, "run_as_user", 2000),
    ({"securityContext": {"runAsUser": 2000, "runAsGroup": 3000}}, None, "run_as_group", 3000),
    ({"filesystem": {"readOnlyRoot": False}}, None, "read_only_root", False),
    ({}, None, "read_only_root", True),
    ({"storage": {"persistent": True}}, None, "volume_size", "5Gi"),
    (
        {"storage": {"persistent": True, "storageClass": "fast"}},
        None,
        "storage_class",
        "fast",
    ),
    ({"networkAccess": {"ingress": True}}, None, "ingress_open", True),
    ({}, None, "profile_name", None),
    ({}, {}, "profile_name", "preset"),
]


@pytest.mark.parametrize(("spec", "profile", "attribute", "expected"), PRECEDENCE)
def test_precedence(
    spec: dict[str, Any], profile: dict[str, Any] | None, attribute: str, expected: object
) -> None:
    assert getattr(merged(spec, profile=profile), attribute) == expected


def test_runtime_supplies_seccomp_and_apparmor_last() -> None:
    result = merged(
        runtime={
            "seccompProfile": {"type": "Localhost", "localhostProfile": "rt.json"},
            "appArmorProfile": {"type": "Localhost", "localhostProfile": "rt-armor"},
        }
    )
    assert result.seccomp == merge.SecurityProfile("Localhost", "rt.json")
    assert result.app_armor == merge.SecurityProfile("Localhost", "rt-armor")


def test_apparmor_default_and_disabled() -> None:
    assert merged().app_armor == merge.SecurityProfile("RuntimeDefault")
    assert merged(options=settings_module.SandboxOptions(app_armor_enabled=False)).app_armor is None


def test_default_storage_class_applies_only_when_persistent() -> None:
    options = settings_module.SandboxOptions(default_storage_class="standard-rwo")
    assert (
        merged({"storage": {"persistent": True}}, options=options).storage_class == "standard-rwo"
    )
    assert merged({}, options=options).storage_class is None


def test_image_is_pinned_by_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert merged(runtime={"imageDigest": digest}).image.endswith(f":3.11@{digest}")


# (sandbox level, profile level or None, isolation, runtime class)
LEVELS = [
    ("standard", None, "standard", None),
    ("high", None, "high", "gvisor"),
    ("standard", "high", "high", "gvisor"),
    ("high", "standard", "high", "gvisor"),
    ("standard", "custom", "custom", "custom-rc"),
    ("custom", "standard", "standard", None),
    ("custom", "high", "high", "gvisor"),
    ("custom", "custom", "custom", "custom-rc"),
    ("high", "custom", "high", "gvisor"),
]


@pytest.mark.parametrize(("level", "profile_level", "isolation", "runtime_class"), LEVELS)
def test_security_levels(
    level: str, profile_level: str | None, isolation: str, runtime_class: str | None
) -> None:
    options = settings_module.SandboxOptions(runtime_class_custom="custom-rc")
    profile = {"securityLevel": profile_level} if profile_level else None
    result = merged({"securityLevel": level}, profile=profile, options=options)
    assert result.security_level == level
    assert result.isolation_level == isolation
    assert result.runtime_class_name == runtime_class


_RANK = {"standard": 0, "custom": 1, "high": 2}


@given(
    level=st.sampled_from(["standard", "high"]),
    profile_level=st.sampled_from(["standard", "high", "custom"]),
)
def test_a_profile_never_lowers_isolation(level: str, profile_level: str) -> None:
    result = merged({"securityLevel": level}, profile={"securityLevel": profile_level})
    assert _RANK[result.isolation_level] >= max(_RANK[level], _RANK[profile_level])
    if "high" in (level, profile_level):
        assert result.runtime_class_name == "gvisor"


@pytest.mark.parametrize(
    ("cpu", "limit"), [("500m", "1"), ("1", "1"), ("1500m", "2"), ("2.1", "3")]
)
def test_cpu_pinning_rounds_up_to_whole_cores(cpu: str, limit: str) -> None:
    result = merged({"resources": {"cpu": cpu, "cpuPinning": True}})
    assert result.cpu_pinning is True
    assert result.cpu_limit == result.cpu_request == limit


def test_cpu_request_percent() -> None:
    options = settings_module.SandboxOptions(cpu_request_percent=25)
    result = merged({"resources": {"cpu": "2"}}, options=options)
    assert (result.cpu_limit, result.cpu_request) == ("2", "500m")
    pinned = merged({"resources": {"cpu": "2", "cpuPinning": True}}, options=options)
    assert pinned.cpu_request == "2"


def test_data_path_comes_from_the_claim_not_an_empty_dir() -> None:
    spec = {"filesystem": {"writablePaths": ["/data", "/cache"]}, "storage": {"persistent": True}}
    assert merged(spec).writable_paths == ("/tmp", "/workspace", "/cache")
    assert "/data" in merged({"filesystem": {"writablePaths": ["/data"]}}).writable_paths


def test_network_rules_merge() -> None:
    result = merged(
        {
            "networkAccess": {
                "egress": [
                    {"domain": "pypi.org"},
                    {"domain": "example.com", "ports": [{"port": 8443, "protocol": "TCP"}]},
                ]
            }
        },
        profile={
            "networkPolicies": [
                {
                    "type": "egress",
                    "rules": [
                        {"domain": "example.com", "ports": [{"port": 53, "protocol": "UDP"}]},
                        {"cidr": "151.101.0.0/16"},
                        # "The internet": every non-public range is kept out.
                        {"cidr": "0.0.0.0/0", "ports": [{"port": 22, "protocol": "TCP"}]},
                    ],
                },
                {"type": "ingress", "rules": [{"cidr": "192.168.0.0/24"}]},
            ]
        },
    )
    tcp, udp = "TCP", "UDP"
    assert result.egress_domains == (
        merge.DomainRule("example.com", (merge.Port(53, udp), merge.Port(8443, tcp))),
        merge.DomainRule("pypi.org", (merge.Port(80, tcp), merge.Port(443, tcp))),
    )
    assert result.egress_cidrs[0] == merge.CidrRule(
        "151.101.0.0/16", (merge.Port(443, tcp), merge.Port(80, tcp))
    )
    internet = result.egress_cidrs[1]
    assert (internet.cidr, internet.ports) == ("0.0.0.0/0", (merge.Port(22, tcp),))
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        internet.excluded
    )
    assert "168.63.129.16/32" in internet.excluded  # egress_denied_cidrs' default
    assert result.ingress_cidrs == (merge.CidrRule("192.168.0.0/24", (merge.Port(8080, tcp),)),)


# (sandbox spec, profile spec or None, runtime spec or None, reason, field)
CONFLICTS = [
    (
        {"filesystem": {"readOnlyRoot": False}},
        {"filesystemConfig": {"readOnlyPaths": ["/etc"]}},
        None,
        merge.Reason.PROFILE_CONFLICT,
        "spec.filesystem.readOnlyRoot",
    ),
    (
        {"filesystem": {"readOnlyRoot": True, "writablePaths": ["/opt/app"]}},
        {"filesystemConfig": {"readOnlyPaths": ["/opt"]}},
        None,
        merge.Reason.PROFILE_CONFLICT,
        "spec.filesystem.writablePaths",
    ),
    (
        {},
        {"filesystemConfig": {"readOnlyPaths": ["/workspace/ro"]}},
        None,
        merge.Reason.PROFILE_CONFLICT,
        "spec.filesystem.writablePaths",
    ),
    (
        {"storage": {"persistent": True}},
        {"filesystemConfig": {"readOnlyPaths": ["/data"]}},
        None,
        merge.Reason.PROFILE_CONFLICT,
        "spec.storage.persistent",
    ),
    (
        {
            "storage": {
                "sharedVolumes": [{"claimName": "c", "mountPath": "/etc/x", "readOnly": False}]
            }
        },
        {"filesystemConfig": {"readOnlyPaths": ["/etc"]}},
        None,
        merge.Reason.PROFILE_CONFLICT,
        "spec.storage.sharedVolumes",
    ),
    (
        {"storage": {"sharedVolumes": [{"claimName": "c", "mountPath": "/tmp"}]}},
        None,
        None,
        merge.Reason.INVALID_SPEC,
        "spec.storage.sharedVolumes",
    ),
    ({}, {"language": "nodejs"}, None, merge.Reason.PROFILE_CONFLICT, "spec.profileRef"),
    ({}, None, {"runAsNonRoot": False}, merge.Reason.RUNTIME_REQUIRES_ROOT, "spec.runtime"),
    (
        {"resources": {"cpu": "100m"}},
        None,
        {"resourceRequirements": {"minCpu": "500m"}},
        merge.Reason.INSUFFICIENT_RESOURCES,
        "spec.resources.cpu",
    ),
    (
        {},
        {"resourceDefaults": {"memory": "128Mi"}},
        {"resourceRequirements": {"minMemory": "256Mi"}},
        merge.Reason.INSUFFICIENT_RESOURCES,
        "spec.profileRef",
    ),
    ({"securityLevel": "extreme"}, None, None, merge.Reason.INVALID_SPEC, "spec.securityLevel"),
    ({"securityLevel": "custom"}, None, None, merge.Reason.INVALID_SPEC, "spec.profileRef"),
    (
        {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
        None,
        None,
        merge.Reason.INVALID_SPEC,
        "spec.securityContext.seccompProfile",
    ),
    ({"resources": {"cpu": "lots"}}, None, None, merge.Reason.INVALID_SPEC, "spec.resources.cpu"),
    (
        # A profile's (or runtime's) seccomp profile binds: the sandbox may not replace it.
        {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
        {"seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/p.json"}},
        None,
        merge.Reason.PROFILE_CONFLICT,
        "spec.securityContext.seccompProfile",
    ),
    (
        {
            "securityContext": {
                "seccompProfile": {
                    "type": "Localhost",
                    "localhostProfile": "operator/team-a/any.json",
                }
            }
        },
        None,
        {"seccompProfile": {"type": "Localhost", "localhostProfile": "rt.json"}},
        merge.Reason.PROFILE_CONFLICT,
        "spec.securityContext.seccompProfile",
    ),
    # Egress never opens the inside of the cluster, the host or the cloud.
    *(
        (
            {"networkAccess": {"egress": [{"domain": domain}]}},
            None,
            None,
            merge.Reason.EGRESS_NOT_ALLOWED,
            "spec.networkAccess.egress[0].domain",
        )
        for domain in (
            "kubernetes",
            "kubernetes.default.svc",
            "10-0-0-5.kube-system.pod.cluster.local",
            "metadata.google.internal",
            "printer.local",
        )
    ),
    (
        {"networkAccess": {"egress": [{"domain": "a" * 64 + ".example.com"}]}},
        None,
        None,
        merge.Reason.INVALID_SPEC,
        "spec.networkAccess.egress[0].domain",
    ),
    *(
        (
            {},
            {"networkPolicies": [{"type": "egress", "rules": [{"cidr": cidr}]}]},
            None,
            merge.Reason.EGRESS_NOT_ALLOWED,
            "spec.profileRef (networkPolicies[0].rules[0])",
        )
        for cidr in ("169.254.169.254/32", "10.20.0.0/16", "fd00:ec2::254/128", "100.64.0.0/10")
    ),
    (
        {},
        {
            "networkPolicies": [
                {"type": "egress", "rules": [{"cidr": "8.8.8.8/32"}, {"domain": "x.svc"}]}
            ]
        },
        None,
        merge.Reason.EGRESS_NOT_ALLOWED,
        "spec.profileRef (networkPolicies[0].rules[1])",
    ),
]


@pytest.mark.parametrize(("spec", "profile", "runtime", "reason", "field"), CONFLICTS)
def test_conflicts_name_their_field(
    spec: dict[str, Any],
    profile: dict[str, Any] | None,
    runtime: dict[str, Any] | None,
    reason: merge.Reason,
    field: str,
) -> None:
    with pytest.raises(merge.SpecConflict) as caught:
        merged(spec, profile=profile, runtime=runtime)
    assert caught.value.reason == reason
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_overlap_is_path_boundary_aware() -> None:
    result = merged(
        {"filesystem": {"readOnlyRoot": True, "writablePaths": ["/tmpfoo"]}},
        profile={"filesystemConfig": {"readOnlyPaths": ["/tmp2", "/etc"]}},
    )
    assert "/tmpfoo" in result.writable_paths
    assert result.read_only_paths == ("/etc", "/tmp2")


def test_an_operator_may_open_an_internal_range() -> None:
    options = OPTIONS.model_copy(update={"egress_allowed_private_cidrs": ["10.20.0.0/16"]})
    result = merged(
        profile={
            "networkPolicies": [
                {"type": "egress", "rules": [{"cidr": "10.20.5.0/24"}, {"cidr": "0.0.0.0/0"}]}
            ]
        },
        options=options,
    )
    mirror, internet = result.egress_cidrs
    assert (mirror.cidr, mirror.excluded) == ("10.20.5.0/24", ())
    # The rest of 10/8 stays out; the allowed hole does not.
    excluded = [ipaddress.ip_network(cidr) for cidr in internet.excluded]
    assert not any(ipaddress.ip_address("10.20.1.1") in net for net in excluded)
    assert any(ipaddress.ip_address("10.21.1.1") in net for net in excluded)


@pytest.mark.parametrize("field", ["egress_denied_cidrs", "egress_allowed_private_cidrs"])
def test_a_bad_cidr_setting_names_the_field(field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        settings_module.SandboxOptions.model_validate({field: ["10.0.0.1/8"]})


def _seccomp(path: str) -> dict[str, Any]:
    return {"seccompProfile": {"type": "Localhost", "localhostProfile": path}}


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("llmsafespace/python.json", True),
        ("llmsafespace/deep/er.json", True),
        # The sandbox's namespace's, as the Security Profiles Operator installs them.
        ("operator/team-a/strict.json", True),
        ("operator/team-b/strict.json", False),  # another namespace's
        ("profiles/audit.json", False),  # a node's profile for other workloads
        ("llmsafespace.json", False),  # a prefix is a directory, not a string prefix
        ("llmsafespacex/a.json", False),
    ],
)
def test_tenants_name_only_localhost_profiles_installed_for_sandboxes(
    path: str, allowed: bool
) -> None:
    """A Sandbox's and a SandboxProfile's Localhost seccomp profile must lie under an allowed
    prefix; a RuntimeEnvironment's (the platform team's) may be anywhere."""
    for spec, profile, field in (
        ({"securityContext": _seccomp(path)}, None, "spec.securityContext.seccompProfile"),
        ({}, _seccomp(path), "spec.profileRef"),
    ):
        if allowed:
            assert merged(spec, profile=profile).seccomp.localhost_profile == path
            continue
        with pytest.raises(merge.SpecConflict) as caught:
            merged(spec, profile=profile)
        assert caught.value.reason == merge.Reason.SECCOMP_NOT_ALLOWED
        assert caught.value.field == field
        assert path in str(caught.value)
        assert "llmsafespace/" in str(caught.value)
    assert merged({}, runtime=_seccomp(path)).seccomp.localhost_profile == path


@pytest.mark.parametrize(
    "path", ["/etc/x.json", "llmsafespace/../profiles/x.json", "llmsafespace//x.json", "./a"]
)
def test_a_localhost_profile_path_that_climbs_or_is_absolute_is_invalid(path: str) -> None:
    """Checked before the prefix: ``llmsafespace/../x`` starts with an allowed prefix."""
    for spec, profile, runtime in (
        ({"securityContext": _seccomp(path)}, None, None),
        ({}, _seccomp(path), None),
        ({}, None, _seccomp(path)),
    ):
        with pytest.raises(merge.SpecConflict) as caught:
            merged(spec, profile=profile, runtime=runtime)
        assert caught.value.reason == merge.Reason.INVALID_SPEC


def test_the_localhost_prefixes_are_configurable_and_checked() -> None:
    options = OPTIONS.model_copy(update={"seccomp_localhost_prefixes": ["profiles/audit.json"]})
    spec = {"securityContext": _seccomp("profiles/audit.json")}
    assert merged(spec, options=options).seccomp.localhost_profile == "profiles/audit.json"
    with pytest.raises(merge.SpecConflict):
        merged({"securityContext": _seccomp("profiles/other.json")}, options=options)
    none = OPTIONS.model_copy(update={"seccomp_localhost_prefixes": []})
    with pytest.raises(merge.SpecConflict) as caught:
        merged({"securityContext": _seccomp("llmsafespace/a.json")}, options=none)
    assert "none" in str(caught.value)
    for bad in ("/var/lib/kubelet/seccomp/", "../x/", "a//b/", ""):
        with pytest.raises(ValueError, match="relative path"):
            settings_module.SandboxOptions(seccomp_localhost_prefixes=[bad])
