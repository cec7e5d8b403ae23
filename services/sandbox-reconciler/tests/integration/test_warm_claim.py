"""Warm starts against the real apiserver + kwok and nats-server, with the real watcher, pool
manager(s) and reconciler(s) running in-process.

- a sandbox like the pool starts warm: ``status.warmPodRef`` names a WarmPod that is
  Assigned to the sandbox's UID, and that WarmPod's pod is the sandbox's pod, owned by the
  Sandbox alone (one owner reference, the controller), labelled for its Service; a `high`
  sandbox never gets the `standard` pool's pod, and other resources or a profile start cold;
  ending the warm sandbox deletes its WarmPod and the pool refills;
- 200 sandboxes created at once against a pool of 50, with two reconcilers and two pool
  managers: every sandbox Running with exactly one pod; no WarmPod assigned twice nor
  referenced by two sandboxes (read back from the apiserver); no pod with two owners; a warm
  sandbox runs on its WarmPod's pod, a cold one on its own; the reconcilers' counts of warm
  and cold starts equal what the API server shows (warm plus cold is 200, each started once).
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator
from typing import Any

import prometheus_client
import pytest
from reconciler_harness import Cluster, World

from lss_common import errors
from lss_common import settings as common_settings
from lss_common.kube import client, objects
from lss_common.models import kinds, labels
from lss_common.models import sandbox as sandbox_model
from lss_common.runtime import clock as clock_module
from lss_common.testing import eventually
from lss_common.testing.finalizers import hold_deletion, release_deletion
from lss_pool_manager import service as pool_service
from lss_pool_manager import settings as pool_settings_module
from lss_sandbox_reconciler import adopt, names, plan, ready_queue, warm
from lss_sandbox_reconciler import metrics as sandbox_metrics
from lss_sandbox_reconciler.render import owner as owner_module
from lss_watcher import testing as watcher_testing

pytestmark = pytest.mark.integration

ENDPOINT_SLICE = objects.ApiResource(
    group="discovery.k8s.io",
    version="v1",
    plural="endpointslices",
    kind="EndpointSlice",
    namespaced=True,
)


class PoolManager:
    """``lss_pool_manager.service.build`` running in this loop on the test's NATS names."""

    def __init__(self, world: World, **pool: Any) -> None:
        settings = pool_settings_module.PoolManagerSettings(
            service_name=f"pool-manager-{uuid.uuid4().hex[:6]}",
            nats=world.nats,
            kube=common_settings.KubeSettings(
                kubeconfig=world.kubeconfigs["pool_manager"], request_timeout_seconds=10.0
            ),
            http=common_settings.HttpSettings(host="127.0.0.1", port=0),
            consumer=common_settings.ConsumerSettings(
                concurrency=32,
                fetch_timeout_seconds=0.5,
                backoff_seconds=[0.05, 0.1, 0.2, 0.5],
                shutdown_grace_seconds=5.0,
            ),
            pool=pool_settings_module.PoolOptions.model_validate(
                {"heartbeat_interval_seconds": 0.0, "create_rate_per_second": 50.0, **pool}
            ),
        )
        self.service = pool_service.build(settings, registry=prometheus_client.CollectorRegistry())
        self._task: asyncio.Task[int] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.service.run(handle_signals=False))

        async def ready() -> bool:
            if self._task is not None and self._task.done():
                raise RuntimeError(f"the pool manager exited with {self._task.result()}")
            try:
                port = self.service.http_port
            except RuntimeError:
                return False
            return await watcher_testing.readyz(f"http://127.0.0.1:{port}")

        await eventually.eventually(ready, timeout_seconds=60, describe="pool manager ready")

    @property
    def exited(self) -> bool:
        """Whether the service ended by itself (it runs until stopped)."""
        return self._task is not None and self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            self.service.request_stop("test finished")
            await task


@pytest.fixture
async def pool_managers() -> AsyncIterator[list[PoolManager]]:
    managers: list[PoolManager] = []
    try:
        yield managers
    finally:
        for manager in managers:
            await manager.stop()


async def start(
    world: World,
    managers: list[PoolManager],
    *,
    reconcilers: int,
    pool_managers: int,
    **pool: Any,
) -> None:
    # Every consumer exists before the watcher publishes (interest retention).
    for _ in range(reconcilers):
        await world.start_reconciler()
    for _ in range(pool_managers):
        manager = PoolManager(world, **pool)
        await manager.start()
        managers.append(manager)
    await world.start_watcher()


