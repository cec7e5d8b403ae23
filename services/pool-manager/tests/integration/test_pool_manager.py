"""The pool manager against the real kube-apiserver + kwok and nats-server, fed by the real
watcher: fill to minSize (pods admitted under Pod Security restricted), refill after claims,
maxSize caps the total, autoscaling up and down, TTL expiry, pod death replaced, pool deletion
with and without assigned WarmPods. Waits poll the API server (``eventually``); nothing is
timed."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import pytest

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.logic import pod_records
from lss_common.models import labels, meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.testing import admission, eventually
from lss_common.testing.finalizers import hold_deletion, release_deletion
from lss_dev import controlplane
from lss_dev import platform as platform_module
from lss_dev.fixtures_kube import restricted_pod_body
from lss_pool_manager import apply as apply_module
from lss_pool_manager import handler as handler_module
from lss_pool_manager import lifecycle, names, observe, podspec
from lss_pool_manager import settings as settings_module
from lss_sandbox_reconciler import names as reconciler_names

from .conftest import (
    RunningPoolManager,
    Stack,
    by_phase,
    claim,
    counted,
    create_pool,
    create_runtime,
    get_pool,
    pods,
    poke_pool,
    set_runtime_image,
    warm_pods,
)

pytestmark = pytest.mark.integration


async def wait_ready(
    kube: client.Kube, namespace: str, count: int, *, what: str
) -> list[warmpod_model.WarmPod]:
    async def check() -> list[warmpod_model.WarmPod] | None:
        items = await warm_pods(kube, namespace=namespace)
        ready = by_phase(items, "Ready")
        return (
            ready
            if len(ready) == count and len(items) == len(ready) + len(by_phase(items, "Assigned"))
            else None
        )

    found: list[warmpod_model.WarmPod] = await eventually.eventually(
        check, timeout_seconds=60, describe=what
    )
    return found


async def test_fills_refills_after_claims_and_respects_max_size(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(
        kube,
        namespace=namespace,
        name="py",
        runtime=runtime_name,
        minSize=3,
        maxSize=4,
        preloadPackages=["numpy"],
    )
    ready = await wait_ready(kube, namespace, 3, what="3 Ready WarmPods")
    assert {wp.metadata.name for wp in ready} == {
        names.warm_pod_name("py", slot=i) for i in range(3)
    }
    # Each pod was admitted in a Pod Security "restricted" namespace, Ready with an IP, and
    # is owned by its WarmPod, which records what it was built from.
    all_pods = {p["metadata"]["name"]: p for p in await pods(kube, namespace=namespace)}
    for wp in ready:
        status = warmpod_model.status_of(wp)
        pod = all_pods[status.pod_name or ""]
        assert pod["status"]["podIP"]
        assert pod["metadata"]["ownerReferences"][0]["uid"] == wp.metadata.uid
        assert wp.spec.resources.cpu == "500m"
        # the fingerprint is of the rendered pod (the stored one has server defaults added)
        assert len((wp.metadata.annotations or {})[podspec.POD_SPEC_HASH]) == 64
        assert status.last_heartbeat
        # ... and comes with its Service, owned by the WarmPod, selecting the pod.
        svc = await objects.get_object(
            kube,
            resource=objects.SERVICE,
            namespace=namespace,
            name=reconciler_names.warm_service_name(pod["metadata"]["name"]),
        )
        assert svc["metadata"]["ownerReferences"][0]["uid"] == wp.metadata.uid
        assert svc["spec"]["selector"] == {labels.WARM_POD_UID: wp.metadata.uid}
        assert pod["metadata"]["labels"][labels.WARM_POD_UID] == wp.metadata.uid

    async def pool_status_counts() -> bool:
        pool = await get_pool(kube, namespace=namespace, name="py")
        current = warmpool_model.status_of(pool)
        return (current.available_pods, current.pending_pods, current.assigned_pods) == (3, 0, 0)

    await eventually.eventually(
        pool_status_counts, timeout_seconds=30, describe="pool status counts 3 available"
    )
    # Listed packages are not installed, and the pool says so (it fills all the same).
    reported = {
        c.type: c
        for c in warmpool_model.status_of(
            await get_pool(kube, namespace=namespace, name="py")
        ).conditions
        or ()
    }
    packages = reported["PackagesPreloaded"]
    assert (packages.status, packages.reason) == ("False", "Unsupported")
    assert "numpy" in packages.message

    await claim(kube, ready[0], sandbox_uid=str(uuid.uuid4()))
    await eventually.eventually(
        lambda: _counts(kube, namespace, ready=3, assigned=1),
        timeout_seconds=60,
        describe="refilled to 3 Ready beside 1 Assigned",
    )
    refreshed = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
    await claim(kube, refreshed[0], sandbox_uid=str(uuid.uuid4()))

    async def capped() -> bool:
        current = await get_pool(kube, namespace=namespace, name="py")
        status = current.status
        conditions = getattr(status, "conditions", None) or []
        return await _counts(kube, namespace, ready=2, assigned=2) and any(
            c.reason == "MaxSizeReached" for c in conditions
        )

    await eventually.eventually(capped, timeout_seconds=60, describe="maxSize 4 caps the total")
    assert len(await warm_pods(kube, namespace=namespace)) == 4
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 4

    # A change of a warm pod's Service alone (here an annotation; in use, a claim re-owning
    # it) wakes its WarmPod's key and costs no pass. Changed again until one such hint came
    # alone: one coalesced with another hint of the key runs the pass, as it must.
    service_name = reconciler_names.warm_service_name(
        warmpod_model.status_of(refreshed[1]).pod_name or ""
    )
    touches = iter(range(1000))

    async def acknowledged_without_a_pass() -> bool:
        await objects.patch_object(
            kube,
            resource=objects.SERVICE,
            namespace=namespace,
            name=service_name,
            body={"metadata": {"annotations": {"test/touch": str(next(touches))}}},
        )
        return manager.sample("llmsafespace_warmpool_service_hints_total") >= 1

    await eventually.eventually(
        acknowledged_without_a_pass, timeout_seconds=30, describe="a Service hint skipped"
    )


async def _counts(kube: client.Kube, namespace: str, *, ready: int, assigned: int) -> bool:
    items = await warm_pods(kube, namespace=namespace)
    return (
        len(by_phase(items, "Ready")) == ready
        and len(by_phase(items, "Assigned")) == assigned
        and len(items) == ready + assigned
    )


async def test_a_ready_warm_pods_heartbeat_moves_on(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """``status.lastHeartbeat`` is refreshed while the pod stays Ready (every second here),
    and the WarmPod stays Ready."""
    await stack.start_manager(heartbeat_interval_seconds=1.0)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)
    (first,) = await wait_ready(kube, namespace, 1, what="1 Ready WarmPod")
    beat = warmpod_model.status_of(first).last_heartbeat
    assert beat

    async def later_beat() -> warmpod_model.WarmPod | None:
        (current,) = await warm_pods(kube, namespace=namespace)
        status = warmpod_model.status_of(current)
        moved = status.last_heartbeat and meta.parse_timestamp(
            status.last_heartbeat
        ) > meta.parse_timestamp(beat)
        return current if moved else None

    current = await eventually.eventually(
        later_beat, timeout_seconds=30, describe="a later heartbeat"
    )
    assert current.metadata.uid == first.metadata.uid
    assert warmpod_model.status_of(current).phase == "Ready"


async def test_pod_death_is_replaced_and_ttl_expires(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2, ttl=0)
    ready = await wait_ready(kube, namespace, 2, what="2 Ready WarmPods")
    victim = ready[0]
    await objects.delete_object(
        kube,
        resource=objects.POD,
        namespace=namespace,
        name=warmpod_model.status_of(victim).pod_name or "",
        grace_period_seconds=0,
    )

    async def replaced() -> bool:
        items = await warm_pods(kube, namespace=namespace)
        uids = {wp.metadata.uid for wp in by_phase(items, "Ready")}
        return len(uids) == 2 and victim.metadata.uid not in uids and len(items) == 2

    await eventually.eventually(
        replaced, timeout_seconds=60, describe="dead pod's WarmPod replaced"
    )
    assert manager.sample("llmsafespace_warmpool_pods_deleted_total", reason="pod_failed") >= 1

    # TTL: one second of idleness expires every Ready WarmPod, and the pool refills.
    before = {wp.metadata.uid for wp in await warm_pods(kube, namespace=namespace)}
    await objects.patch_object(
        kube, resource=objects.WARM_POOL, namespace=namespace, name="py", body={"spec": {"ttl": 1}}
    )

    async def rotated() -> bool:
        items = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
        return len(items) == 2 and not ({wp.metadata.uid for wp in items} & before)

    await eventually.eventually(rotated, timeout_seconds=60, describe="TTL expired and refilled")
    assert manager.sample("llmsafespace_warmpool_pods_deleted_total", reason="expired") >= 2


async def test_autoscaling_up_and_down(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    platform: platform_module.Platform,
) -> None:
    """Also what a pool reports while it scales: status counts and ``lastScaleTime``, the
    size and utilisation gauges, the scaling operations, and ``kubectl get``'s columns."""
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(
        kube,
        namespace=namespace,
        name="py",
        runtime=runtime_name,
        minSize=1,
        maxSize=6,
        autoScaling={"enabled": True, "targetUtilization": 50, "scaleDownDelay": 0},
    )
    ready = await wait_ready(kube, namespace, 1, what="1 Ready WarmPod")
    await claim(kube, ready[0], sandbox_uid=str(uuid.uuid4()))
    second = await eventually.eventually(
        lambda: _one_ready(kube, namespace), timeout_seconds=60, describe="a second Ready WarmPod"
    )
    await claim(kube, second, sandbox_uid=str(uuid.uuid4()))
    # 2 assigned at 50 % target: total 4, so 2 unassigned.
    await eventually.eventually(
        lambda: _counts(kube, namespace, ready=2, assigned=2),
        timeout_seconds=60,
        describe="autoscaled up to 2 Ready beside 2 Assigned",
    )
    assert (
        manager.sample("llmsafespace_warmpool_scaling_operations_total", operation="autoscale_up")
        >= 1
    )
    scaled_up = await eventually.eventually(
        lambda: _pool_reports(kube, namespace, manager, available=2, assigned=2),
        timeout_seconds=30,
        describe="status and gauges: 2 available, 2 assigned",
    )
    assert manager.sample(_UTILIZATION, namespace=namespace, pool="py") == 0.5
    assert scaled_up.last_scale_time
    columns = await _printed_columns(platform, namespace, "py")
    assert columns["MIN"] == "1"
    assert columns["MAX"] == "6"
    assert columns["AVAILABLE"] == "2"
    assert columns["ASSIGNED"] == "2"
    assert columns["PENDING"] == "0"
    assert columns["RUNTIME"] == runtime_name
    # lastScaleTime has second precision: let a second pass so the scale-down's is later.
    next_second = meta.parse_timestamp(scaled_up.last_scale_time) + datetime.timedelta(seconds=1)
    await asyncio.sleep(
        max(0.0, (next_second - datetime.datetime.now(tz=datetime.UTC)).total_seconds())
    )
    # The sandboxes end: their WarmPods are deleted (what the reconciler does until the
    # recycler exists); utilisation drops and the pool scales down to minSize.
    for wp in by_phase(await warm_pods(kube, namespace=namespace), "Assigned"):
        await objects.delete_object(
            kube, resource=objects.WARM_POD, namespace=namespace, name=wp.metadata.name or ""
        )
    await eventually.eventually(
        lambda: _counts(kube, namespace, ready=1, assigned=0),
        timeout_seconds=60,
        describe="scaled down to minSize 1",
    )
    # The counter moves once the delete's response is back, which can be just after the
    # deletion is visible in the API server.
    await eventually.eventually(
        lambda: (
            manager.sample("llmsafespace_warmpool_pods_deleted_total", reason="scale_down") >= 1
        ),
        timeout_seconds=30,
        describe="the scale-down deletion counted",
    )
    # ... and the pass's operation once the pass is done, after its deletes.
    await eventually.eventually(
        lambda: (
            manager.sample(
                "llmsafespace_warmpool_scaling_operations_total", operation="autoscale_down"
            )
            >= 1
        ),
        timeout_seconds=30,
        describe="the autoscale_down operation counted",
    )
    scaled_down = await eventually.eventually(
        lambda: _pool_reports(kube, namespace, manager, available=1, assigned=0),
        timeout_seconds=30,
        describe="status and gauges: 1 available, 0 assigned",
    )
    assert manager.sample(_UTILIZATION, namespace=namespace, pool="py") == 0.0
    assert scaled_down.last_scale_time
    assert meta.parse_timestamp(scaled_down.last_scale_time) > meta.parse_timestamp(
        scaled_up.last_scale_time
    )
    columns = await _printed_columns(platform, namespace, "py")
    assert (columns["AVAILABLE"], columns["ASSIGNED"], columns["PENDING"]) == ("1", "0", "0")


