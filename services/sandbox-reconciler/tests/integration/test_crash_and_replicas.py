"""Crash and concurrency safety of the reconciler, against the real watcher, apiserver and NATS.

- ``python -m lss_sandbox_reconciler`` is killed with SIGKILL while 20 sandboxes are being
  created (some not Running yet when it dies), and again while they are being deleted (a
  quarter of the pods held terminating: those sandboxes still hold the finalizer and their
  policies, the others are gone without a child left); after each restart
  (same durable consumer) every sandbox ends Running with exactly one pod and exactly its own
  children, then every sandbox disappears with no child left in the namespace (the finalizer
  went only when clean).
- two reconciler replicas share the durable consumer while a storm of duplicate hints (ten
  per sandbox, distinct message ids so JetStream does not deduplicate them) is published
  beside the watcher's: one pod per sandbox, and every status is complete and current.
"""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import nats
import pytest
from reconciler_harness import Cluster, ReconcilerProcess, World, condition, pod_name

from lss_common.bus import codec
from lss_common.kube import objects
from lss_common.logic import subjects
from lss_common.models import kinds, messages
from lss_common.testing import eventually
from lss_common.testing.finalizers import hold_deletion, release_deletion
from lss_dev import controlplane
from lss_sandbox_reconciler import names
from lss_sandbox_reconciler.render import owner as owner_module

pytestmark = pytest.mark.integration

COUNT = 20


def _expected_children(name: str) -> dict[str, list[str]]:
    return {
        "Pod": [pod_name(name)],
        "Service": [pod_name(name)],
        "ServiceAccount": [pod_name(name)],
        "NetworkPolicy": [names.policy_name(name, policy=names.Policy.DENY)],
        "PersistentVolumeClaim": [],
    }


async def _all_running_with_one_pod(cluster: Cluster, boxes: list[str]) -> None:
    async def all_running() -> bool:
        for name in boxes:
            obj = await cluster.sandbox(name)
            if obj is None or obj.get("status", {}).get("phase") != "Running":
                return False
        return True

    await eventually.eventually(all_running, timeout_seconds=90, describe="every sandbox Running")
    uids = {}
    for name in boxes:
        obj = await cluster.sandbox(name)
        assert obj is not None
        uids[name] = obj["metadata"]["uid"]
        status = obj["status"]
        assert status["podName"] == pod_name(name)
        assert status["endpoint"].startswith(f"{pod_name(name)}.{cluster.namespace}.svc.")
        assert status["startTime"]
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert condition(obj, "Ready")["status"] == "True"

    async def exactly_own_children() -> bool:
        for name in boxes:
            if await cluster.children(uids[name]) != _expected_children(name):
                return False
        return True

    await eventually.eventually(
        exactly_own_children, timeout_seconds=30, describe="each sandbox has exactly its children"
    )
    pods = await objects.list_objects(
        cluster.kube,
        resource=objects.POD,
        namespace=cluster.namespace,
        label_selector=owner_module.SANDBOX_UID,
    )
    assert len(pods.items) == len(boxes)


async def _all_gone_nothing_left(cluster: Cluster, boxes: list[str]) -> None:
    async def gone() -> bool:
        for name in boxes:
            if await cluster.sandbox(name) is not None:
                return False
        return True

    await eventually.eventually(gone, timeout_seconds=90, describe="every sandbox deleted")
    leftovers = await cluster.children()
    assert all(not found for found in leftovers.values()), leftovers