async def create_pool(cluster: Cluster, name: str, **spec: Any) -> None:
    await objects.create_object(
        cluster.kube,
        resource=objects.WARM_POOL,
        namespace=cluster.namespace,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "WarmPool",
            "metadata": {"name": name, "namespace": cluster.namespace},
            "spec": {"runtime": cluster.runtime, **spec},
        },
    )


async def warm_pods(kube: client.Kube, namespace: str) -> list[dict[str, Any]]:
    return (await objects.list_objects(kube, resource=objects.WARM_POD, namespace=namespace)).items


def phase_of(obj: dict[str, Any]) -> str | None:
    return (obj.get("status") or {}).get("phase")


async def wait_ready_warm_pods(cluster: Cluster, count: int) -> None:
    async def ready() -> bool:
        items = await warm_pods(cluster.kube, cluster.namespace)
        return sum(1 for wp in items if phase_of(wp) == "Ready") >= count

    await eventually.eventually(
        ready, timeout_seconds=120, describe=f"{count} Ready WarmPods in the pool"
    )


async def sandboxes(cluster: Cluster) -> list[dict[str, Any]]:
    found = await objects.list_objects(
        cluster.kube, resource=objects.SANDBOX, namespace=cluster.namespace
    )
    return found.items


def controllers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [ref for ref in obj["metadata"].get("ownerReferences") or () if ref.get("controller")]


