"""render: the pod's security contract item by item (restricted PSS, no token, no service
links, no host namespaces, probes, grace period, RuntimeClass per level, pinning without
mutating the configured node selector); a table showing each spec and profile field landing
on the pod, Service, policies or claim; ownership (controller ref same-namespace, labels only
across namespaces, none on a retained claim); network policies (deny, DNS, API, ingress on/off,
egress by /32 ipBlocks or Cilium toFQDNs, unresolved domains fail closed, never 0.0.0.0/0)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.models import labels
from lss_sandbox_reconciler import merge, testing
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import account, network, owner, pod, service, volume

OPTIONS = settings_module.SandboxOptions()
IPBLOCK = settings_module.EgressMode.IPBLOCK
CILIUM = settings_module.EgressMode.CILIUM


def build(
    spec: dict[str, Any] | None = None,
    *,
    profile: dict[str, Any] | None = None,
    options: settings_module.SandboxOptions = OPTIONS,
) -> tuple[merge.EffectiveSpec, owner.Owner]:
    if profile is not None:
        spec = {**(spec or {}), "profileRef": {"name": "preset"}}
    obj = testing.make_sandbox(spec=spec)
    effective = merge.merge_spec(
        obj,
        profile=testing.make_profile(spec=profile) if profile is not None else None,
        runtime=testing.make_runtime(),
        settings=options,
    )
    return effective, owner.owner_of(obj, settings=options)


def render_pod(spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    options = kwargs.pop("options", OPTIONS)
    effective, who = build(spec, options=options, **kwargs)
    return pod.render_pod(effective, owner=who, settings=options)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["containers"]
    return dict(only)


def policies(
    spec: dict[str, Any] | None = None,
    *,
    mode: settings_module.EgressMode = IPBLOCK,
    resolved: dict[str, list[str]] | None = None,
    profile: dict[str, Any] | None = None,
) -> network.Policies:
    effective, who = build(spec, profile=profile)
    return network.render_policies(
        effective, owner=who, settings=OPTIONS, egress_mode=mode, resolved=resolved or {}
    )


# -- the security contract ------------------------------------------------------------------


def test_pod_security_restricted() -> None:
    manifest = render_pod()
    pod_spec = manifest["spec"]
    context = pod_spec["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (1000, 1000, 1000)
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["appArmorProfile"] == {"type": "RuntimeDefault"}
    box = container(manifest)
    assert box["securityContext"]["allowPrivilegeEscalation"] is False
    assert box["securityContext"]["privileged"] is False
    assert box["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert box["securityContext"]["runAsNonRoot"] is True
    assert box["securityContext"]["readOnlyRootFilesystem"] is True


def test_no_host_namespaces_token_or_service_links() -> None:
    pod_spec = render_pod()["spec"]
    assert pod_spec["hostNetwork"] is False
    assert pod_spec["hostPID"] is False
    assert pod_spec["hostIPC"] is False
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["enableServiceLinks"] is False
    assert pod_spec["serviceAccountName"] == "sandbox-demo"
    assert "hostPath" not in str(pod_spec["volumes"])


def test_agent_container_contract() -> None:
    manifest = render_pod()
    box = container(manifest)
    assert box["name"] == "sandbox"
    assert box["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert box["livenessProbe"]["httpGet"]["path"] == "/health"
    assert box["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert manifest["spec"]["terminationGracePeriodSeconds"] == 5
    assert manifest["spec"]["restartPolicy"] == "Always"


def test_localhost_seccomp_and_custom_identity() -> None:
    manifest = render_pod(
        {
            "securityContext": {
                "runAsUser": 2000,
                "runAsGroup": 3000,
                "seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/p.json"},
            }
        }
    )
    context = manifest["spec"]["securityContext"]
    assert context["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "llmsafespace/p.json",
    }
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (2000, 3000, 3000)


def test_resources_requests_and_limits() -> None:
    resources = container(render_pod())["resources"]
    expected = {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1Gi"}
    assert resources == {"requests": expected, "limits": expected}


@pytest.mark.parametrize(("level", "runtime_class"), [("standard", None), ("high", "gvisor")])
def test_runtime_class_per_level(level: str, runtime_class: str | None) -> None:
    assert render_pod({"securityLevel": level})["spec"].get("runtimeClassName") == runtime_class


def test_cpu_pinning_without_mutating_the_configured_selector() -> None:
    configured = {"pool": "sandboxes"}
    options = settings_module.SandboxOptions(node_selector=configured)
    pinned = render_pod({"resources": {"cpu": "1500m", "cpuPinning": True}}, options=options)
    plain = render_pod({}, options=options)
    assert pinned["spec"]["nodeSelector"] == {"pool": "sandboxes", "cpu-pinning": "true"}
    assert plain["spec"]["nodeSelector"] == {"pool": "sandboxes"}
    assert options.node_selector == {"pool": "sandboxes"}
    resources = container(pinned)["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["cpu"] == "2"
    assert pinned["metadata"]["annotations"] == {pod.CPU_PINNING_ANNOTATION: "true"}


def test_tolerations_and_required_node_features() -> None:
    options = settings_module.SandboxOptions(
        tolerations=[
            settings_module.Toleration(key="sandbox", value="yes", effect="NoSchedule"),
            settings_module.Toleration(
                operator="Exists", effect="NoExecute", toleration_seconds=30
            ),
        ]
    )
    effective, who = build({})
    effective = merge.EffectiveSpec(
        **{**_fields(effective), "required_node_features": ("feature/avx2",)}
    )
    manifest = pod.render_pod(effective, owner=who, settings=options)
    assert manifest["spec"]["tolerations"] == [
        {"operator": "Equal", "key": "sandbox", "value": "yes", "effect": "NoSchedule"},
        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
    ]
    terms = manifest["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "feature/avx2", "operator": "Exists"}]}]


def _fields(spec: merge.EffectiveSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def test_volumes_are_size_limited_empty_dirs_and_the_claim() -> None:
    manifest = render_pod(
        {
            "filesystem": {"readOnlyRoot": True, "writablePaths": ["/cache"]},
            "storage": {
                "persistent": True,
                "sharedVolumes": [{"claimName": "datasets", "mountPath": "/datasets"}],
            },
            "resources": {"ephemeralStorage": "2Gi"},
        }
    )
    volumes = {v["name"]: v for v in manifest["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container(manifest)["volumeMounts"]}
    for name in ("tmp", "workspace", "writable-2"):
        assert volumes[name]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert set(mounts) == {"/tmp", "/workspace", "/cache", "/data", "/datasets"}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "sandbox-demo-data"}
    assert volumes["shared-0"]["persistentVolumeClaim"] == {
        "claimName": "datasets",
        "readOnly": True,
    }
    assert mounts["/datasets"]["readOnly"] is True


def test_empty_dir_limit_setting_is_capped_by_ephemeral_storage() -> None:
    effective, _ = build({"resources": {"ephemeralStorage": "1Gi"}})
    small = settings_module.SandboxOptions(empty_dir_size_limit_bytes=256 * 2**20)
    large = settings_module.SandboxOptions(empty_dir_size_limit_bytes=8 * 2**30)
    assert volume.empty_dir_size_limit(effective, settings=small) == "256Mi"
    assert volume.empty_dir_size_limit(effective, settings=large) == "1Gi"


# -- every field visibly lands --------------------------------------------------------------


def _pod(spec: dict[str, Any], profile: dict[str, Any] | None = None) -> dict[str, Any]:
    return render_pod(spec, profile=profile)


def _claim(spec: dict[str, Any], profile: dict[str, Any] | None = None) -> dict[str, Any] | None:
    effective, who = build(spec, profile=profile)
    return volume.render_claim(effective, owner=who, settings=OPTIONS)


def _net(spec: dict[str, Any], profile: dict[str, Any] | None = None) -> dict[str, Any]:
    result = policies(spec, profile=profile, resolved={"pypi.org": ["151.101.0.223"]})
    return dict(result.network_policies)


LANDS: list[
    tuple[
        str,
        Callable[..., Any],
        dict[str, Any],
        dict[str, Any] | None,
        Callable[[Any], object],
        object,
    ]
] = [
    (
        "runtime→image",
        _pod,
        {},
        None,
        lambda m: container(m)["image"],
        "ghcr.io/llmsafespace/runtime-python:3.11",
    ),
    (
        "securityLevel",
        _pod,
        {"securityLevel": "high"},
        None,
        lambda m: m["spec"]["runtimeClassName"],
        "gvisor",
    ),
    (
        "resources.cpu",
        _pod,
        {"resources": {"cpu": "2"}},
        None,
        lambda m: container(m)["resources"]["limits"]["cpu"],
        "2",
    ),
    (
        "resources.memory",
        _pod,
        {"resources": {"memory": "1Gi"}},
        None,
        lambda m: container(m)["resources"]["limits"]["memory"],
        "1Gi",
    ),
    (
        "resources.ephemeralStorage",
        _pod,
        {"resources": {"ephemeralStorage": "3Gi"}},
        None,
        lambda m: container(m)["resources"]["limits"]["ephemeral-storage"],
        "3Gi",
    ),
    (
        "resources.cpuPinning",
        _pod,
        {"resources": {"cpuPinning": True}},
        None,
        lambda m: m["spec"]["nodeSelector"],
        {"cpu-pinning": "true"},
    ),
    (
        "filesystem.readOnlyRoot",
        _pod,
        {"filesystem": {"readOnlyRoot": False}},
        None,
        lambda m: container(m)["securityContext"]["readOnlyRootFilesystem"],
        False,
    ),
    (
        "filesystem.writablePaths",
        _pod,
        {"filesystem": {"readOnlyRoot": True, "writablePaths": ["/x"]}},
        None,
        lambda m: [v["mountPath"] for v in container(m)["volumeMounts"]],
        ["/tmp", "/workspace", "/x"],
    ),
    (
        "storage.persistent",
        _pod,
        {"storage": {"persistent": True}},
        None,
        lambda m: container(m)["volumeMounts"][-1]["mountPath"],
        "/data",
    ),
    (
        "storage.volumeSize",
        _claim,
        {"storage": {"persistent": True, "volumeSize": "7Gi"}},
        None,
        lambda m: m["spec"]["resources"]["requests"]["storage"],
        "7Gi",
    ),
    (
        "storage.storageClass",
        _claim,
        {"storage": {"persistent": True, "storageClass": "fast"}},
        None,
        lambda m: m["spec"]["storageClassName"],
        "fast",
    ),
    (
        "securityContext.runAsUser",
        _pod,
        {"securityContext": {"runAsUser": 4242}},
        None,
        lambda m: m["spec"]["securityContext"]["runAsUser"],
        4242,
    ),
    (
        "securityContext.runAsGroup",
        _pod,
        {"securityContext": {"runAsGroup": 4343}},
        None,
        lambda m: m["spec"]["securityContext"]["fsGroup"],
        4343,
    ),
    (
        "securityContext.seccompProfile",
        _pod,
        {
            "securityContext": {
                "seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/a.json"}
            }
        },
        None,
        lambda m: m["spec"]["securityContext"]["seccompProfile"]["localhostProfile"],
        "llmsafespace/a.json",
    ),
    (
        "networkAccess.ingress",
        _net,
        {"networkAccess": {"ingress": True}},
        None,
        lambda m: "sandbox-demo-ingress" in m,
        True,
    ),
    (
        "networkAccess.egress",
        _net,
        {"networkAccess": {"egress": [{"domain": "pypi.org"}]}},
        None,
        lambda m: m["sandbox-demo-egress"]["spec"]["egress"][0]["to"],
        [{"ipBlock": {"cidr": "151.101.0.223/32"}}],
    ),
    (
        "profile.securityLevel",
        _pod,
        {},
        {"securityLevel": "high"},
        lambda m: m["spec"]["runtimeClassName"],
        "gvisor",
    ),
    (
        "profile.seccompProfile",
        _pod,
        {},
        {"seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/p.json"}},
        lambda m: m["spec"]["securityContext"]["seccompProfile"]["localhostProfile"],
        "llmsafespace/p.json",
    ),
    (
        "profile.resourceDefaults",
        _pod,
        {},
        {"resourceDefaults": {"cpu": "3", "memory": "3Gi", "ephemeralStorage": "4Gi"}},
        lambda m: container(m)["resources"]["limits"],
        {"cpu": "3", "memory": "3Gi", "ephemeral-storage": "4Gi"},
    ),
    (
        "profile.filesystemConfig.writablePaths",
        _pod,
        {},
        {"filesystemConfig": {"writablePaths": ["/home/app"]}},
        lambda m: container(m)["volumeMounts"][-1]["mountPath"],
        "/home/app",
    ),
    (
        "profile.networkPolicies egress cidr",
        _net,
        {},
        {"networkPolicies": [{"type": "egress", "rules": [{"cidr": "151.101.0.0/16"}]}]},
        lambda m: m["sandbox-demo-egress"]["spec"]["egress"][0]["to"],
        [{"ipBlock": {"cidr": "151.101.0.0/16"}}],
    ),
    (
        "profile.networkPolicies ingress cidr",
        _net,
        {},
        {"networkPolicies": [{"type": "ingress", "rules": [{"cidr": "10.8.0.0/16"}]}]},
        lambda m: m["sandbox-demo-ingress"]["spec"]["ingress"][0]["from"],
        [{"ipBlock": {"cidr": "10.8.0.0/16"}}],
    ),
]


@pytest.mark.parametrize(
    ("field", "render", "spec", "profile", "read", "expected"),
    LANDS,
    ids=[row[0] for row in LANDS],
)
def test_field_lands(
    field: str,
    render: Callable[..., Any],
    spec: dict[str, Any],
    profile: dict[str, Any] | None,
    read: Callable[[Any], object],
    expected: object,
) -> None:
    assert read(render(spec, profile)) == expected, field


def test_endpoint_and_service() -> None:
    _, who = build({})
    manifest = service.render_service(who)
    assert manifest["spec"]["type"] == "ClusterIP"
    assert manifest["spec"]["selector"] == {owner.SANDBOX_UID: testing.UID}
    assert manifest["spec"]["ports"][0]["port"] == 8080
    assert service.endpoint(who, cluster_domain="corp.local") == (
        "sandbox-demo.team-a.svc.corp.local"
    )


def test_service_account_mounts_no_token() -> None:
    _, who = build({})
    assert account.render_service_account(who)["automountServiceAccountToken"] is False


# -- ownership ------------------------------------------------------------------------------


def test_same_namespace_children_have_a_controller_reference() -> None:
    manifest = render_pod()
    (ref,) = manifest["metadata"]["ownerReferences"]
    assert ref == {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "Sandbox",
        "name": "demo",
        "uid": testing.UID,
        "controller": True,
    }
    assert manifest["metadata"]["labels"][labels.APP] == labels.APP_VALUE
    assert manifest["metadata"]["labels"][labels.SANDBOX_NAME] == "demo"
    assert labels.SANDBOX_NAMESPACE not in manifest["metadata"]["labels"]


def test_isolation_uses_labels_not_owner_references() -> None:
    options = settings_module.SandboxOptions(namespace_isolation=True)
    manifest = render_pod({}, options=options)
    assert manifest["metadata"]["namespace"] == f"sandbox-{testing.UID}"
    assert "ownerReferences" not in manifest["metadata"]
    assert manifest["metadata"]["labels"][labels.SANDBOX_NAMESPACE] == "team-a"
    assert manifest["metadata"]["labels"][labels.SANDBOX_NAME] == "demo"


def test_isolation_refuses_names_that_cannot_be_labels() -> None:
    options = settings_module.SandboxOptions(namespace_isolation=True)
    obj = testing.make_sandbox(name="a" * 70)
    with pytest.raises(merge.SpecConflict, match=r"metadata\.name"):
        owner.owner_of(obj, settings=options)


def test_retained_claim_has_no_owner_reference() -> None:
    effective, who = build({"storage": {"persistent": True}})
    retain = settings_module.SandboxOptions(pvc_retention=settings_module.PvcRetention.RETAIN)
    kept = volume.render_claim(effective, owner=who, settings=retain)
    deleted = volume.render_claim(effective, owner=who, settings=OPTIONS)
    assert kept is not None
    assert deleted is not None
    assert "ownerReferences" not in kept["metadata"]
    assert "ownerReferences" in deleted["metadata"]
    assert volume.render_claim(build({})[0], owner=who, settings=OPTIONS) is None
    # Its name fits a label: the label names the sandbox, no annotation needed.
    assert "annotations" not in kept["metadata"]


def test_a_retained_claim_of_a_long_named_sandbox_names_it_by_annotation() -> None:
    """No owner reference and no name label (too long): the annotation lets the watcher map
    the claim's changes to its Sandbox."""
    obj = testing.make_sandbox(name="a" * 80, spec={"storage": {"persistent": True}})
    retain = settings_module.SandboxOptions(pvc_retention=settings_module.PvcRetention.RETAIN)
    who = owner.owner_of(obj, settings=retain)
    effective = merge.merge_spec(obj, profile=None, runtime=testing.make_runtime(), settings=retain)
    kept = volume.render_claim(effective, owner=who, settings=retain)
    assert kept is not None
    assert kept["metadata"]["annotations"] == {labels.SANDBOX_NAME_ANNOTATION: "a" * 80}
    assert labels.SANDBOX_NAME not in kept["metadata"]["labels"]