_SIZE = "llmsafespace_warmpool_size"
_UTILIZATION = "llmsafespace_warmpool_utilization_ratio"


async def _pool_reports(
    kube: client.Kube,
    namespace: str,
    manager: RunningPoolManager,
    *,
    available: int,
    assigned: int,
) -> warmpool_model.WarmPoolStatus | None:
    """The pool's status when it and the size gauges say ``available``/``assigned``, none
    pending; else None."""
    status = warmpool_model.status_of(await get_pool(kube, namespace=namespace, name="py"))
    gauges = {
        which: manager.sample(_SIZE, namespace=namespace, pool="py", status=which)
        for which in ("available", "assigned", "pending")
    }
    wanted = {"available": available, "assigned": assigned, "pending": 0}
    reported = {
        "available": status.available_pods,
        "assigned": status.assigned_pods,
        "pending": status.pending_pods,
    }
    return status if gauges == wanted and reported == wanted else None


async def _printed_columns(
    platform: platform_module.Platform, namespace: str, name: str
) -> dict[str, str]:
    """``kubectl get warmpool <name>``: the CRD's printer columns as the server renders them."""
    out = await asyncio.to_thread(
        platform.control_plane.kubectl, "get", "warmpool", name, "--namespace", namespace
    )
    header, row = out.strip().splitlines()
    return dict(zip(header.split(), row.split(), strict=True))