async def test_matching_sandbox_starts_warm_others_cold_and_the_pool_refills(
    world: World, cluster: Cluster, pool_managers: list[PoolManager]
) -> None:
    await cluster.create_runtime()
    await cluster.create_profile("preset", spec={})
    await start(world, pool_managers, reconcilers=1, pool_managers=1)
    await create_pool(cluster, "std", minSize=2)
    await wait_ready_warm_pods(cluster, 2)

    await cluster.create_sandbox("warm")
    await cluster.create_sandbox("high", securityLevel="high")
    await cluster.create_sandbox("bigger", resources={"cpu": "1"})
    await cluster.create_sandbox("profiled", profileRef={"name": "preset"})
    await cluster.create_sandbox("kept", storage={"persistent": True, "volumeSize": "1Gi"})
    objs = {
        name: await cluster.wait_phase(name, "Running", timeout_seconds=90)
        for name in ("warm", "high", "bigger", "profiled")
    }
    # kwok has no volume provisioner: the persistent sandbox stays Creating, with a cold pod.
    objs["kept"] = await cluster.wait_phase("kept", "Creating", timeout_seconds=90)

    warm = objs["warm"]
    ref = warm["status"].get("warmPodRef")
    assert ref is not None, warm["status"]
    warm_pod = await objects.get_object(
        cluster.kube, resource=objects.WARM_POD, namespace=cluster.namespace, name=ref["name"]
    )
    assert warm_pod["status"]["phase"] == "Assigned"
    assert warm_pod["status"]["assignedTo"] == warm["metadata"]["uid"]
    pod = await cluster.child(objects.POD, warm["status"]["podName"])
    assert pod is not None
    assert pod["metadata"]["name"] == warm_pod["status"]["podName"]
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": kinds.API_VERSION,
            "kind": "Sandbox",
            "name": "warm",
            "uid": warm["metadata"]["uid"],
            "controller": True,
        }
    ]
    assert pod["metadata"]["labels"][owner_module.SANDBOX_UID] == warm["metadata"]["uid"]
    # the warm sandbox has the children a cold one has, with the warm pod as its only pod —
    # except a ServiceAccount: its pod runs as the pool's (immutable on a pod), token-less
    children = await cluster.children(warm["metadata"]["uid"])
    assert children["Pod"] == [pod["metadata"]["name"]]
    # ... and its Service is the one prepared with the pod, adopted with it: owned by the
    # Sandbox now, still selecting the pod by its WarmPod's UID, and the sandbox's endpoint
    service_name = names.warm_service_name(pod["metadata"]["name"])
    assert children["Service"] == [service_name]
    svc = await cluster.child(objects.SERVICE, service_name)
    assert svc is not None
    assert svc["metadata"]["ownerReferences"] == pod["metadata"]["ownerReferences"]
    assert svc["spec"]["selector"] == {labels.WARM_POD_UID: warm_pod["metadata"]["uid"]}
    # Re-owned, not relabelled: its labels are still those the pool manager gave it, so the
    # controller manager had no label change to copy onto its endpoints.
    assert owner_module.SANDBOX_UID not in svc["metadata"]["labels"]
    assert svc["metadata"]["labels"][labels.WARM_POD_UID] == warm_pod["metadata"]["uid"]
    slices = await objects.list_objects(
        cluster.kube,
        resource=ENDPOINT_SLICE,
        namespace=cluster.namespace,
        label_selector=f"kubernetes.io/service-name={service_name}",
    )
    assert slices.items
    for found in slices.items:
        assert owner_module.SANDBOX_UID not in (found["metadata"].get("labels") or {})
    assert pod["metadata"]["labels"][labels.WARM_POD_UID] == warm_pod["metadata"]["uid"]
    assert warm["status"]["endpoint"].startswith(f"{service_name}.{cluster.namespace}.svc.")
    assert children["ServiceAccount"] == []
    assert children["NetworkPolicy"]
    assert pod["spec"]["serviceAccountName"].startswith("warmpool-")  # the pool's account
    assert pod["spec"]["automountServiceAccountToken"] is False

    # Deleted by hand while the sandbox runs, the adopted Service comes back: same name, same
    # selector, the sandbox's (its deletion's hint wakes the Sandbox, which owns it now).
    await objects.delete_object(
        cluster.kube, resource=objects.SERVICE, namespace=cluster.namespace, name=service_name
    )

    async def service_back() -> dict[str, Any] | None:
        found = await cluster.child(objects.SERVICE, service_name)
        if found is None or found["metadata"]["uid"] == svc["metadata"]["uid"]:
            return None
        return found

    back = await eventually.eventually(
        service_back, timeout_seconds=60, describe="the warm sandbox's Service re-created"
    )
    assert back["spec"]["selector"] == svc["spec"]["selector"]
    assert back["metadata"]["ownerReferences"] == svc["metadata"]["ownerReferences"]
    assert back["metadata"]["labels"][owner_module.SANDBOX_UID] == warm["metadata"]["uid"]
    still = await cluster.sandbox("warm")
    assert still is not None
    assert still["status"]["phase"] == "Running"
    assert still["status"]["endpoint"] == warm["status"]["endpoint"]

    for name in ("high", "bigger", "profiled", "kept"):
        status = objs[name]["status"]
        assert status.get("warmPodRef") is None, (name, status)
        assert status["podName"].startswith("sandbox-"), (name, status)

    # the end of the warm sandbox gives its WarmPod back (deleted) and the pool refills
    await cluster.delete_sandbox("warm")
    await cluster.wait_gone("warm")

    async def released_and_refilled() -> bool:
        items = await warm_pods(cluster.kube, cluster.namespace)
        gone = all(wp["metadata"]["uid"] != warm_pod["metadata"]["uid"] for wp in items)
        ready = sum(1 for wp in items if phase_of(wp) == "Ready")
        return gone and ready >= 2

    await eventually.eventually(
        released_and_refilled, timeout_seconds=60, describe="WarmPod deleted, pool refilled"
    )
    assert await cluster.child(objects.POD, pod["metadata"]["name"]) is None
    assert await cluster.child(objects.SERVICE, service_name) is None


