"""Warm claims that a reconciler could not finish, and the hand-off to the recycler, against
the real apiserver + kwok, nats-server, watcher and pool manager:

- ``kill -9`` mid-claim: a reconciler process stops every warm start right after the
  WarmPod's CAS (then, in a second round, right after the pod's adoption) and is killed
  with SIGKILL; one of its sandboxes is deleted while no reconciler runs. After a restart
  (a normal process on the same durable consumer): every remaining sandbox is Running on
  the very WarmPod it had claimed (the claim was resumed, not re-made), the deleted one is
  gone and its claim released (WarmPod and pod deleted), no WarmPod is assigned twice, no
  Assigned WarmPod lacks a sandbox referencing it, no pod has two owners, every sandbox has
  exactly one pod;
- the recycler hand-off: with ``warm.recycle`` on, the end of a warm sandbox publishes
  exactly one message on ``lss.recycle.<ns>.<warmpod>`` (seen by a plain NATS subscriber
  and stored once in JetStream): a ``ChangeEvent`` naming the WarmPod, with
  ``Nats-Msg-Id`` ``recycle/<ns>/<warmpod>/<uid>``; the WarmPod records the hand-off and is
  left to the recycler.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import api
from prometheus_client import parser
from reconciler_harness import (
    Cluster,
    ReconcilerProcess,
    RunningReconciler,
    World,
    environment,
)
from test_warm_claim import (
    PoolManager,
    create_pool,
    phase_of,
    sandboxes,
    wait_ready_warm_pods,
    warm_pods,
)

from lss_common.bus import codec
from lss_common.kube import objects
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.testing import eventually
from lss_dev import controlplane
from lss_sandbox_reconciler import warm
from lss_sandbox_reconciler.render import owner as owner_module

pytestmark = pytest.mark.integration

STUCK = Path(__file__).parent / "stuck_reconciler.py"


class StuckReconcilerProcess(ReconcilerProcess):
    """``stuck_reconciler.py <stage>``: warm starts stop at ``stage`` until SIGKILL."""

    def __init__(self, *args: Any, stage: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage = stage

    def start(self) -> None:
        env = {**os.environ, **environment(self.settings)}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(STUCK), self.stage],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )


def _metric(port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def _assignments(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Assigned WarmPods by the sandbox UID they are assigned to (a repeat fails)."""
    found: dict[str, dict[str, Any]] = {}
    for wp in await warm_pods(cluster.kube, cluster.namespace):
        if phase_of(wp) == "Assigned" and not wp["metadata"].get("deletionTimestamp"):
            uid = wp["status"]["assignedTo"]
            assert uid not in found, f"two WarmPods assigned to {uid}"
            found[uid] = wp
    return found


async def _claim_round(
    world: World,
    cluster: Cluster,
    *,
    stage: str,
    names: list[str],
    delete: str,
    tmp_path: Path,
) -> dict[str, str]:
    """One stuck process, its claims for ``names``, SIGKILL, ``delete`` deleted, a normal
    restart; returns each remaining sandbox's claimed WarmPod (by sandbox name)."""
    port = controlplane.free_port()
    settings = world.settings().model_copy(
        update={"http": world.settings().http.model_copy(update={"port": port})}
    )
    stuck = StuckReconcilerProcess(settings, log_file=tmp_path / f"stuck-{stage}.log", stage=stage)
    stuck.start()
    try:
        await stuck.wait_ready(port)
        if world.watcher is None:
            await world.start_watcher()
        await wait_ready_warm_pods(cluster, len(names))
        created = {name: await cluster.create_sandbox(name) for name in names}
        uids = {name: obj["metadata"]["uid"] for name, obj in created.items()}

        async def stuck_mid_claim() -> dict[str, dict[str, Any]] | None:
            claims = await _assignments(cluster)
            if not all(uid in claims for uid in uids.values()):
                return None
            if stage == "adopted":
                for uid in uids.values():
                    pod = await cluster.child(objects.POD, claims[uid]["status"]["podName"])
                    owners = (pod or {}).get("metadata", {}).get("ownerReferences") or []
                    if [ref["uid"] for ref in owners] != [uid]:
                        return None
            return claims

        claims = await eventually.eventually(
            stuck_mid_claim, timeout_seconds=60, describe=f"every sandbox {stage}, no further"
        )
        for name in names:
            obj = await cluster.sandbox(name)
            assert obj is not None
            assert not (obj.get("status") or {}).get("warmPodRef"), "the process stops earlier"
        stuck.kill()
    finally:
        stuck.stop()
    gone_claim = claims[uids[delete]]
    await cluster.delete_sandbox(delete)  # its finalizer holds it until a reconciler runs

    restarted = ReconcilerProcess(settings, log_file=tmp_path / f"restarted-{stage}.log")
    restarted.start()
    try:
        await restarted.wait_ready(port)
        await cluster.wait_gone(delete, timeout_seconds=90)
        for name in names:
            if name != delete:
                await cluster.wait_phase(name, "Running", timeout_seconds=90)
        resumed = _metric(port, "llmsafespace_sandbox_warm_claims_total", result="resumed")
        assert resumed >= len(names) - 1
        assert (
            _metric(port, "llmsafespace_sandbox_warm_pods_released_total", how="stray_claim") == 1
        )
    finally:
        restarted.stop()

    # The deleted sandbox's claim is released: WarmPod and pod gone.
    left = {wp["metadata"]["uid"] for wp in await warm_pods(cluster.kube, cluster.namespace)}
    assert gone_claim["metadata"]["uid"] not in left
    assert await cluster.child(objects.POD, gone_claim["status"]["podName"]) is None
    return {name: claims[uids[name]]["metadata"]["name"] for name in names if name != delete}