async def _one_ready(kube: client.Kube, namespace: str) -> warmpod_model.WarmPod | None:
    ready = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
    return ready[0] if len(ready) == 1 else None


async def test_deletion_waits_for_assigned_then_leaves_nothing(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2)
    ready = await wait_ready(kube, namespace, 2, what="2 Ready WarmPods")
    await claim(kube, ready[0], sandbox_uid=str(uuid.uuid4()))
    # The claim's refill first (else it may or may not come before the deletion).
    await eventually.eventually(
        lambda: _counts(kube, namespace, ready=2, assigned=1),
        timeout_seconds=60,
        describe="2 Ready beside the Assigned one",
    )
    await objects.delete_object(kube, resource=objects.WARM_POOL, namespace=namespace, name="py")

    async def blocked() -> bool:
        pool = await get_pool(kube, namespace=namespace, name="py")
        conditions = getattr(pool.status, "conditions", None) or []
        return any(c.reason == "DeletionBlocked" for c in conditions)

    await eventually.eventually(blocked, timeout_seconds=60, describe="deletion blocked")
    pool = await get_pool(kube, namespace=namespace, name="py")
    reported = [c for c in pool.status.conditions or () if c.reason == "DeletionBlocked"]
    assert ready[0].metadata.name in reported[0].message
    # The counts say what is left (counted from the WarmPods, not kept from the last sizing).
    assert (pool.status.available_pods, pool.status.assigned_pods) == (2, 1)
    # Blocked means untouched: over several re-checks (every 0.3 s here) no WarmPod, pod or
    # Service is deleted or added, the Ready ones included.
    before = await _pool_objects(kube, namespace)
    await asyncio.sleep(1.5)
    assert await _pool_objects(kube, namespace) == before
    assert len(before["WarmPod"]) == 3
    assert len(before["Pod"]) == 3
    # Release the assigned one (the sandbox ended): deletion completes.
    await objects.delete_object(
        kube, resource=objects.WARM_POD, namespace=namespace, name=ready[0].metadata.name or ""
    )

    async def gone() -> bool:
        try:
            await get_pool(kube, namespace=namespace, name="py")
        except Exception:
            leftovers = [
                p
                for p in await pods(kube, namespace=namespace)
                if not p["metadata"].get("deletionTimestamp")
            ]
            services = await objects.list_objects(
                kube, resource=objects.SERVICE, namespace=namespace
            )
            return (
                not await warm_pods(kube, namespace=namespace)
                and not leftovers
                and not services.items  # the warm pods' Services went with their WarmPods
            )
        return False

    # The Services go by garbage collection, which here sometimes takes tens of seconds.
    await eventually.eventually(
        gone, timeout_seconds=120, describe="pool, WarmPods, pods and their Services gone"
    )


async def _pool_objects(kube: client.Kube, namespace: str) -> dict[str, set[str]]:
    """UIDs of the namespace's WarmPods, pods and Services not being deleted."""
    found: dict[str, set[str]] = {}
    for resource in (objects.WARM_POD, objects.POD, objects.SERVICE):
        items = (await objects.list_objects(kube, resource=resource, namespace=namespace)).items
        found[resource.kind] = {
            item["metadata"]["uid"]
            for item in items
            if not item["metadata"].get("deletionTimestamp")
        }
    return found


async def test_forced_deletion_keeps_claimed_pods_and_removes_the_rest(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    await stack.start_manager(force_delete_with_assigned_pods=True)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2)
    ready = await wait_ready(kube, namespace, 2, what="2 Ready WarmPods")
    claimed, unclaimed = ready
    await claim(kube, claimed, sandbox_uid=str(uuid.uuid4()))
    # The reconciler adopts a claimed pod: it becomes controlled by the Sandbox (simulated by
    # moving the controller flag to a stand-in owner the GC can find: the namespace's
    # default ServiceAccount, which outlives the pool).
    sa = await objects.get_object(
        kube, resource=objects.SERVICE_ACCOUNT, namespace=namespace, name="default"
    )
    pod_name = warmpod_model.status_of(claimed).pod_name or ""
    await objects.patch_object(
        kube,
        resource=objects.POD,
        namespace=namespace,
        name=pod_name,
        body={
            "metadata": {
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "name": "default",
                        "uid": sa["metadata"]["uid"],
                        "controller": True,
                    }
                ]
            }
        },
    )
    await objects.delete_object(kube, resource=objects.WARM_POOL, namespace=namespace, name="py")

    async def done() -> bool:
        try:
            await get_pool(kube, namespace=namespace, name="py")
        except Exception:
            live = {
                p["metadata"]["name"]
                for p in await pods(kube, namespace=namespace)
                if not p["metadata"].get("deletionTimestamp")
            }
            return not await warm_pods(kube, namespace=namespace) and live == {pod_name}
        return False

    await eventually.eventually(done, timeout_seconds=60, describe="forced deletion finished")
    assert unclaimed.metadata.name


_QUOTA = objects.ApiResource(
    group="", version="v1", plural="resourcequotas", kind="ResourceQuota", namespaced=True
)


async def _no_pods_quota(kube: client.Kube, namespace: str) -> None:
    """A ResourceQuota of no pods: the API server refuses every pod create (403)."""
    await objects.create_object(
        kube,
        resource=_QUOTA,
        namespace=namespace,
        body={
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods"},
            "spec": {"hard": {"pods": "0"}},
        },
    )