async def test_without_prepared_services_the_claim_creates_the_warm_pods_service(
    world: World, cluster: Cluster, pool_managers: list[PoolManager]
) -> None:
    """``prepare_services`` off: idle warm pods hold no Service; the claim makes it, already
    the sandbox's, selecting the pod as a prepared one would, and the sandbox runs warm."""
    await cluster.create_runtime()
    await start(world, pool_managers, reconcilers=1, pool_managers=1, prepare_services=False)
    await create_pool(cluster, "bare", minSize=2)
    await wait_ready_warm_pods(cluster, 2)
    idle = await objects.list_objects(
        cluster.kube, resource=objects.SERVICE, namespace=cluster.namespace
    )
    assert idle.items == []

    await cluster.create_sandbox("warm")
    warm = await cluster.wait_phase("warm", "Running", timeout_seconds=90)
    ref = warm["status"].get("warmPodRef")
    assert ref is not None, warm["status"]
    warm_pod = await objects.get_object(
        cluster.kube, resource=objects.WARM_POD, namespace=cluster.namespace, name=ref["name"]
    )
    pod_name = warm["status"]["podName"]
    service_name = names.warm_service_name(pod_name)
    svc = await cluster.child(objects.SERVICE, service_name)
    assert svc is not None
    assert controllers(svc) == [
        {
            "apiVersion": kinds.API_VERSION,
            "kind": "Sandbox",
            "name": "warm",
            "uid": warm["metadata"]["uid"],
            "controller": True,
        }
    ]
    assert svc["metadata"]["labels"][owner_module.SANDBOX_UID] == warm["metadata"]["uid"]
    assert svc["spec"]["selector"] == {labels.WARM_POD_UID: warm_pod["metadata"]["uid"]}
    assert warm["status"]["endpoint"].startswith(f"{service_name}.{cluster.namespace}.svc.")
    # Only the claimed pod has a Service; the refill's warm pods still have none.
    await wait_ready_warm_pods(cluster, 2)
    services = await objects.list_objects(
        cluster.kube, resource=objects.SERVICE, namespace=cluster.namespace
    )
    assert [item["metadata"]["name"] for item in services.items] == [service_name]

    await cluster.delete_sandbox("warm")
    await cluster.wait_gone("warm")
    assert await cluster.child(objects.SERVICE, service_name) is None


async def test_a_prepared_service_landing_during_the_claim_is_the_one_adopted(
    world: World,
    cluster: Cluster,
    pool_managers: list[PoolManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim meets no prepared Service (the pool manager's create has not landed), and
    the create lands between the claim's failed re-own and its own create: the claim's
    create answers AlreadyExists, and the pool manager's Service is adopted (re-owned, its
    UID kept, its selector unchanged). One Service, the sandbox's, and the sandbox warm."""
    await cluster.create_runtime()
    await start(world, pool_managers, reconcilers=1, pool_managers=1)
    await create_pool(cluster, "late", minSize=1)
    await wait_ready_warm_pods(cluster, 1)
    (warm_pod,) = await warm_pods(cluster.kube, cluster.namespace)
    service_name = names.warm_service_name(warm_pod["status"]["podName"])
    prepared = await cluster.child(objects.SERVICE, service_name)
    assert prepared is not None
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            key: prepared["metadata"][key] for key in ("name", "labels", "ownerReferences")
        },
        "spec": {"selector": prepared["spec"]["selector"], "ports": prepared["spec"]["ports"]},
    }
    await objects.delete_object(
        cluster.kube, resource=objects.SERVICE, namespace=cluster.namespace, name=service_name
    )
    landed: list[str] = []
    patches: list[str] = []
    real_patch = adopt._patch_service

    async def patch_then_land(kube: client.Kube, **kwargs: Any) -> dict[str, Any] | None:
        try:
            found = await real_patch(kube, **kwargs)
            patches.append("re-owned")
            return found
        except errors.NotFoundError:
            patches.append("not found")
            raise
        finally:
            if not landed:
                created = await objects.create_object(
                    cluster.kube, resource=objects.SERVICE, namespace=cluster.namespace, body=body
                )
                landed.append(created["metadata"]["uid"])

    monkeypatch.setattr(adopt, "_patch_service", patch_then_land)
    await cluster.create_sandbox("late", timeout=600)
    running = await cluster.wait_phase("late", "Running")
    assert running["status"]["warmPodRef"]["name"] == warm_pod["metadata"]["name"]
    assert len(landed) == 1
    # Not found, then (the claim's create refused: AlreadyExists) the landed one re-owned.
    assert patches == ["not found", "re-owned"]
    svc = await cluster.child(objects.SERVICE, service_name)
    assert svc is not None
    assert svc["metadata"]["uid"] == landed[0]
    assert controllers(svc) == [
        {
            "apiVersion": kinds.API_VERSION,
            "kind": "Sandbox",
            "name": "late",
            "uid": running["metadata"]["uid"],
            "controller": True,
        }
    ]
    assert svc["spec"]["selector"] == {labels.WARM_POD_UID: warm_pod["metadata"]["uid"]}
    assert running["status"]["endpoint"].startswith(f"{service_name}.{cluster.namespace}.svc.")
    assert (await cluster.children(running["metadata"]["uid"]))["Service"] == [service_name]


