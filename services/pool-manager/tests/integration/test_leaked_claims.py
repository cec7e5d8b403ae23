"""Leaked claims against the real kube-apiserver + kwok, fed by the real watcher (no sandbox
reconciler: the claims are made by hand, as a reconciler killed after its CAS leaves them):

- a WarmPod Assigned to a sandbox that does not exist, and one Assigned to an existing
  sandbox that references another WarmPod (its pod adopted by that sandbox, as the claim
  does, but not the pod the sandbox runs on), are released past the grace period: WarmPod
  and pod deleted, and the pool refills;
- the WarmPod the sandbox references, and its pod, are kept.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import kinds
from lss_common.models import warmpod as warmpod_model
from lss_common.testing import eventually

from .conftest import Stack, by_phase, claim, create_pool, warm_pods

pytestmark = pytest.mark.integration


async def _create_sandbox(kube: client.Kube, *, namespace: str, runtime: str) -> dict[str, Any]:
    return await objects.create_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "Sandbox",
            "metadata": {"name": "holder", "namespace": namespace},
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
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=3)

    async def three_ready() -> list[warmpod_model.WarmPod] | None:
        ready = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
        return ready if len(ready) == 3 else None

    in_use, gone, unreferenced = sorted(
        await eventually.eventually(three_ready, timeout_seconds=60, describe="3 Ready"),
        key=lambda wp: wp.metadata.name or "",
    )
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
    await objects.patch_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name="py",
        body={"metadata": {"annotations": {"test.llmsafespace.dev/poke": "1"}}},
    )

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
        return len(by_phase(items, "Ready")) == 3 and len(by_phase(items, "Assigned")) == 1

    await eventually.eventually(
        refilled, timeout_seconds=60, describe="3 Ready beside the 1 Assigned in use"
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