async def test_refused_pods_hold_their_slots_say_why_and_come_once_allowed(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """A ResourceQuota of no pods: the API server refuses every warm pod (403). The pool
    creates its two WarmPods and no more (each keeps its slot, Pending with PodRefused and
    the API server's message), the pool says PodsRefused; once the quota is gone, the next
    re-check creates the pods and the pool fills."""
    await _no_pods_quota(kube, namespace)
    manager = await stack.start_manager(refused_write_retry_seconds=1.0)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2)

    async def refused() -> list[warmpod_model.WarmPod] | None:
        items = await warm_pods(kube, namespace=namespace)
        if len(items) != 2:
            return None
        reasons = [
            next((c.reason for c in warmpod_model.status_of(wp).conditions or ()), None)
            for wp in items
        ]
        return items if reasons == ["PodRefused", "PodRefused"] else None

    items = await eventually.eventually(
        refused, timeout_seconds=60, describe="two WarmPods, each PodRefused"
    )
    for wp in items:
        current = warmpod_model.status_of(wp)
        assert current.phase == "Pending"
        assert current.pod_name is None
        (ready,) = current.conditions or ()
        assert ready.message is not None
        assert "quota" in ready.message
    assert await pods(kube, namespace=namespace) == []

    async def pool_says_why() -> warmpool_model.WarmPoolStatus | None:
        found = warmpool_model.status_of(await get_pool(kube, namespace=namespace, name="py"))
        return found if any(c.reason == "PodsRefused" for c in found.conditions or ()) else None

    said = await eventually.eventually(
        pool_says_why, timeout_seconds=30, describe="the pool says PodsRefused"
    )
    (condition,) = [c for c in said.conditions or () if c.reason == "PodsRefused"]
    assert condition.message is not None
    assert "quota" in condition.message
    # Re-checks meet the same refusal: the WarmPods keep their slots, none is added.
    await eventually.eventually(
        lambda: (
            manager.sample(
                "llmsafespace_kube_requests_total", verb="create", resource="pods", result="error"
            )
            >= 4
        ),
        timeout_seconds=30,
        describe="pod creates tried again",
    )
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 2
    assert len(await warm_pods(kube, namespace=namespace)) == 2

    await objects.delete_object(kube, resource=_QUOTA, namespace=namespace, name="no-pods")
    ready_now = await wait_ready(kube, namespace, 2, what="2 Ready once the quota is gone")
    assert {wp.metadata.uid for wp in ready_now} == {wp.metadata.uid for wp in items}
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 2

    async def filled() -> bool:
        found = warmpool_model.status_of(await get_pool(kube, namespace=namespace, name="py"))
        return any(c.reason == "Filled" for c in found.conditions or ())

    await eventually.eventually(filled, timeout_seconds=30, describe="the pool says Filled")


async def test_a_pool_whose_runtime_appears_later_fills_by_itself(
    stack: Stack, kube: client.Kube, namespace: str
) -> None:
    """A pool naming a runtime that does not exist yet says so (RuntimeNotFound) and creates
    nothing; RuntimeEnvironment changes do not wake pools, so the pool's re-check
    (``invalid_pool_recheck_seconds``, 1 s here) is what fills it once the runtime exists."""
    await stack.start_manager(invalid_pool_recheck_seconds=1.0)
    await stack.start_watcher()
    language = f"l{uuid.uuid4().hex[:10]}"
    await create_pool(kube, namespace=namespace, name="late", runtime=f"{language}:1.0", minSize=1)

    async def not_found() -> bool:
        found = warmpool_model.status_of(await get_pool(kube, namespace=namespace, name="late"))
        return any(c.reason == "RuntimeNotFound" for c in found.conditions or ())

    await eventually.eventually(not_found, timeout_seconds=30, describe="RuntimeNotFound")
    assert await warm_pods(kube, namespace=namespace) == []
    await create_runtime(kube, language=language)
    try:
        await wait_ready(kube, namespace, 1, what="1 Ready once the runtime exists")
    finally:
        await objects.delete_object(kube, resource=objects.RUNTIME_ENVIRONMENT, name=language)


async def _scale_to(kube: client.Kube, *, namespace: str, name: str, size: int) -> None:
    await objects.patch_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name=name,
        body={"spec": {"minSize": size}},
    )


async def _pods_left(kube: client.Kube, *, namespace: str, names: set[str]) -> set[str]:
    """Those of ``names`` that still exist and are not being deleted."""
    return {
        pod["metadata"]["name"]
        for pod in await pods(kube, namespace=namespace)
        if pod["metadata"]["name"] in names and not pod["metadata"].get("deletionTimestamp")
    }


async def test_a_retired_warm_pods_pod_goes_without_the_garbage_collector(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    platform: platform_module.Platform,
) -> None:
    """A scale-down while kube-controller-manager does nothing (its garbage collector can miss
    a WarmPod's deletion around an API server restart): the pool manager deletes the retired
    WarmPods' pods itself. The Services prepared with them are still the collector's, and go
    once it runs again."""
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2)
    ready = await wait_ready(kube, namespace, 2, what="2 Ready WarmPods")
    pod_names = {warmpod_model.status_of(wp).pod_name or "" for wp in ready}
    services = {reconciler_names.warm_service_name(name) for name in pod_names}
    with platform.control_plane.paused("kube-controller-manager"):
        await _scale_to(kube, namespace=namespace, name="py", size=0)

        async def retired() -> bool:
            return not await warm_pods(kube, namespace=namespace) and not await _pods_left(
                kube, namespace=namespace, names=pod_names
            )

        await eventually.eventually(
            retired, timeout_seconds=60, describe="WarmPods and their pods gone, no collector"
        )
        # Counted once each retirement is done (its pod's delete answered).
        await counted(manager, "llmsafespace_warmpool_retired_pods_total", 2, result="deleted")
        await counted(manager, "llmsafespace_warmpool_pods_deleted_total", 2, reason="scale_down")

    async def services_collected() -> bool:
        for name in services:
            if await objects.get_or_none(
                kube, resource=objects.SERVICE, namespace=namespace, name=name
            ):
                return False
        return True

    await eventually.eventually(
        services_collected, timeout_seconds=60, describe="the warm Services collected"
    )


async def test_an_orphaned_warm_pod_is_deleted_without_the_garbage_collector(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    platform: platform_module.Platform,
) -> None:
    """A WarmPod deleted by hand while kube-controller-manager does nothing (as when the pool
    manager stopped between a WarmPod's deletion and its pod's, and the collector missed the
    deletion): the pool's periodic look at its pods finds the pod whose WarmPod is gone and
    deletes it. The WarmPod that refills the slot (same name, new UID) and its pod stay."""
    manager = await stack.start_manager(pool_resync_seconds=1.0)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)
    (victim,) = await wait_ready(kube, namespace, 1, what="1 Ready WarmPod")
    orphan = warmpod_model.status_of(victim).pod_name or ""
    with platform.control_plane.paused("kube-controller-manager"):
        await objects.delete_object(
            kube,
            resource=objects.WARM_POD,
            namespace=namespace,
            name=victim.metadata.name or "",
            uid=victim.metadata.uid,
        )

        async def refilled_and_swept() -> list[warmpod_model.WarmPod] | None:
            ready = await wait_ready(kube, namespace, 1, what="the slot refilled")
            if ready[0].metadata.uid == victim.metadata.uid:
                return None
            left = await _pods_left(kube, namespace=namespace, names={orphan})
            return None if left else ready

        (replacement,) = await eventually.eventually(
            refilled_and_swept, timeout_seconds=60, describe="the orphaned pod deleted"
        )
        await counted(manager, "llmsafespace_warmpool_orphan_pods_deleted_total", 1)
        kept = warmpod_model.status_of(replacement).pod_name or ""
        assert await _pods_left(kube, namespace=namespace, names={kept}) == {kept}