COUNT = 200
POOL_SIZE = 50


async def test_an_ended_warm_sandbox_keeps_its_policies_while_its_pod_terminates(
    world: World, cluster: Cluster, pool_managers: list[PoolManager]
) -> None:
    """A warm sandbox's lifetime ends while its pod takes its time to terminate (a held
    deletion, as a real pod's grace period): the pod is found by the status's ``podName``,
    so the passes that follow still see it and keep the sandbox's policies (its deny
    policy included) and the status's ``podName`` until it is gone; then they go."""
    await cluster.create_runtime()
    await start(world, pool_managers, reconcilers=1, pool_managers=1)
    reconciler = world.reconcilers[0]
    await create_pool(cluster, "fence", minSize=1)
    await wait_ready_warm_pods(cluster, 1)
    created = await cluster.create_sandbox("fenced", timeout=5)
    uid = created["metadata"]["uid"]
    running = await cluster.wait_phase("fenced", "Running")
    assert running["status"].get("warmPodRef"), running["status"]
    pod = running["status"]["podName"]
    policies = (await cluster.children(uid))["NetworkPolicy"]
    assert names.policy_name("fenced", policy=names.Policy.DENY) in policies
    await hold_deletion(cluster.kube, resource=objects.POD, name=pod, namespace=cluster.namespace)
    await cluster.wait_phase("fenced", "Terminated")

    async def pod_terminating() -> bool:
        found = await cluster.child(objects.POD, pod)
        service = await cluster.child(objects.SERVICE, names.warm_service_name(pod))
        return bool(found and found["metadata"].get("deletionTimestamp") and service is None)

    await eventually.eventually(pod_terminating, timeout_seconds=30, describe="pod terminating")
    # Passes after the release (the Service's deletion hint, the deletion polls) ran.
    passes = reconciler.sample("llmsafespace_sandbox_pass_stage_seconds_count", stage="observe")

    async def three_more_passes_or_policies_gone() -> bool:
        done = reconciler.sample("llmsafespace_sandbox_pass_stage_seconds_count", stage="observe")
        left = (await cluster.children(uid))["NetworkPolicy"]
        return done >= passes + 3 or left != policies

    await eventually.eventually(
        three_more_passes_or_policies_gone, timeout_seconds=30, describe="three more passes"
    )
    assert (await cluster.children(uid))["NetworkPolicy"] == policies
    held = await cluster.sandbox("fenced")
    assert held is not None
    assert held["status"]["podName"] == pod

    await release_deletion(
        cluster.kube, resource=objects.POD, name=pod, namespace=cluster.namespace
    )

    async def released() -> dict[str, Any] | None:
        obj = await cluster.sandbox("fenced")
        left = await cluster.children(uid)
        if obj is None or obj["status"].get("podName") or any(left.values()):
            return None
        return obj

    ended = await eventually.eventually(released, timeout_seconds=30, describe="released")
    assert ended["status"]["phase"] == "Terminated"