async def test_kill_9_mid_creation_and_mid_deletion(
    world: World, cluster: Cluster, tmp_path: Path
) -> None:
    port = controlplane.free_port()
    settings = world.settings().model_copy(
        update={"http": world.settings().http.model_copy(update={"port": port})}
    )
    process = ReconcilerProcess(settings, log_file=tmp_path / "reconciler.log")
    process.start()
    try:
        await process.wait_ready(port)
        await world.start_watcher()
        await cluster.create_runtime()
        boxes = [f"crash-{index}" for index in range(COUNT)]
        await asyncio.gather(*(cluster.create_sandbox(name, timeout=600) for name in boxes))

        async def some_pod_created() -> bool:
            pods = await objects.list_objects(
                cluster.kube,
                resource=objects.POD,
                namespace=cluster.namespace,
                label_selector=owner_module.SANDBOX_UID,
            )
            return bool(pods.items)

        await eventually.eventually(
            some_pod_created, timeout_seconds=60, describe="creation under way"
        )
        process.kill()
        # The kill landed mid-creation: with no reconciler, the state is frozen as it left it.
        phases = [
            ((await cluster.sandbox(name)) or {}).get("status", {}).get("phase") for name in boxes
        ]
        assert phases.count("Running") < COUNT, phases
        process.start()
        await process.wait_ready(port)
        await _all_running_with_one_pod(cluster, boxes)
        uids = {name: ((await cluster.sandbox(name)) or {})["metadata"]["uid"] for name in boxes}

        # A quarter of the pods take their time to terminate (as real ones do): when the
        # reconciler dies, those sandboxes are certainly mid-deletion, whatever else it did.
        slow = boxes[: COUNT // 4]
        for name in slow:
            await hold_deletion(
                cluster.kube, resource=objects.POD, name=pod_name(name), namespace=cluster.namespace
            )
        await asyncio.gather(*(cluster.delete_sandbox(name) for name in boxes))

        async def fast_ones_gone() -> bool:
            return all([await cluster.sandbox(name) is None for name in boxes[len(slow) :]])

        await eventually.eventually(
            fast_ones_gone, timeout_seconds=60, describe="deletion under way"
        )
        process.kill()
        # Mid-deletion: the slow ones are held by the finalizer, their pod terminating and
        # their policies still there; none of those gone left a child behind.
        for name in slow:
            obj = await cluster.sandbox(name)
            assert obj is not None, name
            assert kinds.FINALIZER in obj["metadata"]["finalizers"]
            left = await cluster.children(uids[name])
            assert left["Pod"] == [pod_name(name)], (name, left)
            assert left["NetworkPolicy"], (name, left)
        for name in boxes[len(slow) :]:
            left = await cluster.children(uids[name])
            assert all(not found for found in left.values()), (name, left)
        # The pods finish terminating while no reconciler runs.
        for name in slow:
            await release_deletion(
                cluster.kube, resource=objects.POD, name=pod_name(name), namespace=cluster.namespace
            )
        process.start()
        await process.wait_ready(port)
        await _all_gone_nothing_left(cluster, boxes)
    finally:
        process.stop()


async def test_two_replicas_and_a_storm_of_duplicate_hints(
    world: World, cluster: Cluster, nats_url: str
) -> None:
    await world.start_reconciler()
    await world.start_reconciler()
    await world.start_watcher()
    await cluster.create_runtime()
    boxes = [f"storm-{index}" for index in range(COUNT)]
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()

        async def storm(round_number: int) -> None:
            for name in boxes:
                event = messages.ChangeEvent(
                    kind="sandbox",
                    namespace=cluster.namespace,
                    name=name,
                    event_type="RESYNC",
                    observed_at=datetime.datetime.now(tz=datetime.UTC),
                )
                await js.publish(
                    subjects.event_subject(
                        "sandbox",
                        namespace=cluster.namespace,
                        name=name,
                        prefix=world.nats.subject_prefix,
                    ),
                    codec.encode(event),
                    stream=world.nats.events_stream,
                    headers={"Nats-Msg-Id": f"storm/{name}/{round_number}"},
                )

        creating = asyncio.gather(*(cluster.create_sandbox(name, timeout=600) for name in boxes))
        await asyncio.gather(creating, *(storm(r) for r in range(10)))
    finally:
        await connection.close()
    await _all_running_with_one_pod(cluster, boxes)
    pods_created = sum(
        r.sample("llmsafespace_sandbox_api_writes_total", kind="Pod", verb="create")
        for r in world.reconcilers
    )
    # Duplicate creates are harmless (AlreadyExists), but every one is visible in the count.
    assert pods_created >= COUNT
    await asyncio.gather(*(cluster.delete_sandbox(name) for name in boxes))
    await _all_gone_nothing_left(cluster, boxes)