async def test_a_retired_warm_pods_pod_whose_delete_is_refused_is_left_to_the_collector(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """The pod's delete is refused (an admission policy): the WarmPod is gone all the same,
    the failure is counted and logged, the pool converges, and the pod goes once deletes are
    allowed again (the garbage collector)."""
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)
    ready = await wait_ready(kube, namespace, 1, what="1 Ready WarmPod")
    pod_names = {warmpod_model.status_of(wp).pod_name or "" for wp in ready}

    async def probe() -> None:
        # A pod of its own each time: one whose delete went through before the policy took
        # effect is gone (kwok finishes deletions at once).
        name = f"probe-{uuid.uuid4().hex[:8]}"
        created = await objects.create_object(
            kube, resource=objects.POD, namespace=namespace, body=restricted_pod_body(name)
        )
        await objects.delete_object(
            kube,
            resource=objects.POD,
            namespace=namespace,
            name=name,
            uid=created["metadata"]["uid"],
        )

    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["DELETE"],
        "resources": ["pods"],
    }
    async with admission.refusing(kube, namespace=namespace, rule=rule, probe=probe):
        await _scale_to(kube, namespace=namespace, name="py", size=0)
        await eventually.eventually(
            lambda: (
                manager.sample("llmsafespace_warmpool_retired_pods_total", result="failed") == 1
            ),
            timeout_seconds=60,
            describe="the refused pod delete counted",
        )
        assert not await warm_pods(kube, namespace=namespace)
        assert await _pods_left(kube, namespace=namespace, names=pod_names) == pod_names

    async def collected() -> bool:
        return not await _pods_left(kube, namespace=namespace, names=pod_names)

    await eventually.eventually(
        collected, timeout_seconds=60, describe="the pod collected once deletes are allowed"
    )


async def test_a_refused_pool_status_write_is_retried_until_allowed(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """An admission policy refuses the pool's status writes: its WarmPods still come (the
    status is written last in a pass), each refused pass is counted and looked at again
    after ``refused_write_retry_seconds``, and once allowed the status says Filled without
    any other change to wake the pool."""
    await create_pool(kube, namespace=namespace, name="quiet", runtime=runtime_name, minSize=2)

    async def probe() -> None:
        await objects.patch_object(
            kube,
            resource=objects.WARM_POOL,
            name="quiet",
            namespace=namespace,
            subresource="status",
            body={"status": {}},
        )

    rule = {
        "apiGroups": ["llmsafespace.dev"],
        "apiVersions": ["*"],
        "operations": ["UPDATE"],
        "resources": ["warmpools/status"],
    }
    async with admission.refusing(kube, namespace=namespace, rule=rule, probe=probe):
        manager = await stack.start_manager(refused_write_retry_seconds=1.0)
        await stack.start_watcher()
        await wait_ready(kube, namespace, 2, what="2 Ready WarmPods despite the refusal")
        await eventually.eventually(
            lambda: manager.sample("llmsafespace_warmpool_refused_writes_total") >= 2,
            timeout_seconds=30,
            describe="refused passes counted and retried",
        )
        pool = await get_pool(kube, namespace=namespace, name="quiet")
        assert warmpool_model.status_of(pool).available_pods in (None, 0)

    async def filled() -> bool:
        found = warmpool_model.status_of(await get_pool(kube, namespace=namespace, name="quiet"))
        return found.available_pods == 2 and any(
            c.reason == "Filled" for c in found.conditions or ()
        )

    await eventually.eventually(filled, timeout_seconds=30, describe="the status written")


async def test_a_podless_warm_pod_of_an_old_configuration_is_replaced(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """A WarmPod still without a pod (refused: a quota of no pods) when its pool's
    resources change is built for a configuration that no longer applies: its re-check
    deletes it (``outdated``) instead of creating its pod, and the pool's new WarmPod, once
    pods are allowed, has the new resources."""
    await _no_pods_quota(kube, namespace)
    manager = await stack.start_manager(refused_write_retry_seconds=1.0)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)

    async def refused() -> warmpod_model.WarmPod | None:
        items = await warm_pods(kube, namespace=namespace)
        return items[0] if len(items) == 1 and lifecycle.refusal_of(items[0]) else None

    old = await eventually.eventually(refused, timeout_seconds=60, describe="a refused WarmPod")
    await objects.patch_object(
        kube,
        resource=objects.WARM_POOL,
        name="py",
        namespace=namespace,
        body={"spec": {"resources": {"cpu": "250m", "memory": "256Mi"}}},
    )

    async def replaced() -> bool:
        items = await warm_pods(kube, namespace=namespace)
        return bool(items) and all(wp.metadata.uid != old.metadata.uid for wp in items)

    await eventually.eventually(replaced, timeout_seconds=60, describe="the old WarmPod gone")
    # Counted once the delete returned (the list may show it gone a moment before).
    await eventually.eventually(
        lambda: manager.sample("llmsafespace_warmpool_pods_deleted_total", reason="outdated") >= 1,
        timeout_seconds=10,
        describe="the deletion counted as outdated",
    )
    await objects.delete_object(kube, resource=_QUOTA, namespace=namespace, name="no-pods")
    (ready,) = await wait_ready(kube, namespace, 1, what="1 Ready of the new configuration")
    assert ready.spec.resources.cpu == "250m"
    assert ready.spec.resources.memory == "256Mi"


async def test_warm_pods_of_an_old_image_are_replaced(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """The pool's runtime gets a new image: its WarmPods' records (runtime, level, resources,
    profile reference) are unchanged, but the pod the pool builds now is not the one they
    recorded (their pod-spec fingerprint), so no sandbox would ever match them. They are
    replaced by WarmPods of the new image; before, the pool reported itself filled while
    every sandbox started cold, until the TTL."""
    await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2)
    old = {wp.metadata.uid for wp in await wait_ready(kube, namespace, 2, what="2 Ready")}
    await set_runtime_image(
        kube, runtime=runtime_name, image="ghcr.io/llmsafespace/runtime-python:3.12"
    )
    # A runtime's change wakes no pool: the next pool pass (a resync, any WarmPod's change)
    # finds it. Here, a touch of the pool.
    await poke_pool(kube, namespace=namespace, name="py")

    async def replaced() -> list[warmpod_model.WarmPod] | None:
        items = await warm_pods(kube, namespace=namespace)
        ready = by_phase(items, "Ready")
        if len(ready) != 2 or len(items) != 2 or {wp.metadata.uid for wp in items} & old:
            return None
        return ready

    fresh = await eventually.eventually(replaced, timeout_seconds=60, describe="2 new Ready")
    for warm_pod in fresh:
        pod = await objects.get_object(
            kube,
            resource=objects.POD,
            namespace=namespace,
            name=warmpod_model.status_of(warm_pod).pod_name or "",
        )
        assert pod["spec"]["containers"][0]["image"] == "ghcr.io/llmsafespace/runtime-python:3.12"


async def test_a_pool_re_created_under_its_name_waits_for_its_predecessors_children(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """A pool deleted and created again at once (``kubectl replace --force``, a GitOps
    re-sync) can meet its predecessor's ServiceAccount and deny policy, not yet garbage
    collected (here: held by a foreign finalizer). Taken as its own, the policy would not
    select the new pool's pods (it selects the old pool's UID) and the account would vanish
    under them. The new pool says what it waits for, creates no warm pod meanwhile, and
    then runs with children of its own."""
    await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)
    await wait_ready(kube, namespace, 1, what="1 Ready WarmPod")
    account = names.service_account_name("py")
    policy = names.policy_name("py")
    children = ((objects.SERVICE_ACCOUNT, account), (objects.NETWORK_POLICY, policy))
    for resource, name in children:
        await hold_deletion(kube, resource=resource, name=name, namespace=namespace)
    await objects.delete_object(kube, resource=objects.WARM_POOL, namespace=namespace, name="py")

    async def pool_gone() -> bool:
        found = await objects.get_or_none(
            kube, resource=objects.WARM_POOL, namespace=namespace, name="py"
        )
        return found is None

    await eventually.eventually(pool_gone, timeout_seconds=60, describe="the first pool gone")
    # The garbage collector's deletion of the orphans, done here at once (it can take tens
    # of seconds); held, they stay.
    for resource, name in children:
        await objects.delete_object(kube, resource=resource, name=name, namespace=namespace)
    again = await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)

    async def waiting() -> warmpool_model.WarmPool | None:
        pool = await get_pool(kube, namespace=namespace, name="py")
        ready = next((c for c in pool.status.conditions or () if c.type == "Ready"), None)
        return pool if ready is not None and ready.reason == "PreviousPoolCleanup" else None

    pool = await eventually.eventually(waiting, timeout_seconds=60, describe="waiting reported")
    ready = next(c for c in pool.status.conditions or () if c.type == "Ready")
    assert account in ready.message
    assert policy in ready.message
    assert not await warm_pods(kube, namespace=namespace)

    for resource, name in children:
        await release_deletion(kube, resource=resource, name=name, namespace=namespace)
    await wait_ready(kube, namespace, 1, what="1 Ready WarmPod of the new pool")
    for resource, name in children:
        found = await objects.get_object(kube, resource=resource, name=name, namespace=namespace)
        assert podspec.pool_owner_uid(found) == again.metadata.uid
    deny = await objects.get_object(
        kube, resource=objects.NETWORK_POLICY, name=policy, namespace=namespace
    )
    assert deny["spec"]["podSelector"]["matchLabels"] == {podspec.POOL_UID: again.metadata.uid}
    for wp in await warm_pods(kube, namespace=namespace):
        pod = await objects.get_object(
            kube,
            resource=objects.POD,
            name=warmpod_model.status_of(wp).pod_name or "",
            namespace=namespace,
        )
        assert pod["metadata"]["labels"][podspec.POOL_UID] == again.metadata.uid
        assert pod["spec"]["serviceAccountName"] == account