async def test_a_warm_pod_deleted_by_hand_is_replaced_by_a_cold_one_that_stays(
    world: World, cluster: Cluster, pool_managers: list[PoolManager]
) -> None:
    """A running warm sandbox's pod is deleted by hand: the sandbox gets a pod of its own
    (``sandbox-<name>``, with its own ServiceAccount and Service), keeps running, and that
    pod is not taken for a stray cold pod of a warm sandbox on the passes that follow. The
    Service prepared with the warm pod is deleted (it routed only to the gone pod), and the
    claim is given back: the WarmPod, Assigned with no pod, would hold a slot of the pool and
    block its deletion for the sandbox's whole life; the pool refills."""
    await cluster.create_runtime()
    await start(world, pool_managers, reconcilers=1, pool_managers=1)
    reconciler = world.reconcilers[0]
    await create_pool(cluster, "hand", minSize=1)
    await wait_ready_warm_pods(cluster, 1)
    created = await cluster.create_sandbox("replaced", timeout=600)
    uid = created["metadata"]["uid"]
    running = await cluster.wait_phase("replaced", "Running")
    warm_pod = running["status"]["podName"]
    assert running["status"].get("warmPodRef"), running["status"]
    await objects.delete_object(
        cluster.kube, resource=objects.POD, namespace=cluster.namespace, name=warm_pod
    )
    own = names.pod_name("replaced")

    async def on_its_own_pod() -> dict[str, Any] | None:
        obj = await cluster.sandbox("replaced")
        pod = await cluster.child(objects.POD, own)
        if obj is None or pod is None or obj["status"].get("podName") != own:
            return None
        return obj if obj["status"].get("phase") == "Running" else None

    await eventually.eventually(on_its_own_pod, timeout_seconds=60, describe="a pod of its own")
    ref = running["status"]["warmPodRef"]

    async def given_back() -> bool:
        found = await objects.get_or_none(
            cluster.kube,
            resource=objects.WARM_POD,
            namespace=cluster.namespace,
            name=ref["name"],
            decode=objects.as_dict,
        )
        return found is None or (found.get("status") or {}).get("assignedTo") != uid

    await eventually.eventually(given_back, timeout_seconds=30, describe="the claim given back")
    await eventually.reaches(
        lambda: reconciler.sample("llmsafespace_sandbox_warm_pods_released_total", how="replaced"),
        1.0,
        describe="the release counted",
    )
    await wait_ready_warm_pods(cluster, 1)
    pod = await cluster.child(objects.POD, own)
    assert pod is not None
    pod_uid = pod["metadata"]["uid"]
    # Later passes (three more, a change wakes one) leave it alone. One change at a time:
    # hints of changes made together may ride along with one another into a single pass.
    for count in range(3):
        passes = reconciler.sample("llmsafespace_sandbox_pass_stage_seconds_count", stage="observe")
        await objects.patch_object(
            cluster.kube,
            resource=objects.SANDBOX,
            namespace=cluster.namespace,
            name="replaced",
            body={"metadata": {"annotations": {"test.llmsafespace.dev/poke": str(count)}}},
        )
        await eventually.eventually(
            lambda before=passes: (
                reconciler.sample("llmsafespace_sandbox_pass_stage_seconds_count", stage="observe")
                > before
            ),
            timeout_seconds=30,
            describe=f"pass {count + 1} of 3 after a change",
        )
    again = await cluster.child(objects.POD, own)
    assert again is not None
    assert again["metadata"]["uid"] == pod_uid
    assert not again["metadata"].get("deletionTimestamp")
    children = await cluster.children(uid)
    assert children["Pod"] == [own]
    # The warm pod's Service, which selected only the gone pod, went with the switch.
    assert children["Service"] == [names.service_name("replaced")]
    assert await cluster.child(objects.SERVICE, names.warm_service_name(warm_pod)) is None
    assert len(children["ServiceAccount"]) == 1
    obj = await cluster.sandbox("replaced")
    assert obj is not None
    assert obj["status"]["phase"] == "Running"

    # A pass that read the Sandbox as it was before the switch (a watch-cache read on
    # another replica) takes the new pod for a stray cold pod beside the warm one: the
    # stored Sandbox, read again before the delete, says otherwise, and the pod stays
    # (even were the gone warm pod read as still there).
    registry = prometheus_client.CollectorRegistry()
    starter = warm.WarmStarter(
        lambda: cluster.kube,
        settings=reconciler.settings,
        clock=clock_module.SystemClock(),
        metrics=warm.WarmMetrics.register(registry),
        sandbox_metrics=sandbox_metrics.SandboxMetrics.register(registry),
        queue=ready_queue.ReadyQueue(),
    )
    await starter.remove_stray_cold_pod(
        plan.Snapshot(
            sandbox=sandbox_model.from_dict(running),
            runtimes=(),
            profile=None,
            children=plan.Children(pod={"metadata": {"name": warm_pod, "uid": "stale"}}),
            cold_pod=again,
            cold_pod_read=True,
        )
    )
    kept = await cluster.child(objects.POD, own)
    assert kept is not None
    assert kept["metadata"]["uid"] == pod_uid
    assert not kept["metadata"].get("deletionTimestamp")


