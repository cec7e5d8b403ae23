"""The Sandbox lifecycle end to end: real watcher + reconciler, kube-apiserver + kwok, NATS.

In a namespace enforcing Pod Security ``restricted``:

- for each security level, Pending → Creating → Running with status.startTime, podName,
  podNamespace, endpoint and observedGeneration right and every condition True; the pod has
  the level's RuntimeClass; the Service, ServiceAccount and policies exist; deleting the
  Sandbox removes every child before the finalizer goes;
- the lifetime (``spec.timeout`` 2 s) ends in Terminated/Expired with the children released
  and the object kept;
- a pod, Service and policy deleted by hand come back (new UIDs) and the sandbox runs again;
- a child whose deletion hangs (a foreign finalizer) holds the Sandbox's finalizer: the
  Sandbox stays Terminating until the child is really gone;
- a terminating pod keeps its policies and ServiceAccount until it is gone (it still runs
  for its grace period): they are deleted after it, and the finalizer with them;
- the mutable fields change a running sandbox (ingress opened then closed, the lifetime
  shortened) and ``observedGeneration`` follows; the endpoint uses the configured cluster
  domain;
- configured RuntimeClasses per level and tolerations land on the pods.

Phases are recorded from a watch, so none that lasts only milliseconds is missed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from reconciler_harness import Cluster, PhaseRecorder, World, condition, pod_name

from lss_common.kube import objects
from lss_common.models import kinds
from lss_common.testing import eventually
from lss_common.testing.finalizers import HOLD_FINALIZER, hold_deletion, release_deletion
from lss_sandbox_reconciler import names
from lss_sandbox_reconciler.render import owner as owner_module

pytestmark = pytest.mark.integration


async def _assert_running_status(cluster: Cluster, name: str, obj: dict[str, Any]) -> None:
    status = obj["status"]
    assert status["phase"] == "Running"
    assert status["startTime"]
    assert status["podName"] == pod_name(name)
    assert status["podNamespace"] == cluster.namespace
    assert status["endpoint"] == f"{pod_name(name)}.{cluster.namespace}.svc.cluster.local"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    for condition_type in ("Ready", "PodScheduled", "RuntimeResolved", "NetworkReady"):
        assert condition(obj, condition_type)["status"] == "True", condition_type
    assert condition(obj, "Ready")["reason"] == "PodReady"
    assert kinds.FINALIZER in obj["metadata"]["finalizers"]


LEVELS = {
    "standard": ({"securityLevel": "standard"}, None, None),
    "high": ({"securityLevel": "high"}, None, "gvisor"),
    "custom": (
        {"securityLevel": "custom", "profileRef": {"name": "strict"}},
        {"securityLevel": "high"},
        "gvisor",
    ),
}


@pytest.mark.parametrize("level", list(LEVELS))
async def test_lifecycle_for_each_security_level(
    running: Callable[..., Awaitable[World]], cluster: Cluster, level: str
) -> None:
    spec, profile, runtime_class = LEVELS[level]
    world = await running()
    await cluster.create_runtime()
    if profile is not None:
        await cluster.create_profile("strict", spec=profile)
    async with PhaseRecorder(cluster.kube, namespace=cluster.namespace, name="box") as recorder:
        await _lifecycle(
            world, cluster, recorder, spec=spec, profile=profile, runtime_class=runtime_class
        )
        await recorder.until(PhaseRecorder.DELETED)
    # Every phase in order, none skipped: Pending (no phase yet) → Creating → Running →
    # Terminating → gone.
    assert recorder.phases == [None, "Creating", "Running", "Terminating", PhaseRecorder.DELETED]


async def _lifecycle(
    world: World,
    cluster: Cluster,
    recorder: PhaseRecorder,
    *,
    spec: dict[str, Any],
    profile: dict[str, Any] | None,
    runtime_class: str | None,
) -> None:
    created = await cluster.create_sandbox("box", timeout=300, **spec)
    uid = created["metadata"]["uid"]

    obj = await cluster.wait_phase("box", "Running")
    await _assert_running_status(cluster, "box", obj)
    if profile is not None:
        assert condition(obj, "ProfileResolved")["status"] == "True"
    pod = await cluster.child(objects.POD, pod_name("box"))
    assert pod is not None
    assert pod["spec"].get("runtimeClassName") == runtime_class
    assert pod["spec"]["serviceAccountName"] == names.service_account_name("box")
    assert pod["spec"]["automountServiceAccountToken"] is False
    children = await cluster.children(uid)
    assert children == {
        "Pod": [pod_name("box")],
        "Service": [pod_name("box")],
        "ServiceAccount": [pod_name("box")],
        "NetworkPolicy": [names.policy_name("box", policy=names.Policy.DENY)],
        "PersistentVolumeClaim": [],
    }
    # Writes of one cold sandbox: the finalizer, 4 children, Creating and Running statuses.
    reconciler = world.reconcilers[0]
    writes = reconciler.sample("llmsafespace_sandbox_api_writes_total", kind="Pod", verb="create")
    assert writes == 1

    await cluster.delete_sandbox("box")
    await cluster.wait_gone("box")
    await eventually.eventually(
        lambda: recorder.phases[-1] == PhaseRecorder.DELETED,
        timeout_seconds=30,
        describe="the deletion seen by the watch",
    )
    assert await cluster.children(uid) == {
        "Pod": [],
        "Service": [],
        "ServiceAccount": [],
        "NetworkPolicy": [],
        "PersistentVolumeClaim": [],
    }
    await reconciler.counted("llmsafespace_sandbox_deleted_total", 1)


async def test_lifetime_expiry_releases_children(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    await running()
    await cluster.create_runtime()
    async with PhaseRecorder(cluster.kube, namespace=cluster.namespace, name="short") as recorder:
        created = await cluster.create_sandbox("short", timeout=2)
        uid = created["metadata"]["uid"]
        obj = await cluster.wait_phase("short", "Terminated")
        await recorder.until("Terminated")
    assert recorder.phases == [None, "Creating", "Running", "Terminated"]
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Expired")
    assert obj["status"]["startTime"]
    assert "endpoint" not in obj["status"]

    async def released() -> dict[str, Any] | None:
        # The pod's name stays in the status until the pod is gone.
        found = await cluster.sandbox("short")
        if found is None or "podName" in found["status"]:
            return None
        gone = all(not items for items in (await cluster.children(uid)).values())
        return found if gone else None

    kept = await eventually.eventually(released, timeout_seconds=30, describe="children released")
    # The object stays (with its finalizer) until someone deletes it.
    assert kept["status"]["phase"] == "Terminated"
    await cluster.delete_sandbox("short")
    await cluster.wait_gone("short")


async def test_children_deleted_by_hand_come_back(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    await running()
    await cluster.create_runtime()
    await cluster.create_sandbox("keep", timeout=600)
    await cluster.wait_phase("keep", "Running")
    deny = names.policy_name("keep", policy=names.Policy.DENY)
    before = {
        resource.kind: (await cluster.child(resource, name) or {})["metadata"]["uid"]
        for resource, name in (
            (objects.POD, pod_name("keep")),
            (objects.SERVICE, pod_name("keep")),
            (objects.NETWORK_POLICY, deny),
        )
    }
    for resource, name in (
        (objects.POD, pod_name("keep")),
        (objects.SERVICE, pod_name("keep")),
        (objects.NETWORK_POLICY, deny),
    ):
        await objects.delete_object(
            cluster.kube, resource=resource, name=name, namespace=cluster.namespace
        )

    async def recreated() -> bool:
        for resource, name in (
            (objects.POD, pod_name("keep")),
            (objects.SERVICE, pod_name("keep")),
            (objects.NETWORK_POLICY, deny),
        ):
            found = await cluster.child(resource, name)
            if found is None or found["metadata"]["uid"] == before[resource.kind]:
                return False
            if found["metadata"].get("deletionTimestamp"):
                return False
        obj = await cluster.sandbox("keep")
        return bool(obj and condition(obj, "Ready")["status"] == "True")

    await eventually.eventually(
        recreated, timeout_seconds=60, describe="pod, Service and deny policy re-created"
    )
    obj = await cluster.sandbox("keep")
    assert obj is not None
    assert obj["status"]["phase"] == "Running"


async def test_a_policy_edited_by_hand_is_put_back_keeping_what_others_added(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    """Someone (a policy engine, a CNI) labels and annotates the sandbox's deny policy and
    holds it with a finalizer: that alone changes nothing. Its spec edited by hand is put
    back by the next pass, and their label, annotation and finalizer stay."""
    await running()
    await cluster.create_runtime()
    await cluster.create_sandbox("kept", timeout=600)
    await cluster.wait_phase("kept", "Running")
    deny = names.policy_name("kept", policy=names.Policy.DENY)
    original = await cluster.child(objects.NETWORK_POLICY, deny)
    assert original is not None
    decorated = await objects.patch_object(
        cluster.kube,
        resource=objects.NETWORK_POLICY,
        namespace=cluster.namespace,
        name=deny,
        body={
            "metadata": {
                "labels": {"policy.example.com/team": "a"},
                "annotations": {"webhook.example.com/seen": "yes"},
            }
        },
    )
    await hold_deletion(
        cluster.kube, resource=objects.NETWORK_POLICY, name=deny, namespace=cluster.namespace
    )
    try:
        await objects.patch_object(
            cluster.kube,
            resource=objects.NETWORK_POLICY,
            namespace=cluster.namespace,
            name=deny,
            body={"spec": {"policyTypes": ["Ingress"]}},
        )

        async def put_back() -> dict[str, Any] | None:
            found = await cluster.child(objects.NETWORK_POLICY, deny)
            if found is None or found["spec"] != original["spec"]:
                return None
            return found

        restored = await eventually.eventually(
            put_back, timeout_seconds=60, describe="the deny policy's spec put back"
        )
        meta = restored["metadata"]
        assert meta["uid"] == decorated["metadata"]["uid"]  # replaced, not re-created
        assert meta["labels"]["policy.example.com/team"] == "a"
        assert meta["annotations"]["webhook.example.com/seen"] == "yes"
        assert meta["finalizers"] == [HOLD_FINALIZER]
        for key, value in original["metadata"]["labels"].items():
            assert meta["labels"][key] == value
    finally:
        await release_deletion(
            cluster.kube, resource=objects.NETWORK_POLICY, name=deny, namespace=cluster.namespace
        )


async def test_finalizer_stays_until_children_are_gone(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    await running()
    await cluster.create_runtime()
    await cluster.create_sandbox("held", timeout=600)
    await cluster.wait_phase("held", "Running")
    # A foreign finalizer makes the Service's deletion hang.
    await objects.patch_object(
        cluster.kube,
        resource=objects.SERVICE,
        name=pod_name("held"),
        namespace=cluster.namespace,
        body={"metadata": {"finalizers": ["test.llmsafespace.dev/hold"]}},
    )
    await cluster.delete_sandbox("held")
    obj = await cluster.wait_phase("held", "Terminating")
    assert kinds.FINALIZER in obj["metadata"]["finalizers"]

    async def service_deleting_pod_gone() -> bool:
        svc = await cluster.child(objects.SERVICE, pod_name("held"))
        pod = await cluster.child(objects.POD, pod_name("held"))
        return bool(svc and svc["metadata"].get("deletionTimestamp") and pod is None)

    await eventually.eventually(
        service_deleting_pod_gone, timeout_seconds=30, describe="pod gone, Service held"
    )
    # Everything else is gone, but the Service still exists: the finalizer must hold.
    held = await cluster.sandbox("held")
    assert held is not None
    assert kinds.FINALIZER in held["metadata"]["finalizers"]

    await objects.patch_object(
        cluster.kube,
        resource=objects.SERVICE,
        name=pod_name("held"),
        namespace=cluster.namespace,
        body={"metadata": {"finalizers": None}},
    )
    await cluster.wait_gone("held")


async def test_a_terminating_pod_keeps_its_policies_until_it_is_gone(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    await running()
    await cluster.create_runtime()
    created = await cluster.create_sandbox("fenced", timeout=600)
    uid = created["metadata"]["uid"]
    await cluster.wait_phase("fenced", "Running")
    before = await cluster.children(uid)
    assert before["NetworkPolicy"]
    assert before["ServiceAccount"]
    # A pod that takes its time to terminate (as a real one does, up to its grace period).
    await hold_deletion(
        cluster.kube, resource=objects.POD, name=pod_name("fenced"), namespace=cluster.namespace
    )
    await cluster.delete_sandbox("fenced")
    await cluster.wait_phase("fenced", "Terminating")

    async def pod_terminating_service_gone() -> bool:
        pod = await cluster.child(objects.POD, pod_name("fenced"))
        svc = await cluster.child(objects.SERVICE, pod_name("fenced"))
        return bool(pod and pod["metadata"].get("deletionTimestamp") and svc is None)

    await eventually.eventually(
        pod_terminating_service_gone, timeout_seconds=30, describe="pod terminating"
    )
    # The pod is still there: so are its default-deny policy, its other policies and its
    # account, and the Sandbox's finalizer.
    during = await cluster.children(uid)
    assert during["NetworkPolicy"] == before["NetworkPolicy"]
    assert during["ServiceAccount"] == before["ServiceAccount"]
    held = await cluster.sandbox("fenced")
    assert held is not None
    assert kinds.FINALIZER in held["metadata"]["finalizers"]

    await release_deletion(
        cluster.kube, resource=objects.POD, name=pod_name("fenced"), namespace=cluster.namespace
    )
    await cluster.wait_gone("fenced")
    after = await cluster.children(uid)
    assert all(not found for found in after.values()), after


async def test_spec_changes_land_and_observed_generation_follows(
    world: World, cluster: Cluster
) -> None:
    """The mutable fields change a running sandbox: ``networkAccess.ingress`` opens the agent
    port and closing it removes that policy; ``status.observedGeneration`` follows each
    change. The endpoint uses the configured cluster domain."""
    await world.start_reconciler(cluster_domain="sandboxes.example")
    await world.start_watcher()
    await cluster.create_runtime()
    created = await cluster.create_sandbox("open", timeout=600)
    uid = created["metadata"]["uid"]
    obj = await cluster.wait_phase("open", "Running")
    assert obj["status"]["endpoint"] == (
        f"{pod_name('open')}.{cluster.namespace}.svc.sandboxes.example"
    )
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 1
    ingress = names.policy_name("open", policy=names.Policy.INGRESS)
    assert (await cluster.children(uid))["NetworkPolicy"] == [
        names.policy_name("open", policy=names.Policy.DENY)
    ]

    async def observed(generation: int) -> dict[str, Any] | None:
        found = await cluster.sandbox("open")
        if found is None or found["metadata"]["generation"] != generation:
            return None
        return found if found["status"].get("observedGeneration") == generation else None

    for generation, open_port in ((2, True), (3, False)):
        await objects.patch_object(
            cluster.kube,
            resource=objects.SANDBOX,
            name="open",
            namespace=cluster.namespace,
            body={"spec": {"networkAccess": {"ingress": open_port}}},
        )
        obj = await eventually.eventually(
            lambda g=generation: observed(g),
            timeout_seconds=30,
            describe=f"generation {generation} observed",
        )
        assert obj["status"]["phase"] == "Running"
        policy = await cluster.child(objects.NETWORK_POLICY, ingress)
        if open_port:
            assert policy is not None
            assert policy["spec"]["podSelector"]["matchLabels"][owner_module.SANDBOX_UID] == uid
            assert policy["spec"]["policyTypes"] == ["Ingress"]
            assert policy["spec"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
        else:
            assert policy is None

    # The lifetime is mutable too: shortened, the sandbox ends at the new deadline.
    await objects.patch_object(
        cluster.kube,
        resource=objects.SANDBOX,
        name="open",
        namespace=cluster.namespace,
        body={"spec": {"timeout": 1}},
    )
    ended = await cluster.wait_phase("open", "Terminated")
    assert ended["status"]["observedGeneration"] == ended["metadata"]["generation"] == 4


async def test_configured_runtime_classes_and_tolerations_land_on_pods(
    world: World, cluster: Cluster
) -> None:
    """Each level's RuntimeClass comes from the configuration (here standard → gvisor and
    high → kata, both installed on the platform), and so do the tolerations."""
    await world.start_reconciler(
        runtime_class_standard="gvisor",
        runtime_class_high="kata",
        tolerations=[
            {"key": "sandboxes", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}
        ],
    )
    await world.start_watcher()
    await cluster.create_runtime()
    for name, level, runtime_class in (("std", "standard", "gvisor"), ("hi", "high", "kata")):
        await cluster.create_sandbox(name, timeout=600, securityLevel=level)
        await cluster.wait_phase(name, "Running")
        pod = await cluster.child(objects.POD, pod_name(name))
        assert pod is not None
        assert pod["spec"]["runtimeClassName"] == runtime_class, name
        assert {
            "key": "sandboxes",
            "operator": "Equal",
            "value": "yes",
            "effect": "NoSchedule",
        } in pod["spec"]["tolerations"]