async def test_a_warm_pod_claimed_during_the_pools_deletion_is_kept(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deleting pool's Ready WarmPods stay claimable until they are gone. A WarmPod claimed
    (its CAS) and its pod adopted between the deletion pass's lists and its deletes is left
    alone: each delete carries the version listed. The next pass finds the claim and waits
    for it."""
    await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)
    (warm_pod,) = await wait_ready(kube, namespace, 1, what="1 Ready WarmPod")
    pod_name = warmpod_model.status_of(warm_pod).pod_name or ""
    # The claiming sandbox exists (an adopted pod whose owner is missing is collected).
    holder = await objects.create_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        body={
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "Sandbox",
            "metadata": {"name": "holder"},
            "spec": {"runtime": runtime_name},
        },
    )
    sandbox_uid = holder["metadata"]["uid"]
    claimed: list[str] = []
    real_list = observe.list_pool_pods

    async def list_then_claim(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        found = await real_list(*args, **kwargs)
        if not claimed:
            claimed.append(pod_name)
            current = await objects.get_object(
                kube,
                resource=objects.WARM_POD,
                namespace=namespace,
                name=warm_pod.metadata.name or "",
                decode=warmpod_model.decode,
            )
            await claim(kube, current, sandbox_uid=sandbox_uid)
            await objects.patch_object(
                kube,
                resource=objects.POD,
                namespace=namespace,
                name=pod_name,
                body=[
                    {
                        "op": "replace",
                        "path": "/metadata/ownerReferences",
                        "value": [
                            {
                                "apiVersion": "llmsafespace.dev/v1",
                                "kind": "Sandbox",
                                "name": "holder",
                                "uid": sandbox_uid,
                                "controller": True,
                            }
                        ],
                    }
                ],
                patch_type=objects.PatchType.JSON,
            )
        return found

    monkeypatch.setattr(observe, "list_pool_pods", list_then_claim)
    await objects.delete_object(kube, resource=objects.WARM_POOL, namespace=namespace, name="py")

    async def blocked() -> bool:
        pool = await get_pool(kube, namespace=namespace, name="py")
        return any(c.reason == "DeletionBlocked" for c in pool.status.conditions or ())

    await eventually.eventually(blocked, timeout_seconds=60, describe="deletion blocked")
    assert claimed == [pod_name]
    kept = await objects.get_object(
        kube,
        resource=objects.WARM_POD,
        namespace=namespace,
        name=warm_pod.metadata.name or "",
        decode=warmpod_model.decode,
    )
    assert not kept.metadata.deletion_timestamp
    assert warmpod_model.status_of(kept).assigned_to == sandbox_uid
    pod = await objects.get_object(kube, resource=objects.POD, namespace=namespace, name=pod_name)
    assert not pod["metadata"].get("deletionTimestamp")
    # The sandbox ends: its WarmPod goes (the reconciler's release), and the pool with it.
    await objects.delete_object(
        kube, resource=objects.WARM_POD, namespace=namespace, name=warm_pod.metadata.name or ""
    )

    async def pool_gone() -> bool:
        found = await objects.get_or_none(
            kube, resource=objects.WARM_POOL, namespace=namespace, name="py"
        )
        return found is None

    await eventually.eventually(pool_gone, timeout_seconds=60, describe="the pool gone")


async def test_a_warm_pod_deleted_before_its_status_write_is_let_go(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The WarmPod is deleted between the pass's reads and its ``Ready`` status write (a
    scale-down, a release, by hand): the write's 404 ends the pass (the message acked, not
    an error retried with backoff), and the pool refills the slot."""
    real_get_pod = observe.get_pod
    deleted: list[str] = []

    async def get_pod_then_delete_its_warm_pod(
        kube_: client.Kube, *, namespace: str, name: str, not_older_than: str | None = None
    ) -> dict[str, Any] | None:
        pod = await real_get_pod(kube_, namespace=namespace, name=name, not_older_than=None)
        if pod is None or deleted or not _ready_with_ip(pod):
            return pod
        (owner,) = [r for r in pod["metadata"]["ownerReferences"] if r["kind"] == "WarmPod"]
        await objects.delete_object(
            kube, resource=objects.WARM_POD, namespace=namespace, name=owner["name"]
        )
        deleted.append(owner["uid"])
        return pod

    monkeypatch.setattr(observe, "get_pod", get_pod_then_delete_its_warm_pod)
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)
    (ready,) = await wait_ready(kube, namespace, 1, what="the slot refilled, Ready")
    assert len(deleted) == 1
    assert ready.metadata.uid != deleted[0]
    errors_seen = manager.sample(
        "llmsafespace_bus_messages_total",
        stream=stack.watcher_settings.nats.events_stream,
        outcome="error",
    )
    assert errors_seen == 0