async def test_kill_9_mid_claim_then_claims_are_resumed_or_released(
    world: World, cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.create_runtime()
    manager = PoolManager(world)  # default leaked-claim grace (120 s): not a factor here
    await manager.start()
    try:
        await create_pool(cluster, "std", minSize=4)
        claimed = await _claim_round(
            world, cluster, stage="claimed", names=["a", "b", "c"], delete="c", tmp_path=tmp_path
        )
        claimed |= await _claim_round(
            world, cluster, stage="adopted", names=["d", "e"], delete="e", tmp_path=tmp_path
        )
        boxes = await sandboxes(cluster)
        assert sorted(s["metadata"]["name"] for s in boxes) == ["a", "b", "d"]
        for sandbox in boxes:
            status = sandbox["status"]
            assert status["phase"] == "Running"
            # resumed: the WarmPod claimed before the kill, not a new claim or a cold pod
            assert status["warmPodRef"]["name"] == claimed[sandbox["metadata"]["name"]]
        # Every Assigned WarmPod is assigned once, to a sandbox that references it.
        assignments = await _assignments(cluster)
        assert {uid: wp["metadata"]["name"] for uid, wp in assignments.items()} == {
            s["metadata"]["uid"]: s["status"]["warmPodRef"]["name"] for s in boxes
        }
        # No pod with two owners; every sandbox exactly one pod, the one it reports.
        pods = (
            await objects.list_objects(
                cluster.kube, resource=objects.POD, namespace=cluster.namespace
            )
        ).items
        per_sandbox: collections.Counter[str] = collections.Counter()
        for pod in pods:
            owners = pod["metadata"].get("ownerReferences") or []
            assert len(owners) <= 1, pod["metadata"]
            uid = (pod["metadata"].get("labels") or {}).get(owner_module.SANDBOX_UID)
            if uid is not None and not pod["metadata"].get("deletionTimestamp"):
                per_sandbox[uid] += 1
        assert per_sandbox == collections.Counter({s["metadata"]["uid"]: 1 for s in boxes})
        pod_names = {p["metadata"]["name"] for p in pods}
        assert all(s["status"]["podName"] in pod_names for s in boxes)
    finally:
        await manager.stop()


async def test_end_of_a_warm_sandbox_is_handed_to_the_recycler_once(
    world: World, cluster: Cluster, nats_url: str
) -> None:
    await cluster.create_runtime()
    prefix = world.nats.subject_prefix
    connection = await nats.connect(nats_url)
    received: list[Any] = []
    try:
        # A plain subscriber sees every publish; a durable consumer what the stream stored.
        async def on_message(msg: Any) -> None:
            received.append(msg)

        subscription = await connection.subscribe(
            subjects.recycle_filter(prefix=prefix), cb=on_message
        )
        settings = world.settings()
        running = RunningReconciler(
            settings.model_copy(update={"warm": settings.warm.model_copy(update={"recycle": True})})
        )
        await running.start()
        world.reconcilers.append(running)
        manager = PoolManager(world)
        await manager.start()
        try:
            await world.start_watcher()
            js = connection.jetstream()
            await js.add_consumer(
                world.nats.events_stream,
                api.ConsumerConfig(
                    durable_name="recycler-probe",
                    filter_subject=subjects.recycle_filter(prefix=prefix),
                    ack_policy=api.AckPolicy.EXPLICIT,
                ),
            )
            await create_pool(cluster, "std", minSize=1)
            await wait_ready_warm_pods(cluster, 1)
            obj = await cluster.create_sandbox("w")
            running = await cluster.wait_phase("w", "Running", timeout_seconds=90)
            ref = running["status"]["warmPodRef"]
            warm_pod = await objects.get_object(
                cluster.kube,
                resource=objects.WARM_POD,
                namespace=cluster.namespace,
                name=ref["name"],
            )
            await cluster.delete_sandbox("w")
            await cluster.wait_gone("w", timeout_seconds=90)
            # Every publish happened before the finalizer went; a round trip on this
            # connection delivers whatever the server routed to it before.
            await connection.flush()
        finally:
            await manager.stop()
        subject = subjects.recycle_subject(cluster.namespace, warmpod=ref["name"], prefix=prefix)
        msg_id = f"recycle/{cluster.namespace}/{ref['name']}/{warm_pod['metadata']['uid']}"
        assert [m.subject for m in received] == [subject]
        (message,) = received
        assert message.headers["Nats-Msg-Id"] == msg_id
        event = codec.decode(message.data, message_type=messages.ChangeEvent)
        assert (event.kind, event.namespace, event.name, event.uid) == (
            "warmpod",
            cluster.namespace,
            ref["name"],
            warm_pod["metadata"]["uid"],
        )
        assert event.event_type == "MODIFIED"
        pull = await js.pull_subscribe_bind("recycler-probe", stream=world.nats.events_stream)
        stored = await pull.fetch(10, timeout=2)
        assert [m.headers["Nats-Msg-Id"] for m in stored] == [msg_id]
        info = await js.consumer_info(world.nats.events_stream, "recycler-probe")
        assert info.num_pending == 0
        # The WarmPod is left to the recycler, marked as handed over, still Assigned.
        handed = await objects.get_object(
            cluster.kube, resource=objects.WARM_POD, namespace=cluster.namespace, name=ref["name"]
        )
        assert handed["status"]["phase"] == "Assigned"
        assert handed["status"]["assignedTo"] == obj["metadata"]["uid"]
        condition = next(
            c for c in handed["status"]["conditions"] if c["type"] == warm.RECYCLE_CONDITION
        )
        assert condition["status"] == "True"
        await subscription.unsubscribe()
    finally:
        await connection.close()
