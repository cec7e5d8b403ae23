"""conformance.deviations: a claimed warm pod as the API server stores it (defaults added,
quantities respelled, scheduled, the pool's ServiceAccount) conforms to the sandbox's
rendered pod; every tampering a squatter or a pod patch could make is found and named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from lss_sandbox_reconciler import conformance, merge, testing
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module
from lss_sandbox_reconciler.render import pod as pod_render

OPTIONS = settings_module.SandboxOptions()


def _rendered(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    sandbox = testing.make_sandbox(spec=spec)
    effective = merge.merge_spec(
        sandbox, profile=None, runtime=testing.make_runtime(), settings=OPTIONS
    )
    owner = owner_module.owner_of(sandbox, settings=OPTIONS)
    spec_out: dict[str, Any] = pod_render.render_pod(effective, owner=owner, settings=OPTIONS)[
        "spec"
    ]
    return spec_out


def _stored(expected: dict[str, Any]) -> dict[str, Any]:
    """``expected`` as the API server stores a warm pod of the pool: defaults, scheduling,
    another ServiceAccount, a quantity in another spelling."""
    pod = copy.deepcopy(expected)
    pod["serviceAccountName"] = pod["serviceAccount"] = "warmpool-py"
    pod.update(
        dnsPolicy="ClusterFirst",
        schedulerName="default-scheduler",
        nodeName="kwok-node-0",
        priority=0,
        preemptionPolicy="PreemptLowerPriority",
        tolerations=[
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
    )
    container = pod["containers"][0]
    container["terminationMessagePath"] = "/dev/termination-log"
    container["resources"]["limits"]["memory"] = "536870912"  # 512Mi
    container["readinessProbe"]["successThreshold"] = 1
    return pod


def test_a_warm_pod_as_stored_conforms() -> None:
    expected = _rendered()
    assert conformance.deviations(expected, _stored(expected)) == []
    assert conformance.deviations(expected, expected) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(pod: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = pod
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda pod: pod.pop(key)


TAMPERED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("image", _set("containers.0.image", "evil:1"), "spec.containers[sandbox].image"),
    ("runc", _drop("runtimeClassName"), "spec.runtimeClassName"),
    ("privileged", _set("containers.0.securityContext.privileged", True), "securityContext"),
    ("seccomp", _set("securityContext.seccompProfile", {"type": "Unconfined"}), "securityContext"),
    ("token", _set("automountServiceAccountToken", True), "spec.automountServiceAccountToken"),
    ("host network", _set("hostNetwork", True), "spec.hostNetwork"),
    ("init container", _set("initContainers", [{"name": "x", "image": "x"}]), "initContainers"),
    (
        "sidecar",
        lambda pod: pod["containers"].append({"name": "side", "image": "x"}),
        "spec.containers",
    ),
    (
        "host path",
        lambda pod: pod["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "spec.volumes",
    ),
    ("volume swapped", _set("volumes.0", {"name": "tmp", "hostPath": {"path": "/"}}), "emptyDir"),
    ("env from", _set("containers.0.envFrom", [{"secretRef": {"name": "s"}}]), "envFrom"),
    ("command", _set("containers.0.command", ["sh", "-c", "evil"]), "command"),
    ("hook", _set("containers.0.lifecycle", {"postStart": {}}), "lifecycle"),
    ("dns", _set("dnsConfig", {"nameservers": ["1.2.3.4"]}), "spec.dnsConfig"),
    (
        "runtime annotation",
        lambda pod: None,  # set on the metadata below
        "io.katacontainers.config.hypervisor",
    ),
    ("sysctls", _set("securityContext.sysctls", [{"name": "x", "value": "1"}]), "securityContext"),
    ("other image digest", _set("containers.0.image", "evil@sha256:" + "0" * 64), "image"),
    ("less memory", _set("containers.0.resources.limits.memory", "1Gi"), "limits.memory"),
    ("mount moved", _set("containers.0.volumeMounts.0.mountPath", "/etc"), "volumeMounts"),
]


@pytest.mark.parametrize(("what", "change", "named"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_every_tampering_is_found_and_named(
    what: str, change: Callable[[dict[str, Any]], None], named: str
) -> None:
    expected = _rendered({"securityLevel": "high"})
    assert expected["runtimeClassName"] == "gvisor"
    pod = _stored(expected)
    change(pod)
    annotations = (
        {"io.katacontainers.config.hypervisor.kernel_params": "x"}
        if what == "runtime annotation"
        else {}
    )
    found = conformance.deviations(expected, pod, annotations=annotations)
    assert found, what
    assert any(named in line for line in found), found


def test_what_a_platforms_admission_adds_for_scheduling_or_identity_conforms() -> None:
    """A RuntimeClass's scheduling (node selector, tolerations), a ServiceAccount's image pull
    secrets, SELinux options, an image pinned to its digest, a mesh's named sidecar."""
    expected = _rendered({"securityLevel": "high"})
    pod = _stored(expected)
    pod["nodeSelector"] = {"sandbox.gke.io/runtime": "gvisor"}
    pod["tolerations"].append({"key": "sandbox.gke.io/runtime", "value": "gvisor"})
    pod["imagePullSecrets"] = [{"name": "registry"}]
    pod["securityContext"]["seLinuxOptions"] = {"level": "s0:c1,c2"}
    container = pod["containers"][0]
    container["image"] = f"{container['image']}@sha256:{'a' * 64}"
    pod["containers"].append({"name": "istio-proxy", "image": "proxy:1"})
    pod["initContainers"] = [{"name": "istio-init", "image": "proxy:1"}]
    injected = frozenset({"istio-proxy", "istio-init"})
    assert conformance.deviations(expected, pod, injected=injected) == []
    # Not named: a sidecar is an extra container.
    unnamed = conformance.deviations(expected, pod, injected=frozenset({"istio-proxy"}))
    assert any("initContainers" in line for line in unnamed), unnamed


def test_a_false_or_empty_field_the_api_server_omits_is_no_deviation() -> None:
    expected = _rendered()
    pod = _stored(expected)
    for key in ("hostNetwork", "hostPID", "hostIPC", "enableServiceLinks"):
        pod.pop(key)
    assert conformance.deviations(expected, pod) == []
    pod["hostPID"] = True
    assert conformance.deviations(expected, pod) == ["spec.hostPID: True, not False"]