def _ready_with_ip(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    conditions = status.get("conditions") or ()
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and bool(status.get("podIP"))


async def test_a_pool_whose_pods_keep_failing_backs_off_and_recovers(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """The runtime's image cannot be pulled (kwok's ImagePullBackOff fate): each WarmPod
    fails and is deleted. The pool records the failures (``status.podFailures``), says
    ``WarmPodsFailing``, and creates no more WarmPods until its backoff has passed (an hour
    here) — without the brake it replaced each at once, creating and deleting a WarmPod, a
    pod and a Service in a loop. A pool manager with a short backoff then tries one; with a
    good image again the pool fills and the record clears."""

    def braking(seconds: float) -> settings_module.PoolManagerSettings:
        return stack.settings().model_copy(
            update={
                "failures": settings_module.FailureOptions(
                    backoff_seconds=seconds, backoff_max_seconds=seconds
                )
            }
        )

    manager = await stack.start_manager_with(braking(3600.0))
    await stack.start_watcher()
    await set_runtime_image(
        kube, runtime=runtime_name, image=controlplane.FATE_IMAGES["image-pull-backoff"]
    )
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=3)

    async def braked() -> warmpool_model.PodFailures | None:
        pool = await get_pool(kube, namespace=namespace, name="py")
        record = warmpool_model.status_of(pool).pod_failures
        if record is None or (record.consecutive_failures or 0) < 3:
            return None
        reasons = {c.reason for c in warmpool_model.status_of(pool).conditions or ()}
        if "WarmPodsFailing" not in reasons or await warm_pods(kube, namespace=namespace):
            return None
        return record

    record = await eventually.eventually(
        braked, timeout_seconds=60, describe="3 failures recorded, no WarmPod left"
    )
    assert record.last_failure_reason == "PodFailed"
    # The first three, and not one more: the next waits for the backoff.
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 3
    assert manager.sample("llmsafespace_warmpool_pod_failures_total", reason="PodFailed") == 3

    await manager.stop()
    await stack.start_manager_with(braking(0.2))
    await set_runtime_image(
        kube, runtime=runtime_name, image="ghcr.io/llmsafespace/runtime-python:3.11"
    )
    await poke_pool(kube, namespace=namespace, name="py")

    async def recovered() -> bool:
        pool = await get_pool(kube, namespace=namespace, name="py")
        found = warmpool_model.status_of(pool)
        filled = any(c.reason == "Filled" for c in found.conditions or ())
        return filled and found.pod_failures is None

    await eventually.eventually(recovered, timeout_seconds=60, describe="Filled, record cleared")
    await wait_ready(kube, namespace, 3, what="3 Ready of the good image")


async def test_a_warm_pod_claimed_after_it_was_listed_is_never_deleted_for_it(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool pass lists from the watch cache and decides to scale down; a sandbox claims
    one of the WarmPods it chose between its list and its delete. The delete carries the
    resourceVersion listed, so the claimed WarmPod (changed since) is kept, Assigned, with
    its pod; the other goes."""
    real = apply_module.delete_warm_pod
    claimed: list[str] = []
    finished: list[bool] = []

    async def claimed_first(kube_: client.Kube, **kwargs: Any) -> bool:
        if not claimed:
            claimed.append(kwargs["name"])
            fresh = await objects.get_object(
                kube,
                resource=objects.WARM_POD,
                namespace=kwargs["namespace"],
                name=kwargs["name"],
                decode=warmpod_model.decode,
            )
            await claim(kube, fresh, sandbox_uid=str(uuid.uuid4()))
            refused = not await real(kube_, **kwargs)
            finished.append(refused)
            return not refused
        return await real(kube_, **kwargs)

    await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2)
    await wait_ready(kube, namespace, 2, what="2 Ready")
    monkeypatch.setattr(apply_module, "delete_warm_pod", claimed_first)
    await objects.patch_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name="py",
        body={"spec": {"minSize": 0}},
    )

    async def settled() -> list[warmpod_model.WarmPod] | None:
        items = await warm_pods(kube, namespace=namespace)
        return items if finished and len(items) == 1 else None

    (kept,) = await eventually.eventually(settled, timeout_seconds=60, describe="one left")
    assert finished == [True], "the delete of the claimed WarmPod was refused (409)"
    assert kept.metadata.name == claimed[0]
    assert warmpod_model.status_of(kept).phase == "Assigned"
    pod_name = warmpod_model.status_of(kept).pod_name or ""
    assert await objects.get_or_none(kube, resource=objects.POD, namespace=namespace, name=pod_name)


async def test_a_deleted_deny_policy_is_back_at_once(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """The pool's deny policy (what keeps unclaimed warm pods closed) deleted by hand comes
    back on the deletion's hint, not at the next periodic check of the pool's children (up to
    pool_resync_seconds, here an hour: the warm pods were open meanwhile)."""
    await stack.start_manager(pool_resync_seconds=3600.0)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)
    await wait_ready(kube, namespace, 1, what="1 Ready WarmPod")
    policy = names.policy_name("py")
    before = await objects.get_object(
        kube, resource=objects.NETWORK_POLICY, name=policy, namespace=namespace
    )
    await objects.delete_object(
        kube, resource=objects.NETWORK_POLICY, name=policy, namespace=namespace
    )

    async def recreated() -> dict[str, Any] | None:
        found = await objects.get_or_none(
            kube,
            resource=objects.NETWORK_POLICY,
            name=policy,
            namespace=namespace,
            decode=objects.as_dict,
        )
        if found is None or found["metadata"]["uid"] == before["metadata"]["uid"]:
            return None
        return found

    again: dict[str, Any] = await eventually.eventually(
        recreated, timeout_seconds=30, describe="the deny policy re-created"
    )
    assert again["spec"] == before["spec"]


async def test_warm_pods_record_their_pods_and_a_changed_pod_is_replaced(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """Each Ready WarmPod records its pod as the API server stored it (UID, spec hash). A
    Ready warm pod whose image someone patches (a pod allows that) is failed on its next
    pass and replaced: no claim could take it."""
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2)
    ready = await wait_ready(kube, namespace, 2, what="2 Ready WarmPods")
    stored = {p["metadata"]["name"]: p for p in await pods(kube, namespace=namespace)}
    for warm_pod in ready:
        status = warmpod_model.status_of(warm_pod)
        pod = stored[status.pod_name or ""]
        assert status.pod_uid == pod["metadata"]["uid"]
        assert status.pod_spec_hash == pod_records.stored_spec_hash(pod)
    victim = ready[0]
    await objects.patch_object(
        kube,
        resource=objects.POD,
        namespace=namespace,
        name=warmpod_model.status_of(victim).pod_name or "",
        body=[{"op": "replace", "path": "/spec/containers/0/image", "value": "evil:1"}],
        patch_type=objects.PatchType.JSON,
    )

    async def replaced() -> bool:
        items = await warm_pods(kube, namespace=namespace)
        uids = {wp.metadata.uid for wp in by_phase(items, "Ready")}
        return len(uids) == 2 and victim.metadata.uid not in uids and len(items) == 2

    await eventually.eventually(replaced, timeout_seconds=60, describe="changed pod replaced")
    await counted(manager, "llmsafespace_warmpool_pods_deleted_total", 1, reason="unverified")


async def test_a_pod_its_creator_never_recorded_is_never_ready_and_is_replaced(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool manager stops between its pod create and the status write that records the
    pod (simulated: the first record is skipped, whichever pass made the pod), or someone
    else made the pod: nobody can vouch for it. The WarmPod waits for the record for the
    grace, is never Ready (though its pod is), then fails as unverified and is replaced by one
    that records its pod."""
    monkeypatch.setattr(lifecycle, "RECORD_GRACE_SECONDS", 2.0)
    real_record = handler_module.Handler._record_pod
    skipped: list[str] = []

    async def first_record_lost(
        self: handler_module.Handler, warm_pod: warmpod_model.WarmPod, *, pod: dict[str, Any]
    ) -> None:
        if skipped:
            await real_record(self, warm_pod, pod=pod)
            return
        skipped.append(warm_pod.metadata.name or "")
        # Kept after its deletion, to read how it ended.
        await hold_deletion(kube, resource=objects.WARM_POD, name=skipped[0], namespace=namespace)

    monkeypatch.setattr(handler_module.Handler, "_record_pod", first_record_lost)
    # The WarmPod's own pass (its ADDED hint) may create the pod first (the pool pass's create
    # then answers AlreadyExists): its record is lost the same way.
    real_create_missing = handler_module.Handler._create_missing_pod

    async def first_missing_record_lost(
        self: handler_module.Handler, warm_pod: warmpod_model.WarmPod
    ) -> dict[str, Any] | None:
        created = await real_create_missing(self, warm_pod)
        if created is None or skipped:
            return created
        skipped.append(warm_pod.metadata.name or "")
        await hold_deletion(kube, resource=objects.WARM_POD, name=skipped[0], namespace=namespace)
        return None  # as if its creator stopped before the status write that records it

    monkeypatch.setattr(handler_module.Handler, "_create_missing_pod", first_missing_record_lost)
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)

    async def failed() -> warmpod_model.WarmPod | None:
        if not skipped:
            return None
        found = await objects.get_or_none(
            kube,
            resource=objects.WARM_POD,
            namespace=namespace,
            name=skipped[0],
            decode=warmpod_model.decode,
        )
        return found if found is not None and found.metadata.deletion_timestamp else None

    lost = await eventually.eventually(failed, timeout_seconds=30, describe="unverified deleted")
    status = warmpod_model.status_of(lost)
    assert status.phase == "Failed"
    assert [c.reason for c in status.conditions or []] == ["PodUnverified"]
    assert status.last_heartbeat is None  # never Ready
    await counted(manager, "llmsafespace_warmpool_pods_deleted_total", 1, reason="unverified")
    await release_deletion(kube, resource=objects.WARM_POD, name=skipped[0], namespace=namespace)
    (ready,) = await wait_ready(kube, namespace, 1, what="a recorded WarmPod Ready")
    assert ready.metadata.uid != lost.metadata.uid
    assert warmpod_model.status_of(ready).pod_uid


async def test_a_record_write_that_conflicts_is_recorded_on_top(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The status write that records a new pod meets a conflict (another write to the
    WarmPod came first): the creator reads the WarmPod again and records the pod on top of
    it, so the WarmPod gets Ready and nothing is replaced as unverified."""
    real_write = apply_module.write_warm_pod_status
    conflicts: list[str] = []

    async def first_record_conflicts(
        kube_: client.Kube,
        *,
        warm_pod: warmpod_model.WarmPod,
        status: warmpod_model.WarmPodStatus,
    ) -> warmpod_model.WarmPod:
        if status.pod_uid and not conflicts:
            conflicts.append(warm_pod.metadata.name or "")
            raise errors.ConflictError("the object has been modified (test)")
        return await real_write(kube_, warm_pod=warm_pod, status=status)

    monkeypatch.setattr(apply_module, "write_warm_pod_status", first_record_conflicts)
    manager = await stack.start_manager()
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)
    (ready,) = await wait_ready(kube, namespace, 1, what="the WarmPod Ready")
    assert conflicts == [ready.metadata.name]
    assert warmpod_model.status_of(ready).pod_uid
    assert manager.sample("llmsafespace_warmpool_pods_deleted_total", reason="unverified") == 0


async def test_a_refused_service_never_costs_the_pod_created_beside_it(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    """An admission policy (or a Services quota) refuses the Service prepared with each warm
    pod. The pod was created beside it and is recorded anyway: the pool fills, nothing is
    replaced as unverified, and claims create the Service themselves."""

    async def probe() -> None:
        await objects.create_object(
            kube,
            resource=objects.SERVICE,
            namespace=namespace,
            body={
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"probe-{uuid.uuid4().hex[:6]}"},
                "spec": {"selector": {"x": "y"}, "ports": [{"port": 80}]},
            },
        )

    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["services"],
    }
    async with admission.refusing(kube, namespace=namespace, rule=rule, probe=probe):
        manager = await stack.start_manager()
        await stack.start_watcher()
        await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=2)
        ready = await wait_ready(kube, namespace, 2, what="2 Ready WarmPods without Services")
        for warm_pod in ready:
            assert warmpod_model.status_of(warm_pod).pod_uid
        assert manager.sample("llmsafespace_warmpool_service_create_failures_total") >= 2
        assert manager.sample("llmsafespace_warmpool_pods_deleted_total", reason="unverified") == 0