# -- network --------------------------------------------------------------------------------


def test_baseline_policies() -> None:
    """One object: default deny both ways, DNS out and the API in (three objects before)."""
    found = policies().network_policies
    assert set(found) == {"sandbox-demo-deny"}
    deny = found["sandbox-demo-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {owner.SANDBOX_UID: testing.UID}}
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    (dns,) = deny["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    (api,) = deny["ingress"]
    assert api["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert api["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "llmsafespace"}},
            "podSelector": {"matchLabels": {"app": "llmsafespace", "component": "api"}},
        }
    ]


def test_ingress_true_opens_only_the_agent_port() -> None:
    policy = policies({"networkAccess": {"ingress": True}}).network_policies["sandbox-demo-ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_ipblock_egress_and_default_ports() -> None:
    result = policies(
        {"networkAccess": {"egress": [{"domain": "pypi.org"}, {"domain": "nowhere.example"}]}},
        resolved={"pypi.org": ["151.101.0.223", "151.101.0.223", "2a04:4e42::223"]},
    )
    egress = result.network_policies["sandbox-demo-egress"]
    (rule,) = egress["spec"]["egress"]
    assert rule["to"] == [
        {"ipBlock": {"cidr": "151.101.0.223/32"}},
        {"ipBlock": {"cidr": "2a04:4e42::223/128"}},
    ]
    assert rule["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]
    assert result.unresolved_domains == ("nowhere.example",)
    assert egress["metadata"]["annotations"] == {network.ALLOWED_DOMAINS_ANNOTATION: "pypi.org"}


def test_unresolved_domains_open_nothing() -> None:
    result = policies({"networkAccess": {"egress": [{"domain": "pypi.org"}]}}, resolved={})
    assert "sandbox-demo-egress" not in result.network_policies
    assert result.unresolved_domains == ("pypi.org",)


def test_cilium_mode_uses_fqdn_rules() -> None:
    result = policies(
        {
            "networkAccess": {
                "egress": [{"domain": "pypi.org", "ports": [{"port": 8443, "protocol": "TCP"}]}]
            }
        },
        mode=CILIUM,
    )
    assert "sandbox-demo-egress" not in result.network_policies
    fqdn = result.cilium_policies["sandbox-demo-fqdn"]
    assert fqdn["apiVersion"] == "cilium.io/v2"
    dns_rule, domain_rule = fqdn["spec"]["egress"]
    assert dns_rule["toPorts"][0]["rules"] == {"dns": [{"matchPattern": "*"}]}
    assert domain_rule == {
        "toFQDNs": [{"matchName": "pypi.org"}],
        "toPorts": [{"ports": [{"port": "8443", "protocol": "TCP"}]}],
    }
    assert result.unresolved_domains == ()
    # Whatever the DNS proxy sees the name resolve to, the inside stays closed: a deny rule
    # wins over every allow.
    (deny,) = fqdn["spec"]["egressDeny"]
    denied = {peer["cidr"] for peer in deny["toCIDRSet"]}
    assert {"10.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "fc00::/7"} <= denied
    assert "168.63.129.16/32" in denied


@pytest.mark.parametrize(
    ("configured", "cilium", "expected"),
    [
        (settings_module.EgressMode.AUTO, True, CILIUM),
        (settings_module.EgressMode.AUTO, False, IPBLOCK),
        (IPBLOCK, True, IPBLOCK),
        (CILIUM, False, CILIUM),
    ],
)
def test_choose_egress_mode(
    configured: settings_module.EgressMode,
    cilium: bool,
    expected: settings_module.EgressMode,
) -> None:
    options = settings_module.SandboxOptions(egress_mode=configured)
    assert network.choose_egress_mode(options, cilium_available=cilium) is expected


ADDRESSES = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(
        [
            "0.0.0.0",
            "::",
            "127.0.0.1",
            "169.254.169.254",
            "not-an-ip",
            "224.0.0.1",
            "10.0.0.5",
            "100.100.100.200",
            "fd00:ec2::254",
            "168.63.129.16",
            "151.101.0.223",
        ]
    ),
)


@given(addresses=st.lists(ADDRESSES, max_size=8))
def test_domain_rules_are_only_host_routes(addresses: list[str]) -> None:
    result = policies(
        {"networkAccess": {"egress": [{"domain": "pypi.org"}]}},
        resolved={"pypi.org": addresses},
    )
    for policy in result.network_policies.values():
        for rule in policy["spec"].get("egress", ()):
            assert rule.get("to"), "a rule without peers would allow every destination"
            for peer in rule["to"]:
                if "ipBlock" not in peer:
                    continue
                net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                assert net.num_addresses == 1
                address = net.network_address
                assert not address.is_unspecified
                assert not address.is_loopback
                assert not address.is_link_local
                # Nothing inside the cluster, the host or the cloud (egress_ranges.py).
                assert address.is_global
                assert str(address) != "168.63.129.16"
