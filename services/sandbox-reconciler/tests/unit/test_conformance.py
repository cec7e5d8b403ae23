"""conformance.deviations: a claimed warm pod as the API server stores it (defaults added,
quantities respelled, scheduled, the pool's ServiceAccount) conforms to the sandbox's
rendered pod; every tampering a squatter or a pod patch could make is found and named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from lss_common.logic import pod_records
from lss_common.models import warmpod as warmpod_model
from lss_sandbox_reconciler import conformance, merge, ready_queue, testing, warm
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


# -- warm.verify_claimed_pods: the record first, the cold spec only when strict --------------


def _candidate(pod: dict[str, Any]) -> ready_queue.Candidate:
    return ready_queue.Candidate(
        namespace="team-a",
        name="py-0",
        uid="warm-pod-uid",
        resource_version="7",
        pool="pool-uid",
        pod_name="py-0-pod",
        spec_hash="a" * 64,
        record=warmpod_model.WarmPodSpec(
            pool_ref=warmpod_model.PoolRef(name="py"),
            runtime="python:3.11",
            security_level="standard",
            resources=warmpod_model.WarmPodResources(
                cpu="1", memory="1Gi", ephemeral_storage="1Gi"
            ),
        ),
        pod_uid=pod["metadata"]["uid"],
        stored_spec_hash=pod_records.stored_spec_hash(pod),
    )


def _claimed(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "py-0-pod", "uid": "pod-uid-1"}, "spec": spec}


def _check(
    pod: dict[str, Any], candidate: ready_queue.Candidate, check: str, expected: dict[str, Any]
) -> list[str]:
    return warm.claimed_pod_deviations(
        pod,
        candidate=candidate,
        expected=expected,
        options=settings_module.WarmOptions(verify_claimed_pods=check),
    )


def test_a_mesh_injected_pod_passes_the_record_check_and_fails_the_strict_one() -> None:
    """Istio-like admission at creation (a sidecar, an init container, volumes, an
    annotation): the pool manager recorded the pod with them, so a claim runs on it unless
    the operator asked for ``strict``."""
    expected = _rendered()
    stored = _stored(expected)
    stored["initContainers"] = [{"name": "istio-init", "image": "proxyv2"}]
    stored["containers"].append({"name": "istio-proxy", "image": "proxyv2"})
    stored["volumes"] = [*stored.get("volumes", []), {"name": "istio-envoy", "emptyDir": {}}]
    pod = _claimed(stored)
    candidate = _candidate(pod)
    assert _check(pod, candidate, "recorded", expected) == []
    strict = _check(pod, candidate, "strict", expected)
    assert any("spec.volumes" in d for d in strict), strict
    assert _check(pod, candidate, "off", expected) == []


def test_a_pod_changed_after_its_record_fails_every_check_but_off() -> None:
    expected = _rendered()
    pod = _claimed(_stored(expected))
    candidate = _candidate(pod)
    pod["spec"]["containers"][0]["image"] = "evil:latest"
    for check in ("recorded", "strict"):
        found = _check(pod, candidate, check, expected)
        assert "pod py-0-pod's spec changed since it was created" in found, (check, found)
    assert _check(pod, candidate, "off", expected) == []


def test_a_squatted_pod_identical_to_the_recorded_one_is_refused() -> None:
    """Same spec, forged owner, another UID: the record's UID tells them apart."""
    expected = _rendered()
    pod = _claimed(_stored(expected))
    candidate = _candidate(pod)
    pod["metadata"]["uid"] = "squatter-uid"
    (found,) = _check(pod, candidate, "recorded", expected)
    assert "not the pod created for it" in found
    assert "squatter-uid" in found


def test_the_setting_names_its_field_on_bad_input() -> None:
    with pytest.raises(pydantic.ValidationError, match="verify_claimed_pods"):
        settings_module.WarmOptions.model_validate({"verify_claimed_pods": "yes"})
    # The boolean of earlier versions still works: on is the record check.
    for value, check in (("true", "recorded"), ("False", "off"), (True, "recorded")):
        options = settings_module.WarmOptions.model_validate({"verify_claimed_pods": value})
        assert options.verify_claimed_pods == check
