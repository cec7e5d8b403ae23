"""The API server and NATS die while sandboxes start, warm and cold: nothing is lost, nothing
is assigned twice, nothing leaks.

On a platform of its own (its kube-apiserver is killed with SIGKILL and started again) and a
nats-server of its own (killed, then started again with its store), one reconciler, one pool
manager and the watcher run in-process, as deployed:

- a burst larger than the pool is created and the API server is killed as soon as the first
  sandbox of it runs, so the others are mid-flight (claims, cold starts, refills);
- a second burst is created while NATS is down: the watcher cannot announce it until NATS is
  back;
- afterwards every sandbox runs on exactly one pod; no WarmPod is assigned twice and every
  Assigned one is referenced by its sandbox; no pod has two owners; the pool is full again;
  the services never exited;
- every sandbox is deleted and the API server is killed again as soon as the first
  finalizer is removed: once it is back, every sandbox is gone, and nothing is left: no
  sandbox child, no Assigned WarmPod, no pod but the pool's.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import pytest
from reconciler_harness import Cluster, RunningReconciler, World
from test_warm_claim import (
    PoolManager,
    controllers,
    create_pool,
    phase_of,
    sandboxes,
    start,
    wait_ready_warm_pods,
    warm_pods,
)

from lss_common.kube import objects
from lss_common.testing import eventually
from lss_dev import natsserver, processes
from lss_dev import platform as platform_module

pytestmark = pytest.mark.integration

POOL_SIZE = 8
FIRST = 16
SECOND = 8


def _started(reconciler: RunningReconciler) -> float:
    return sum(
        reconciler.sample("llmsafespace_sandbox_startup_duration_seconds_count", launch=launch)
        for launch in ("warm", "cold")
    )


def _failed_requests(reconciler: RunningReconciler) -> float:
    """API requests of the reconciler that got no answer or an error (the outage, seen)."""
    total = 0.0
    for family in reconciler.service.runtime.registry.collect():
        for sample in family.samples:
            if sample.name == "llmsafespace_kube_requests_total" and sample.labels.get(
                "result"
            ) in ("retryable", "error"):
                total += sample.value
    return total


async def _kill_apiserver_mid_burst(
    platform: platform_module.Platform,
    reconciler: RunningReconciler,
    *,
    through: Callable[[], float],
    burst: int,
) -> None:
    """SIGKILL the API server as soon as ``through()`` (how many of the burst's ``burst``
    sandboxes got through the step) is 1; check that the rest were under way and that the
    reconciler's requests fail; start it again."""
    await eventually.eventually(lambda: through() >= 1, timeout_seconds=60, describe="one through")
    processes.kill("kube-apiserver", state_dir=platform.state_dir)
    try:
        assert through() < burst, "the burst was over before the outage"
        failed = _failed_requests(reconciler)
        await eventually.eventually(
            lambda: _failed_requests(reconciler) > failed,
            timeout_seconds=60,
            describe="the reconciler's requests fail while the API server is down",
        )
    finally:
        platform.control_plane.start_component("kube-apiserver")
        await asyncio.to_thread(platform.control_plane.wait_apiserver)


async def _all_running(cluster: Cluster, count: int) -> list[dict[str, Any]]:
    last: list[str] = []

    async def running() -> list[dict[str, Any]] | None:
        items = await sandboxes(cluster)
        last[:] = [
            f"{s['metadata']['name']}: {s.get('status')}" for s in items if phase_of(s) != "Running"
        ][:3]
        return items if len(items) == count and not last else None

    try:
        found: list[dict[str, Any]] = await eventually.eventually(
            running, timeout_seconds=180, describe=f"{count} sandboxes Running"
        )
    except eventually.EventuallyTimeout as error:
        raise AssertionError(f"{error}; not Running (first 3): {last}") from None
    return found


