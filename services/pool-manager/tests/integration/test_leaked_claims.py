"""Leaked claims against the real kube-apiserver + kwok, fed by the real watcher (no sandbox
reconciler: the claims are made by hand, as a reconciler killed after its CAS leaves them):

- a WarmPod Assigned to a sandbox that does not exist, and one Assigned to an existing
  sandbox that references another WarmPod (its pod adopted by that sandbox, as the claim
  does, but not the pod the sandbox runs on), are released past the grace period: WarmPod
  and pod deleted, and the pool refills;
- the WarmPod the sandbox references, and its pod, are kept;
- a claim whose sandbox references it by the time of the check, though not yet in the
  sweep's list, is kept (the verdict is confirmed on a fresh read before any delete);
- a leaked claim whose pod changes between the sweep's read and its delete is kept (the
  delete's resourceVersion precondition conflicts), and released by the next sweep.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import prometheus_client
import pytest

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import kinds
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.runtime import clock as clock_module
from lss_common.testing import eventually
from lss_pool_manager import metrics as metrics_module
from lss_pool_manager import observe, sweep, sweeping

from .conftest import Stack, by_phase, claim, create_pool, poke_pool, warm_pods

pytestmark = pytest.mark.integration


async def _create_sandbox(
    kube: client.Kube, *, namespace: str, runtime: str, name: str = "holder"
) -> dict[str, Any]:
    return await objects.create_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "Sandbox",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"runtime": runtime},
        },
    )


async def _pod(kube: client.Kube, *, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await objects.get_object(kube, resource=objects.POD, namespace=namespace, name=name)
    except errors.NotFoundError:
        return None


async def _fresh(kube: client.Kube, warm_pod: warmpod_model.WarmPod) -> warmpod_model.WarmPod:
    """The WarmPod as stored now (the claim's CAS needs its current resourceVersion)."""
    return await objects.get_object(
        kube,
        resource=objects.WARM_POD,
        namespace=warm_pod.metadata.namespace,
        name=warm_pod.metadata.name or "",
        decode=warmpod_model.decode,
    )


async def test_leaked_claims_are_released_and_the_pool_refills(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    # The claims are set up under a pool manager whose grace period outlasts the test, then a
    # second one with a short grace period takes over: no race with the setup.
    patient = await stack.start_manager(leaked_claim_grace_seconds=3600.0)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=4)

    async def four_ready() -> list[warmpod_model.WarmPod] | None:
        ready = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
        return ready if len(ready) == 4 else None

    in_use, gone, unreferenced, resumable = sorted(
        await eventually.eventually(four_ready, timeout_seconds=60, describe="4 Ready"),
        key=lambda wp: wp.metadata.name or "",
    )
    # A sandbox still new (no reconciler runs here): its next pass would resume its claim.
    newbie = await _create_sandbox(kube, namespace=namespace, runtime=runtime_name, name="newbie")
    holder = await _create_sandbox(kube, namespace=namespace, runtime=runtime_name)
    holder_uid = holder["metadata"]["uid"]
    in_use_pod = warmpod_model.status_of(in_use).pod_name or ""
    unreferenced_pod = warmpod_model.status_of(unreferenced).pod_name or ""
    gone_pod = warmpod_model.status_of(gone).pod_name or ""
    # The sandbox runs on in_use's pod and references it ...
    await objects.replace_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        name="holder",
        subresource="status",
        body={
            **holder,
            "status": {
                "phase": "Running",
                "podName": in_use_pod,
                "warmPodRef": {"name": in_use.metadata.name, "namespace": namespace},
            },
        },
    )
    for warm_pod, sandbox_uid in (
        (in_use, holder_uid),
        (unreferenced, holder_uid),
        (gone, str(uuid.uuid4())),
        (resumable, newbie["metadata"]["uid"]),
    ):
        await claim(kube, await _fresh(kube, warm_pod), sandbox_uid=sandbox_uid)
    # ... and a dead pass of it claimed unreferenced and adopted its pod too.
    await objects.patch_object(
        kube,
        resource=objects.POD,
        namespace=namespace,
        name=unreferenced_pod,
        body=[
            {
                "op": "replace",
                "path": "/metadata/ownerReferences",
                "value": [
                    {
                        "apiVersion": kinds.API_VERSION,
                        "kind": "Sandbox",
                        "name": "holder",
                        "uid": holder_uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            }
        ],
        patch_type=objects.PatchType.JSON,
    )
    await patient.stop()
    manager = await stack.start_manager(
        leaked_claim_grace_seconds=1.0, leaked_claim_check_interval_seconds=0.5
    )
    # A pool hint for the new manager (the claims' hints went to the first one).
    await poke_pool(kube, namespace=namespace, name="py")

    async def released() -> bool:
        items = {wp.metadata.uid: wp for wp in await warm_pods(kube, namespace=namespace)}
        return (
            gone.metadata.uid not in items
            and unreferenced.metadata.uid not in items
            and await _pod(kube, namespace=namespace, name=unreferenced_pod) is None
            and await _pod(kube, namespace=namespace, name=gone_pod) is None
        )

    await eventually.eventually(
        released, timeout_seconds=60, describe="the two leaked claims and their pods released"
    )

    async def refilled() -> bool:
        items = await warm_pods(kube, namespace=namespace)
        return len(by_phase(items, "Ready")) == 4 and len(by_phase(items, "Assigned")) == 2

    await eventually.eventually(
        refilled, timeout_seconds=60, describe="4 Ready beside the 2 Assigned kept"
    )
    # The new sandbox's claim outlived many grace periods: kept, with its pod.
    resumed = await _fresh(kube, resumable)
    assert warmpod_model.status_of(resumed).assigned_to == newbie["metadata"]["uid"]
    assert await _pod(
        kube, namespace=namespace, name=warmpod_model.status_of(resumable).pod_name or ""
    )
    kept = next(
        wp
        for wp in await warm_pods(kube, namespace=namespace)
        if wp.metadata.uid == in_use.metadata.uid
    )
    assert warmpod_model.status_of(kept).assigned_to == holder_uid
    assert await _pod(kube, namespace=namespace, name=in_use_pod) is not None
    assert (
        manager.sample("llmsafespace_warmpool_leaked_claims_released_total", reason="sandbox_gone")
        == 1
    )
    assert (
        manager.sample(
            "llmsafespace_warmpool_leaked_claims_released_total", reason="not_referenced"
        )
        == 1
    )


def _eager_sweeper(
    stack: Stack, kube: client.Kube
) -> tuple[sweeping.Sweeper, prometheus_client.CollectorRegistry]:
    """A sweeper run by the test itself (no grace, no interval), with its own metrics."""
    settings = stack.settings(
        leaked_claim_grace_seconds=0.001, leaked_claim_check_interval_seconds=0.001
    )
    registry = prometheus_client.CollectorRegistry()
    metrics = metrics_module.PoolManagerMetrics.register(registry)
    sweeper = sweeping.Sweeper(
        lambda: kube, options=settings.pool, metrics=metrics, clock=clock_module.SystemClock()
    )
    return sweeper, registry


async def test_a_claim_referenced_since_the_list_is_not_released(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep's Sandbox list can lag behind a claim completing: the list shows the
    sandbox without ``warmPodRef`` (its reconciler between the CAS and the status write),
    and the status lands right after the list answered. The verdict is confirmed on a
    fresh read before anything is deleted, so the claim, its WarmPod and its pod are kept.
    The sweep runs here on its own, against the real API server, with the status write
    made between its list and its check."""
    await stack.start_manager(leaked_claim_grace_seconds=3600.0)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)

    async def one_ready() -> warmpod_model.WarmPod | None:
        ready = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
        return ready[0] if ready else None

    warm_pod = await eventually.eventually(one_ready, timeout_seconds=60, describe="1 Ready")
    holder = await _create_sandbox(kube, namespace=namespace, runtime=runtime_name)
    # Past new (a new sandbox's claim is never released: its next pass resumes it).
    holder = await objects.replace_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        name="holder",
        subresource="status",
        body={**holder, "status": {"phase": "Creating"}},
    )
    await claim(kube, warm_pod, sandbox_uid=holder["metadata"]["uid"])
    await stack.close()  # nothing else lists Sandboxes or touches the claim from here on
    claimed = await _fresh(kube, warm_pod)
    pool = await objects.get_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name="py",
        decode=warmpool_model.decode,
    )
    pod_name = warmpod_model.status_of(claimed).pod_name or ""

    listed: list[sweep.Holder] = []
    real_list = objects.list_objects

    async def list_then_reference(*args: Any, **kwargs: Any) -> Any:
        found = await real_list(*args, **kwargs)
        if kwargs.get("resource") == objects.SANDBOX and not listed:
            listed.extend(sweep.holder_of(item) for item in found.items)
            # The claim's reconciler writes the sandbox's status just after the list.
            sandbox = await objects.get_object(
                kube, resource=objects.SANDBOX, namespace=namespace, name="holder"
            )
            sandbox["status"] = {
                "phase": "Running",
                "podName": pod_name,
                "warmPodRef": {"name": claimed.metadata.name, "namespace": namespace},
            }
            await objects.replace_object(
                kube,
                resource=objects.SANDBOX,
                namespace=namespace,
                name="holder",
                subresource="status",
                body=sandbox,
            )
        return found

    monkeypatch.setattr(objects, "list_objects", list_then_reference)
    sweeper, registry = _eager_sweeper(stack, kube)
    swept = await sweeper.run(pool, warm_pods=[claimed])

    # What the list alone said: a claim its sandbox does not reference.
    assert len(listed) == 1
    assert (
        sweep.judge(
            claimed, holder=listed[0], now=datetime.datetime.now(datetime.UTC), grace_seconds=0.001
        )
        is sweep.Verdict.NOT_REFERENCED
    )
    assert swept.released == frozenset()
    kept = await _fresh(kube, claimed)
    assert warmpod_model.status_of(kept).phase == warmpod_model.Phase.ASSIGNED
    assert warmpod_model.status_of(kept).assigned_to == holder["metadata"]["uid"]
    assert await _pod(kube, namespace=namespace, name=pod_name) is not None
    assert not registry.get_sample_value(
        "llmsafespace_warmpool_leaked_claims_released_total", {"reason": "not_referenced"}
    )


async def test_a_leaked_claims_pod_changed_since_read_is_judged_again(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pod of a leaked claim changes between the sweep's read and its delete (a late
    adoption relabels it): the delete carries the resourceVersion read, so it conflicts and
    nothing is released (neither the pod nor the WarmPod). The next sweep, on a fresh read,
    releases both."""
    await stack.start_manager(leaked_claim_grace_seconds=3600.0)
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=1)

    async def one_ready() -> warmpod_model.WarmPod | None:
        ready = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
        return ready[0] if ready else None

    warm_pod = await eventually.eventually(one_ready, timeout_seconds=60, describe="1 Ready")
    await claim(kube, warm_pod, sandbox_uid=str(uuid.uuid4()))  # a sandbox that never was
    await stack.close()
    claimed = await _fresh(kube, warm_pod)
    pool = await objects.get_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name="py",
        decode=warmpool_model.decode,
    )
    pod_name = warmpod_model.status_of(claimed).pod_name or ""
    pod_uid = ((await _pod(kube, namespace=namespace, name=pod_name)) or {})["metadata"]["uid"]

    touched: list[str] = []
    real_get_pod = observe.get_pod

    async def get_then_touch(kube_: client.Kube, **kwargs: Any) -> dict[str, Any] | None:
        found = await real_get_pod(kube_, **kwargs)
        if found is not None and not touched:
            await objects.patch_object(
                kube,
                resource=objects.POD,
                namespace=namespace,
                name=pod_name,
                body={"metadata": {"labels": {"test.llmsafespace.dev/late": "adoption"}}},
            )
            touched.append(pod_name)
        return found

    monkeypatch.setattr(observe, "get_pod", get_then_touch)
    sweeper, registry = _eager_sweeper(stack, kube)
    first = await sweeper.run(pool, warm_pods=[claimed])
    assert touched == [pod_name]
    assert first.released == frozenset()
    kept = await _pod(kube, namespace=namespace, name=pod_name)
    assert kept is not None
    assert kept["metadata"]["uid"] == pod_uid
    assert not kept["metadata"].get("deletionTimestamp")
    assert warmpod_model.status_of(await _fresh(kube, claimed)).phase == "Assigned"
    assert not registry.get_sample_value(
        "llmsafespace_warmpool_leaked_claims_released_total", {"reason": "sandbox_gone"}
    )

    second = await sweeper.run(pool, warm_pods=[await _fresh(kube, claimed)])
    assert second.released == frozenset({claimed.metadata.uid})
    with pytest.raises(errors.NotFoundError):
        await _fresh(kube, claimed)
    gone = await _pod(kube, namespace=namespace, name=pod_name)
    assert gone is None or gone["metadata"].get("deletionTimestamp")
    assert (
        registry.get_sample_value(
            "llmsafespace_warmpool_leaked_claims_released_total", {"reason": "sandbox_gone"}
        )
        == 1
    )