async def test_200_sandboxes_against_a_pool_of_50_with_two_replicas_each(
    world: World, cluster: Cluster, pool_managers: list[PoolManager]
) -> None:
    await cluster.create_runtime()
    await start(world, pool_managers, reconcilers=2, pool_managers=2)
    await create_pool(cluster, "burst", minSize=POOL_SIZE)
    await wait_ready_warm_pods(cluster, POOL_SIZE)

    limit = asyncio.Semaphore(50)

    async def create(index: int) -> None:
        async with limit:
            await cluster.create_sandbox(f"box-{index}")

    await asyncio.gather(*(create(i) for i in range(COUNT)))

    last: list[str] = []

    async def all_running() -> bool:
        items = await sandboxes(cluster)
        not_running = [s["metadata"]["name"] for s in items if phase_of(s) != "Running"]
        last[:] = [
            f"{s['metadata']['name']}: {s.get('status')}" for s in items if phase_of(s) != "Running"
        ][:3]
        return len(items) == COUNT and not not_running

    try:
        await eventually.eventually(
            all_running, timeout_seconds=240, describe=f"{COUNT} sandboxes Running"
        )
    except eventually.EventuallyTimeout as error:
        raise AssertionError(f"{error}; not Running (first 3): {last}") from None

    boxes = await sandboxes(cluster)
    by_uid = {s["metadata"]["uid"]: s for s in boxes}
    warm = [s for s in boxes if s["status"].get("warmPodRef")]
    cold = [s for s in boxes if not s["status"].get("warmPodRef")]
    assert warm, "no sandbox started warm"
    # Warm and cold by what the API server holds, cross-checked with the reconcilers' own
    # accounts of the starts they committed: each sandbox started exactly once, as it shows.
    # (A start is counted once its Running write returned: the last may lag the list.)
    await eventually.reaches(
        lambda: {
            launch: sum(
                r.sample("llmsafespace_sandbox_startup_duration_seconds_count", launch=launch)
                for r in world.reconcilers
            )
            for launch in ("warm", "cold")
        },
        {"warm": len(warm), "cold": len(cold)},
        describe="starts counted by the reconcilers",
    )
    for sandbox in cold:
        assert sandbox["status"]["podName"] == names.pod_name(sandbox["metadata"]["name"])

    # No WarmPod is referenced by two sandboxes, and each one referenced is Assigned to the
    # sandbox that references it (the CAS admitted exactly one claimer).
    refs = collections.Counter(s["status"]["warmPodRef"]["name"] for s in warm)
    assert max(refs.values()) == 1, refs.most_common(3)
    items = {wp["metadata"]["name"]: wp for wp in await warm_pods(cluster.kube, cluster.namespace)}
    for sandbox in warm:
        wp = items[sandbox["status"]["warmPodRef"]["name"]]
        assert wp["status"]["phase"] == "Assigned"
        assert wp["status"]["assignedTo"] == sandbox["metadata"]["uid"]
        assert sandbox["status"]["podName"] == wp["status"]["podName"]
    assigned_to = collections.Counter(
        wp["status"]["assignedTo"] for wp in items.values() if phase_of(wp) == "Assigned"
    )
    assert max(assigned_to.values()) == 1, assigned_to.most_common(3)
    # An Assigned WarmPod no sandbox references would be a leaked claim.
    assert set(assigned_to) == {s["metadata"]["uid"] for s in warm}

    # Every pod has at most one owner; a sandbox's pods: exactly one, its own.
    pods = (
        await objects.list_objects(cluster.kube, resource=objects.POD, namespace=cluster.namespace)
    ).items
    per_sandbox: collections.Counter[str] = collections.Counter()
    for pod in pods:
        refs_found = pod["metadata"].get("ownerReferences") or []
        assert len(refs_found) <= 1, pod["metadata"]
        assert len(controllers(pod)) <= 1, pod["metadata"]
        uid = (pod["metadata"].get("labels") or {}).get(owner_module.SANDBOX_UID)
        if uid is not None and not pod["metadata"].get("deletionTimestamp"):
            per_sandbox[uid] += 1
            assert refs_found[0]["uid"] == uid
    assert set(per_sandbox) == set(by_uid)
    assert max(per_sandbox.values()) == 1, per_sandbox.most_common(3)
    for sandbox in boxes:
        pod_names = {p["metadata"]["name"] for p in pods}
        assert sandbox["status"]["podName"] in pod_names