async def _check_claims(cluster: Cluster, boxes: list[dict[str, Any]]) -> None:
    """One pod per sandbox, one claimer per WarmPod, one owner per pod (read back)."""
    warm = [s for s in boxes if s["status"].get("warmPodRef")]
    refs = collections.Counter(s["status"]["warmPodRef"]["name"] for s in warm)
    assert not refs or max(refs.values()) == 1, refs.most_common(3)
    items = {wp["metadata"]["name"]: wp for wp in await warm_pods(cluster.kube, cluster.namespace)}
    for sandbox in warm:
        wp = items[sandbox["status"]["warmPodRef"]["name"]]
        assert wp["status"]["phase"] == "Assigned"
        assert wp["status"]["assignedTo"] == sandbox["metadata"]["uid"]
        assert sandbox["status"]["podName"] == wp["status"]["podName"]
    assigned = [wp["status"]["assignedTo"] for wp in items.values() if phase_of(wp) == "Assigned"]
    # Every Assigned WarmPod is held by the sandbox it names (no leaked claim, none twice).
    assert sorted(assigned) == sorted(s["metadata"]["uid"] for s in warm)
    pods = (
        await objects.list_objects(cluster.kube, resource=objects.POD, namespace=cluster.namespace)
    ).items
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    by_uid = {s["metadata"]["uid"]: s for s in boxes}
    per_sandbox: collections.Counter[str] = collections.Counter()
    for pod in live:
        owners = pod["metadata"].get("ownerReferences") or []
        assert len(owners) <= 1, pod["metadata"]
        assert len(controllers(pod)) <= 1, pod["metadata"]
        if owners and owners[0]["kind"] == "Sandbox":
            per_sandbox[owners[0]["uid"]] += 1
    assert set(per_sandbox) == set(by_uid)
    assert max(per_sandbox.values()) == 1, per_sandbox.most_common(3)
    names = {p["metadata"]["name"] for p in live}
    assert all(s["status"]["podName"] in names for s in boxes)


async def test_apiserver_and_nats_outages_mid_burst_lose_and_leak_nothing(
    private_platform: platform_module.Platform,
    private_cluster: Cluster,
    nats_server: natsserver.NatsServer,
) -> None:
    cluster = private_cluster
    world = World(
        platform=private_platform,
        nats_url=nats_server.url,
        namespace=cluster.namespace,
        # Short, so that the watcher soon notices a watch of a dead API server.
        watcher_options={"watch_idle_timeout_seconds": 10.0},
    )
    managers: list[PoolManager] = []
    try:
        await cluster.create_runtime()
        await start(world, managers, reconcilers=1, pool_managers=1)
        reconciler = world.reconcilers[0]
        await create_pool(cluster, "outage", minSize=POOL_SIZE)
        await wait_ready_warm_pods(cluster, POOL_SIZE)

        # The API server dies as soon as the first of a burst larger than the pool runs.
        first = [f"a-{i}" for i in range(FIRST)]
        await asyncio.gather(*(cluster.create_sandbox(name) for name in first))
        await _kill_apiserver_mid_burst(
            private_platform, reconciler, through=lambda: _started(reconciler), burst=FIRST
        )

        # NATS dies; a second burst is created while it is down, then it comes back.
        nats_server.kill()
        second = [f"b-{i}" for i in range(SECOND)]
        await asyncio.gather(*(cluster.create_sandbox(name) for name in second))
        await asyncio.to_thread(nats_server.start)

        boxes = await _all_running(cluster, FIRST + SECOND)
        await _check_claims(cluster, boxes)
        await wait_ready_warm_pods(cluster, POOL_SIZE)
        assert not [r for r in world.reconcilers if r.exited]
        assert not [m for m in managers if m.exited]
        assert world.watcher is not None
        assert world.watcher.exit_code is None

        # Deleted, and the API server dies again as soon as the first finalizer is removed:
        # nothing of the sandboxes is left, the pool holds no claim.
        everything = first + second
        await asyncio.gather(*(cluster.delete_sandbox(name) for name in everything))
        await _kill_apiserver_mid_burst(
            private_platform,
            reconciler,
            through=lambda: reconciler.sample("llmsafespace_sandbox_deleted_total"),
            burst=len(everything),
        )
        for name in everything:
            await cluster.wait_gone(name, timeout_seconds=120)
        leftovers = await cluster.children()
        assert all(not found for found in leftovers.values()), leftovers
        items = await warm_pods(cluster.kube, cluster.namespace)
        assert not [wp for wp in items if phase_of(wp) == "Assigned"]
        pool_pods = {(wp.get("status") or {}).get("podName") for wp in items}
        pods = (
            await objects.list_objects(
                cluster.kube, resource=objects.POD, namespace=cluster.namespace
            )
        ).items
        strays = [
            p["metadata"]["name"]
            for p in pods
            if p["metadata"]["name"] not in pool_pods and not p["metadata"].get("deletionTimestamp")
        ]
        assert not strays, strays
    finally:
        try:
            await cluster.delete_every_sandbox(timeout_seconds=60)
        finally:
            for manager in managers:
                await manager.stop()
            await world.stop()
