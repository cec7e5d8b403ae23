"""The claim's compare-and-set against the real API server: stale candidates conflict.

The ready queue is a hint: a candidate held at an old resourceVersion costs a 409 on the CAS,
and the claim moves on to the next candidate; after ``warm.max_conflicts`` (3) it starts
cold. To make candidates stale the way a real race does (another replica claimed, a
heartbeat landed), the test stops the watcher once the reconciler's queue holds the pool,
changes WarmPods behind its back (an annotation: a new resourceVersion, no hint), and sends
the new sandbox's hint itself.

- every candidate stale: exactly three conflicts, then a cold start; the WarmPods stay
  Ready and unassigned; the cold start's milestone and start-up duration are counted;
- two of three stale: the claim lands on the fresh one (after at most two conflicts), the
  reconciler sends no WarmPod list for it (its client's request metric: candidates come from
  the queue), and each milestone of the warm start (hint received, claimed, adopted,
  running) is counted once.

Beside the CAS, when the claim meets trouble:

- a refused first wave (the sandbox's deny policy, refused by an admission policy): the
  claim is kept and each re-check resumes it; no warm pod is discarded;
- a cold pod beside a running warm sandbox's pod (two replicas raced): deleted, the warm pod
  left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import nats
import pytest
from reconciler_harness import Cluster, RunningReconciler, World
from test_warm_claim import PoolManager, create_pool, phase_of, wait_ready_warm_pods, warm_pods

from lss_common import errors
from lss_common.bus import codec
from lss_common.kube import objects, writes
from lss_common.logic import subjects
from lss_common.models import kinds, labels, messages
from lss_common.observability import metrics as shared_metrics
from lss_common.testing import admission, eventually
from lss_common.testing.admission import refusing
from lss_common.testing.finalizers import hold_deletion, release_deletion
from lss_dev import fixtures_kube, webhook
from lss_sandbox_reconciler import adopt, names
from lss_sandbox_reconciler.render import owner as owner_module

pytestmark = pytest.mark.integration

_CLAIMS = "llmsafespace_sandbox_warm_claims_total"
_MILESTONES = "llmsafespace_sandbox_claim_milestone_seconds_count"
_STARTUPS = "llmsafespace_sandbox_startup_duration_seconds_count"
_REQUESTS = "llmsafespace_kube_requests_total"


@pytest.fixture
async def pool_manager(world: World) -> AsyncIterator[PoolManager]:
    manager = PoolManager(world)
    try:
        yield manager
    finally:
        await manager.stop()


async def _pool_in_the_queue(
    world: World, cluster: Cluster, manager: PoolManager, size: int, *, stop_watcher: bool = True
) -> tuple[RunningReconciler, list[dict[str, Any]]]:
    """A reconciler whose ready queue holds a pool of ``size``; then the watcher stops
    (unless not ``stop_watcher``)."""
    reconciler = await world.start_reconciler()
    # The queue starts from one list of every namespace's WarmPods (other tests' too, whose
    # hints go to other subjects); this test's pool comes on top.
    baseline = reconciler.sample("llmsafespace_sandbox_ready_queue_size")
    await manager.start()
    await world.start_watcher()
    await cluster.create_runtime()
    await create_pool(cluster, "std", minSize=size, maxSize=size)
    await wait_ready_warm_pods(cluster, size)

    async def queued() -> bool:
        return reconciler.sample("llmsafespace_sandbox_ready_queue_size") == baseline + size

    await eventually.eventually(queued, timeout_seconds=30, describe=f"{size} in the queue")
    if stop_watcher:
        assert world.watcher is not None
        await world.watcher.stop()
        world.watcher = None
        # Hints published before the stop are read within milliseconds; let them land, so
        # that what the queue holds is what the API server held when the watcher stopped.
        await asyncio.sleep(1.0)
    ready = [
        wp for wp in await warm_pods(cluster.kube, cluster.namespace) if phase_of(wp) == "Ready"
    ]
    assert len(ready) == size
    return reconciler, ready


async def _touch(cluster: Cluster, warm_pod: dict[str, Any]) -> None:
    """A change the reconciler never hears of: its queue's resourceVersion is now stale."""
    await objects.patch_object(
        cluster.kube,
        resource=objects.WARM_POD,
        name=warm_pod["metadata"]["name"],
        namespace=cluster.namespace,
        body={"metadata": {"annotations": {"test.llmsafespace.dev/touched": "yes"}}},
    )


async def _hint(world: World, cluster: Cluster, name: str) -> None:
    """The hint the (stopped) watcher would have published for the new Sandbox."""
    created = await cluster.sandbox(name)
    assert created is not None
    event = messages.ChangeEvent(
        kind="sandbox",
        namespace=cluster.namespace,
        name=name,
        event_type="ADDED",
        uid=created["metadata"]["uid"],
        resource_version=created["metadata"]["resourceVersion"],
        observed_at=datetime.datetime.now(tz=datetime.UTC),
    )
    connection = await nats.connect(world.nats_url)
    try:
        await connection.jetstream().publish(
            subjects.event_subject(
                "sandbox", namespace=cluster.namespace, name=name, prefix=world.nats.subject_prefix
            ),
            codec.encode(event),
            stream=world.nats.events_stream,
        )
    finally:
        await connection.close()


def _warm_pod_lists(reconciler: RunningReconciler) -> float:
    """WarmPod lists the reconciler has sent (its client's request metric, all results)."""
    return sum(
        reconciler.sample(_REQUESTS, verb="list", resource="warmpods", result=result)
        for result in shared_metrics.KubeResult
    )


def _claims(reconciler: RunningReconciler, result: str) -> float:
    return reconciler.sample(_CLAIMS, result=result)


async def test_every_candidate_stale_three_conflicts_then_cold(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    reconciler, ready = await _pool_in_the_queue(world, cluster, pool_manager, 3)
    for warm_pod in ready:
        await _touch(cluster, warm_pod)

    await cluster.create_sandbox("cold", timeout=600)
    await _hint(world, cluster, "cold")
    obj = await cluster.wait_phase("cold", "Creating")

    assert _claims(reconciler, "conflict") == 3
    assert _claims(reconciler, "conflicts_exhausted") == 1
    assert _claims(reconciler, "claimed") == 0
    assert obj["status"].get("warmPodRef") is None
    assert obj["status"]["podName"] == "sandbox-cold"
    assert await cluster.child(objects.POD, "sandbox-cold") is not None
    # No CAS went through: every WarmPod is still Ready, assigned to nobody.
    after = await warm_pods(cluster.kube, cluster.namespace)
    assert sorted(phase_of(wp) or "" for wp in after) == ["Ready"] * 3
    assert all("assignedTo" not in (wp.get("status") or {}) for wp in after)
    assert reconciler.sample(_MILESTONES, launch="cold", milestone="hint_received") == 1

    # The watcher back: the pod's Ready reaches the reconciler, the sandbox runs cold.
    await world.start_watcher()
    running = await cluster.wait_phase("cold", "Running")
    assert running["status"].get("warmPodRef") is None
    await reconciler.counted(_STARTUPS, 1, launch="cold")
    assert reconciler.sample(_STARTUPS, launch="warm") == 0


async def test_a_stale_candidate_conflicts_and_the_claim_takes_the_next(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    reconciler, ready = await _pool_in_the_queue(world, cluster, pool_manager, 3)
    fresh, stale = ready[0], ready[1:]
    for warm_pod in stale:
        await _touch(cluster, warm_pod)

    lists_before = _warm_pod_lists(reconciler)
    assert lists_before == 1  # the ready queue's one list at start: the metric is read
    await cluster.create_sandbox("warm", timeout=600)
    await _hint(world, cluster, "warm")
    obj = await cluster.wait_phase("warm", "Running")
    # The candidates came from the queue: no WarmPod list for the claim.
    assert _warm_pod_lists(reconciler) == lists_before

    ref = obj["status"].get("warmPodRef")
    assert ref is not None, obj["status"]
    assert ref["name"] == fresh["metadata"]["name"]
    assert obj["status"]["podName"] == fresh["status"]["podName"]
    conflicts = _claims(reconciler, "conflict")
    assert conflicts <= len(stale)
    assert _claims(reconciler, "claimed") == 1
    assert _claims(reconciler, "conflicts_exhausted") == 0
    by_name = {
        wp["metadata"]["name"]: wp for wp in await warm_pods(cluster.kube, cluster.namespace)
    }
    assert by_name[fresh["metadata"]["name"]]["status"]["phase"] == "Assigned"
    assert by_name[fresh["metadata"]["name"]]["status"]["assignedTo"] == obj["metadata"]["uid"]
    for warm_pod in stale:
        assert by_name[warm_pod["metadata"]["name"]]["status"]["phase"] == "Ready"
    # Running's milestone and start-up are counted once its write returned.
    await reconciler.counted(_STARTUPS, 1, launch="warm")
    for milestone in ("hint_received", "claimed", "adopted", "running"):
        await reconciler.counted(_MILESTONES, 1, launch="warm", milestone=milestone)
    assert reconciler.sample(_STARTUPS, launch="cold") == 0


async def test_a_refused_first_wave_keeps_the_claim_and_resumes_it(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    """The sandbox's deny policy is refused (an admission policy) while its CAS succeeds:
    the claim is kept, each re-check resumes it (no second CAS, no warm pod deleted, the
    pool creates no more than the one refill), and once allowed the sandbox runs on it."""
    reconciler = await world.start_reconciler(
        reconcile_options={"refused_write_retry_seconds": 1.0}
    )
    baseline = reconciler.sample("llmsafespace_sandbox_ready_queue_size")
    await pool_manager.start()
    await world.start_watcher()
    await cluster.create_runtime()
    await create_pool(cluster, "std", minSize=2)
    await wait_ready_warm_pods(cluster, 2)

    async def queued() -> bool:
        return reconciler.sample("llmsafespace_sandbox_ready_queue_size") == baseline + 2

    await eventually.eventually(queued, timeout_seconds=30, describe="2 in the queue")
    probe_name = f"sandbox-probe-{uuid.uuid4().hex[:6]}"

    async def probe() -> None:
        with contextlib.suppress(errors.AlreadyExistsError):
            await objects.create_object(
                cluster.kube,
                resource=objects.NETWORK_POLICY,
                namespace=cluster.namespace,
                body={
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": probe_name},
                    "spec": {"podSelector": {"matchLabels": {"lss-test": "none"}}},
                },
            )
        await objects.delete_object(
            cluster.kube,
            resource=objects.NETWORK_POLICY,
            name=probe_name,
            namespace=cluster.namespace,
        )

    rule = {
        "apiGroups": ["networking.k8s.io"],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["networkpolicies"],
    }
    created_before = _pool_sample(pool_manager, "llmsafespace_warmpool_pods_created_total")
    assert created_before >= 2  # the metric is read
    async with refusing(
        cluster.kube,
        namespace=cluster.namespace,
        rule=rule,
        probe=probe,
        allow="!object.metadata.name.startsWith('sandbox-')",
    ):
        created = await cluster.create_sandbox("held", timeout=600)
        uid = created["metadata"]["uid"]
        await eventually.eventually(
            lambda: _claims(reconciler, "resumed") >= 2,
            timeout_seconds=60,
            describe="the claim resumed by two re-checks",
        )
        assert _claims(reconciler, "claimed") == 1
        assert _claims(reconciler, "discarded") == 0
        items = await warm_pods(cluster.kube, cluster.namespace)
        held = [wp for wp in items if (wp.get("status") or {}).get("assignedTo") == uid]
        assert len(held) == 1, items
        # Not adopted: the pod is still the WarmPod's, without the sandbox's labels.
        pod = await cluster.child(objects.POD, held[0]["status"]["podName"])
        assert pod is not None
        assert pod["metadata"]["ownerReferences"][0]["uid"] == held[0]["metadata"]["uid"]
        obj = await cluster.sandbox("held")
        assert obj is not None
        assert not (obj.get("status") or {}).get("phase")

    running = await cluster.wait_phase("held", "Running")
    assert running["status"]["warmPodRef"]["name"] == held[0]["metadata"]["name"]
    assert _claims(reconciler, "claimed") == 1
    assert _claims(reconciler, "discarded") == 0
    # One refill for the one claim, whatever the number of re-checks.
    await wait_ready_warm_pods(cluster, 2)
    created_after = _pool_sample(pool_manager, "llmsafespace_warmpool_pods_created_total")
    assert created_after - created_before <= 1


def _pool_sample(manager: PoolManager, name: str) -> float:
    value = manager.service.runtime.registry.get_sample_value(name, {})
    return 0.0 if value is None else value


async def test_a_cold_pod_beside_a_warm_sandboxs_pod_is_deleted(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    """Two passes of one new sandbox on two replicas may start it warm and cold; when the
    warm start wins, the cold pod (the sandbox's name and labels) must not run beside it: a
    second copy of the workload with the sandbox's network allowances. Here that pod is made
    by hand beside a running warm sandbox; its own hint wakes the sandbox, whose pass deletes
    it and leaves the warm pod alone."""
    await world.start_reconciler()
    await pool_manager.start()
    await world.start_watcher()
    await cluster.create_runtime()
    await create_pool(cluster, "std", minSize=1)
    await wait_ready_warm_pods(cluster, 1)
    created = await cluster.create_sandbox("twice", timeout=600)
    uid = created["metadata"]["uid"]
    running = await cluster.wait_phase("twice", "Running")
    assert running["status"].get("warmPodRef") is not None
    warm_pod = await cluster.child(objects.POD, running["status"]["podName"])
    assert warm_pod is not None

    cold_name = names.pod_name("twice")
    stray_labels = {
        key: value
        for key, value in warm_pod["metadata"]["labels"].items()
        if key != labels.WARM_POD_UID  # not selected by the warm pod's Service
    }
    assert stray_labels[owner_module.SANDBOX_UID] == uid
    spec = {k: v for k, v in warm_pod["spec"].items() if k != "nodeName"}
    stray = await objects.create_object(
        cluster.kube,
        resource=objects.POD,
        namespace=cluster.namespace,
        body={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": cold_name,
                "labels": stray_labels,
                "ownerReferences": warm_pod["metadata"]["ownerReferences"],
            },
            "spec": spec,
        },
    )

    async def stray_gone() -> bool:
        found = await cluster.child(objects.POD, cold_name)
        return found is None or found["metadata"]["uid"] != stray["metadata"]["uid"]

    await eventually.eventually(stray_gone, timeout_seconds=60, describe="the cold pod deleted")
    still = await cluster.child(objects.POD, warm_pod["metadata"]["name"])
    assert still is not None
    assert still["metadata"]["uid"] == warm_pod["metadata"]["uid"]
    after = await cluster.sandbox("twice")
    assert after is not None
    assert after["status"]["phase"] == "Running"
    assert after["status"]["podName"] == warm_pod["metadata"]["name"]
    assert (await cluster.children(uid))["Pod"] == [warm_pod["metadata"]["name"]]


async def test_a_warm_claims_status_write_that_conflicts_keeps_the_claim(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    """After the adoption, the pod is the sandbox's: a 409 on the Running status write (a
    test webhook answers the sandbox's first two status writes so) keeps the claim, and the
    next pass resumes it without a second CAS. Discarding it deleted a warm pod on each
    conflicting pass."""
    await cluster.create_runtime()
    await cluster.create_sandbox("probe")

    probe = webhook.status_probe(
        cluster.kube, resource=objects.SANDBOX, namespace=cluster.namespace, name="probe"
    )
    answer = webhook.conflicting(times=2, when=lambda request: request.get("name") == "contended")

    rule = {
        "apiGroups": ["llmsafespace.dev"],
        "apiVersions": ["*"],
        "operations": ["UPDATE"],
        "resources": ["sandboxes/status"],
    }
    async with webhook.serving(
        cluster.kube, namespace=cluster.namespace, rule=rule, answer=answer, probe=probe
    ) as hook:
        reconciler = await world.start_reconciler()
        await pool_manager.start()
        await world.start_watcher()
        await create_pool(cluster, "std", minSize=2)
        await wait_ready_warm_pods(cluster, 2)
        await cluster.create_sandbox("contended", timeout=600)
        running = await cluster.wait_phase("contended", "Running")
    assert len(hook.denied) == 2
    assert running["status"].get("warmPodRef"), running["status"]
    assert reconciler.sample(_CLAIMS, result="claimed") == 1
    assert reconciler.sample(_CLAIMS, result="discarded") == 0
    assert reconciler.sample(_CLAIMS, result="resumed") >= 1
    # One WarmPod went to the sandbox, and it is the one it runs on; none was deleted.
    items = await warm_pods(cluster.kube, cluster.namespace)
    assigned = [wp for wp in items if phase_of(wp) == "Assigned"]
    assert [wp["metadata"]["name"] for wp in assigned] == [running["status"]["warmPodRef"]["name"]]
    assert assigned[0]["status"]["podName"] == running["status"]["podName"]


async def test_a_pod_another_pass_adopted_for_the_same_sandbox_is_not_discarded(
    world: World,
    cluster: Cluster,
    pool_manager: PoolManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two passes of one sandbox may hold the same claim (one resumed the other's): the
    first adoption lands, and the second's patch fails its test (the pod is no longer the
    WarmPod's). The pod is the sandbox's then: the second pass goes on with it instead of
    discarding the claim, which deleted the pod the sandbox had just been given."""
    reconciler = await world.start_reconciler()
    await pool_manager.start()
    await world.start_watcher()
    await cluster.create_runtime()
    await create_pool(cluster, "std", minSize=1)
    await wait_ready_warm_pods(cluster, 1)
    real = adopt.adopt_pod
    raced: list[str] = []

    async def adopted_first_by_another_pass(
        kube: Any, *, candidate: Any, owner: Any
    ) -> dict[str, Any]:
        if not raced:
            raced.append(candidate.name)
            await real(kube, candidate=candidate, owner=owner)  # the other pass's adoption
        return await real(kube, candidate=candidate, owner=owner)

    monkeypatch.setattr(adopt, "adopt_pod", adopted_first_by_another_pass)
    await cluster.create_sandbox("twice", timeout=600)
    running = await cluster.wait_phase("twice", "Running")
    assert raced == [running["status"]["warmPodRef"]["name"]]
    assert reconciler.sample(_CLAIMS, result="claimed") == 1
    assert reconciler.sample(_CLAIMS, result="discarded") == 0
    pod = await cluster.child(objects.POD, running["status"]["podName"])
    assert pod is not None
    assert not pod["metadata"].get("deletionTimestamp")


async def test_a_claim_whose_pod_vanished_before_the_adoption_is_discarded(
    world: World,
    cluster: Cluster,
    pool_manager: PoolManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claimed WarmPod's pod is deleted between the CAS and the adoption (its node
    died): the adoption finds no pod, the claim is discarded (its WarmPod deleted, so the
    pool replaces it) and the next pass claims another warm pod."""
    reconciler = await world.start_reconciler()
    await pool_manager.start()
    await world.start_watcher()
    await cluster.create_runtime()
    await create_pool(cluster, "std", minSize=2)
    await wait_ready_warm_pods(cluster, 2)
    real = adopt.adopt_pod
    lost: list[str] = []
    lost_uids: list[str] = []

    async def pod_gone_first(kube: Any, *, candidate: Any, owner: Any) -> dict[str, Any]:
        if not lost:
            lost.append(candidate.name)
            lost_uids.append(candidate.uid)
            await objects.delete_object(
                kube, resource=objects.POD, namespace=candidate.namespace, name=candidate.pod_name
            )
        return await real(kube, candidate=candidate, owner=owner)

    monkeypatch.setattr(adopt, "adopt_pod", pod_gone_first)
    await cluster.create_sandbox("unlucky", timeout=600)
    running = await cluster.wait_phase("unlucky", "Running")
    assert running["status"].get("warmPodRef"), running["status"]
    serving = await objects.get_object(
        cluster.kube,
        resource=objects.WARM_POD,
        namespace=cluster.namespace,
        name=running["status"]["warmPodRef"]["name"],
    )
    assert serving["metadata"]["uid"] != lost_uids[0]
    assert reconciler.sample(_CLAIMS, result="claimed") == 2
    assert reconciler.sample(_CLAIMS, result="discarded") == 1

    async def discarded_gone() -> bool:
        items = await warm_pods(cluster.kube, cluster.namespace)
        return lost_uids[0] not in {wp["metadata"]["uid"] for wp in items}

    await eventually.eventually(discarded_gone, timeout_seconds=30, describe="discarded")


async def test_a_refused_claim_starts_cold_and_leaves_the_warm_pod_a_candidate(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    """The claim's CAS is refused for good (a test webhook answers 403 to every WarmPod
    status write that assigns it, as a missing RBAC grant or an admission policy would): the
    sandbox starts cold at once (no other candidate tried, no refused-write condition), no
    WarmPod is assigned, and once claims are allowed again the next sandbox starts warm."""
    reconciler, ready = await _pool_in_the_queue(
        world, cluster, pool_manager, 2, stop_watcher=False
    )

    def refuse_claims(request: Mapping[str, Any]) -> webhook.Denial | None:
        status = (request.get("object") or {}).get("status") or {}
        if status.get("phase") != "Assigned":
            return None
        return webhook.Denial(code=403, reason="Forbidden", message="the test refuses claims")

    rule = {
        "apiGroups": ["llmsafespace.dev"],
        "apiVersions": ["*"],
        "operations": ["UPDATE"],
        "resources": ["warmpods/status"],
    }
    probe = webhook.status_probe(
        cluster.kube,
        resource=objects.WARM_POD,
        namespace=cluster.namespace,
        name=ready[0]["metadata"]["name"],
    )
    async with webhook.serving(
        cluster.kube, namespace=cluster.namespace, rule=rule, answer=refuse_claims, probe=probe
    ) as hook:
        await cluster.create_sandbox("refused", timeout=600)
        running = await cluster.wait_phase("refused", "Running")
        assert running["status"].get("warmPodRef") is None
        assert running["status"]["podName"] == names.pod_name("refused")
        assert len(hook.denied) == 1
        assert _claims(reconciler, "refused") == 1
        assert _claims(reconciler, "conflict") == 0
        assert _claims(reconciler, "claimed") == 0
        after = await warm_pods(cluster.kube, cluster.namespace)
        assert sorted(phase_of(wp) or "" for wp in after) == ["Ready", "Ready"]
        assert all("assignedTo" not in (wp.get("status") or {}) for wp in after)

    await cluster.create_sandbox("allowed", timeout=600)
    warm = await cluster.wait_phase("allowed", "Running")
    assert warm["status"].get("warmPodRef"), warm["status"]
    assert _claims(reconciler, "claimed") == 1


async def test_a_sandbox_deleted_mid_claim_waits_for_the_pod_it_adopted(
    world: World,
    cluster: Cluster,
    pool_manager: PoolManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Sandbox is deleted between the adoption of its warm pod and its Running status
    (the status write then conflicts and the claim is discarded). The adopted pod carries
    the sandbox's labels, and its deletion takes a while (held here by a foreign finalizer,
    as a grace period would): the sandbox keeps its finalizer and its deny policy until that
    pod is gone, and the WarmPod, which names the pod, stays until then too. Before, the
    discard deleted the WarmPod at once and the next pass, blind to the pod, removed the
    policies and the finalizer while the pod still ran."""
    # The pool in the reconciler's ready queue first: a sandbox created before would start
    # cold (no candidate yet), which is not this test's case.
    reconciler, (warm_pod,) = await _pool_in_the_queue(
        world, cluster, pool_manager, 1, stop_watcher=False
    )
    pod_name = warm_pod["status"]["podName"]
    real = adopt.adopt_service
    deleted: list[str] = []

    async def deleted_meanwhile(kube: Any, *, candidate: Any, owner: Any) -> Any:
        adopted = await real(kube, candidate=candidate, owner=owner)
        if not deleted:
            deleted.append(owner.name)
            await hold_deletion(
                kube, resource=objects.POD, name=candidate.pod_name, namespace=cluster.namespace
            )
            await cluster.delete_sandbox(owner.name)
        return adopted

    monkeypatch.setattr(adopt, "adopt_service", deleted_meanwhile)
    await cluster.create_sandbox("doomed", timeout=600)
    held = await cluster.wait_phase("doomed", "Terminating")
    uid = held["metadata"]["uid"]
    assert deleted == ["doomed"]
    pod = await objects.get_object(
        cluster.kube, resource=objects.POD, namespace=cluster.namespace, name=pod_name
    )
    assert pod["metadata"].get("deletionTimestamp"), "the adopted pod is being deleted"
    assert pod["metadata"]["labels"][owner_module.SANDBOX_UID] == uid
    # Its policies still confine it, and the Sandbox keeps its finalizer.
    policies = (await cluster.children(uid)).get("NetworkPolicy", [])
    assert names.policy_name("doomed", policy=names.Policy.DENY) in policies
    assert kinds.FINALIZER in held["metadata"]["finalizers"]
    assert warm_pod["metadata"]["uid"] in {
        wp["metadata"]["uid"] for wp in await warm_pods(cluster.kube, cluster.namespace)
    }
    await release_deletion(
        cluster.kube, resource=objects.POD, name=pod_name, namespace=cluster.namespace
    )
    await cluster.wait_gone("doomed")
    assert not any((await cluster.children(uid)).values())

    async def claim_released() -> bool:
        items = await warm_pods(cluster.kube, cluster.namespace)
        return warm_pod["metadata"]["uid"] not in {wp["metadata"]["uid"] for wp in items}

    await eventually.eventually(claim_released, timeout_seconds=30, describe="WarmPod released")
    assert reconciler.sample(_CLAIMS, result="discarded") == 1


async def test_a_refused_adoption_starts_cold_and_stops_claiming_for_a_while(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    """The claimed pod's adoption is refused for good (a test webhook answers 403 to every
    pod update that gives it a Sandbox owner, as an admission policy would): the claim is
    discarded and the sandbox starts cold in the same pass. The namespace's next sandbox does
    not claim (``refused_recently``) — retried, each pass claimed and burned another warm pod
    and the sandbox never ran."""
    reconciler, ready = await _pool_in_the_queue(
        world, cluster, pool_manager, 2, stop_watcher=False
    )

    def refuse_adoptions(request: Mapping[str, Any]) -> webhook.Denial | None:
        refs = ((request.get("object") or {}).get("metadata") or {}).get("ownerReferences") or []
        if not any(ref.get("kind") == "Sandbox" for ref in refs):
            return None
        return webhook.Denial(code=403, reason="Forbidden", message="the test refuses adoptions")

    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["UPDATE"],
        "resources": ["pods"],
    }
    probe_pod = ready[0]["status"]["podName"]
    probes = iter(range(1_000_000))

    async def probe() -> None:
        await objects.patch_object(
            cluster.kube,
            resource=objects.POD,
            namespace=cluster.namespace,
            name=probe_pod,
            body={"metadata": {"annotations": {"test.llmsafespace.dev/probe": str(next(probes))}}},
        )

    async with webhook.serving(
        cluster.kube, namespace=cluster.namespace, rule=rule, answer=refuse_adoptions, probe=probe
    ) as hook:
        await cluster.create_sandbox("refused", timeout=600)
        running = await cluster.wait_phase("refused", "Running")
        assert running["status"].get("warmPodRef") is None
        assert running["status"]["podName"] == names.pod_name("refused")
        assert _claims(reconciler, "claimed") == 1
        assert _claims(reconciler, "refused") == 1
        assert _claims(reconciler, "discarded") == 1
        await cluster.create_sandbox("skipped", timeout=600)
        skipped = await cluster.wait_phase("skipped", "Running")
        assert skipped["status"].get("warmPodRef") is None
        assert _claims(reconciler, "refused_recently") == 1
        assert _claims(reconciler, "claimed") == 1
        assert len(hook.denied) == 1


async def test_a_transient_failure_before_the_adoption_keeps_the_claim(
    world: World,
    cluster: Cluster,
    pool_manager: PoolManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The adoption's request fails for a reason that says nothing about the claim (a 5xx, a
    timeout): the claim is kept and the retried pass resumes it — the same WarmPod, no second
    CAS. Discarding it burned a warm pod, and deleted the pod another replica's pass, resuming
    the same claim, was about to run the sandbox on."""
    reconciler, _ = await _pool_in_the_queue(world, cluster, pool_manager, 2, stop_watcher=False)
    real = adopt.adopt_pod
    failed: list[str] = []

    async def fails_once(kube: Any, *, candidate: Any, owner: Any) -> dict[str, Any]:
        if not failed:
            failed.append(candidate.name)
            raise errors.RetryableError("the API server answered 503")
        return await real(kube, candidate=candidate, owner=owner)

    monkeypatch.setattr(adopt, "adopt_pod", fails_once)
    await cluster.create_sandbox("patient", timeout=600)
    running = await cluster.wait_phase("patient", "Running")
    assert running["status"]["warmPodRef"]["name"] == failed[0]
    assert _claims(reconciler, "claimed") == 1
    assert _claims(reconciler, "resumed") == 1
    assert _claims(reconciler, "discarded") == 0


async def test_a_claim_kept_for_its_terminating_pod_is_not_resumed(
    world: World,
    cluster: Cluster,
    pool_manager: PoolManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claimed pod starts terminating as it is adopted (a node lost; held here by a
    foreign finalizer): it cannot serve, and the discarded claim keeps its WarmPod while the
    adopted pod terminates. The next pass does not resume that claim (each such pass failed
    again until the pod was gone); it claims another warm pod and the sandbox runs."""
    reconciler, _ = await _pool_in_the_queue(world, cluster, pool_manager, 2, stop_watcher=False)
    real = adopt.adopt_pod
    doomed: list[str] = []

    async def node_lost_first(kube: Any, *, candidate: Any, owner: Any) -> dict[str, Any]:
        if not doomed:
            doomed.append(candidate.pod_name)
            await hold_deletion(
                kube, resource=objects.POD, name=candidate.pod_name, namespace=cluster.namespace
            )
            await objects.delete_object(
                kube, resource=objects.POD, namespace=cluster.namespace, name=candidate.pod_name
            )
        return await real(kube, candidate=candidate, owner=owner)

    monkeypatch.setattr(adopt, "adopt_pod", node_lost_first)
    try:
        await cluster.create_sandbox("moved", timeout=600)
        running = await cluster.wait_phase("moved", "Running")
        assert running["status"]["podName"] != doomed[0]
        assert running["status"].get("warmPodRef"), running["status"]
        assert _claims(reconciler, "claimed") == 2
        assert _claims(reconciler, "discarded") == 1
        assert _claims(reconciler, "resumed") == 0
    finally:
        await release_deletion(
            cluster.kube, resource=objects.POD, name=doomed[0], namespace=cluster.namespace
        )


async def test_a_warm_pod_changed_behind_its_warmpods_back_is_never_run(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    """Someone who may patch pods in the namespace changes a Ready warm pod's image (a pod
    allows that) before a claim: the WarmPod still records the pool's pod, the claim matches
    it and adopts the pod — whose spec is not the sandbox's. The sandbox starts cold in the
    same pass, never on it; the pod and its WarmPod are discarded, and the namespace's next
    sandboxes skip the claim for a while. (The pool manager, which fails such a WarmPod on
    its pod's next hint, is stopped first: this is the claim's own check.)"""
    reconciler, ready = await _pool_in_the_queue(
        world, cluster, pool_manager, 1, stop_watcher=False
    )
    await pool_manager.stop()
    pod_name = ready[0]["status"]["podName"]
    pod = await objects.get_object(
        cluster.kube, resource=objects.POD, name=pod_name, namespace=cluster.namespace
    )
    before_uid = pod["metadata"]["uid"]
    await objects.patch_object(
        cluster.kube,
        resource=objects.POD,
        namespace=cluster.namespace,
        name=pod_name,
        body=[{"op": "replace", "path": "/spec/containers/0/image", "value": "evil:1"}],
        patch_type=objects.PatchType.JSON,
    )
    await cluster.create_sandbox("tampered", timeout=600)
    running = await cluster.wait_phase("tampered", "Running")
    assert running["status"].get("warmPodRef") is None
    assert running["status"]["podName"] == names.pod_name("tampered")
    assert _claims(reconciler, "claimed") == 1
    assert _claims(reconciler, "nonconforming") == 1
    assert _claims(reconciler, "discarded") == 1

    async def discarded() -> bool:
        found = await objects.get_or_none(
            cluster.kube,
            resource=objects.POD,
            name=pod_name,
            namespace=cluster.namespace,
            decode=objects.as_dict,
        )
        return (
            found is None
            or found["metadata"]["uid"] != before_uid
            or bool(found["metadata"].get("deletionTimestamp"))
        )

    await eventually.eventually(discarded, timeout_seconds=30, describe="the pod discarded")
    await cluster.create_sandbox("after", timeout=600)
    after = await cluster.wait_phase("after", "Running")
    assert after["status"].get("warmPodRef") is None
    assert _claims(reconciler, "refused_recently") == 1


_MESH_ANNOTATION = "mesh.test.llmsafespace.dev/injected"
#: What a mesh's injector adds to every pod at creation (a volume for its sidecar, a mark).
_MESH = (
    "Object{"
    f'metadata: Object.metadata{{annotations: {{"{_MESH_ANNOTATION}": "true"}}}}, '
    "spec: Object.spec{volumes: ["
    'Object.spec.volumes{name: "mesh-envoy", emptyDir: Object.spec.volumes.emptyDir{}}'
    "]}}"
)


async def test_a_platform_that_changes_every_pod_at_creation_still_starts_sandboxes_warm(
    world: World, cluster: Cluster, pool_manager: PoolManager
) -> None:
    """Mutating admission adds a volume and an annotation to every pod of the namespace (a
    mesh, a policy engine). The pool manager records its pods as stored, so the default
    check (``recorded``) lets claims run warm; ``strict``, which compares the pod with the
    sandbox's cold one, discards such a claim and starts the sandbox cold."""
    probes = 0

    async def mutated() -> bool:
        nonlocal probes
        probes += 1
        name = f"mesh-probe-{probes}"
        created = await objects.create_object(
            cluster.kube,
            resource=objects.POD,
            namespace=cluster.namespace,
            body=fixtures_kube.restricted_pod_body(name),
        )
        await objects.delete_object(
            cluster.kube,
            resource=objects.POD,
            namespace=cluster.namespace,
            name=name,
            grace_period_seconds=0,
        )
        return _MESH_ANNOTATION in (created["metadata"].get("annotations") or {})

    async with admission.mutating(
        cluster.kube,
        namespace=cluster.namespace,
        rule={
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
        },
        apply_configuration=_MESH,
        probe=mutated,
    ):
        reconciler, ready = await _pool_in_the_queue(
            world, cluster, pool_manager, 2, stop_watcher=False
        )
        warm_pod = await cluster.child(objects.POD, ready[0]["status"]["podName"])
        assert warm_pod is not None
        assert "mesh-envoy" in {v["name"] for v in warm_pod["spec"]["volumes"]}
        await cluster.create_sandbox("meshed", timeout=600)
        meshed = await cluster.wait_phase("meshed", "Running")
        assert meshed["status"].get("warmPodRef") is not None
        assert _claims(reconciler, "claimed") == 1
        assert _claims(reconciler, "nonconforming") == 0

        await reconciler.stop()
        world.reconcilers.remove(reconciler)
        strict = await world.start_reconciler(warm_options={"verify_claimed_pods": "strict"})

        async def queued() -> bool:
            return strict.sample("llmsafespace_sandbox_ready_queue_size") >= 1

        await eventually.eventually(queued, timeout_seconds=30, describe="a candidate queued")
        await cluster.create_sandbox("strict", timeout=600)
        cold = await cluster.wait_phase("strict", "Running")
        assert cold["status"].get("warmPodRef") is None
        assert cold["status"]["podName"] == names.pod_name("strict")
        assert _claims(strict, "nonconforming") == 1


async def _wait_given_back(cluster: Cluster, claimed: Mapping[str, Any]) -> None:
    """Until the claimed WarmPod is gone (or a new one holds its name)."""

    async def given_back() -> bool:
        found = await objects.get_or_none(
            cluster.kube,
            resource=objects.WARM_POD,
            namespace=cluster.namespace,
            name=claimed["metadata"]["name"],
            decode=objects.as_dict,
        )
        return found is None or found["metadata"]["uid"] != claimed["metadata"]["uid"]

    await eventually.eventually(given_back, timeout_seconds=20, describe="the claim given back")


async def test_a_sandbox_deleted_before_its_finalizer_lands_gives_its_claim_back(
    world: World,
    cluster: Cluster,
    pool_manager: PoolManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deleted milliseconds after its create (found by bench/chaos.py): the pass's finalizer
    patch, concurrent with the claim's CAS, answers 404. No pass of the gone Sandbox comes
    back to resume or give back the claim, so its WarmPod stayed Assigned until the pool
    manager's sweep (two minutes by default). Now the pass discards the claim at once, and
    the 404 ends the pass as done, not as an error retried with a traceback."""
    reconciler, ready = await _pool_in_the_queue(
        world, cluster, pool_manager, 1, stop_watcher=False
    )
    real_add_finalizer = writes.add_finalizer
    deleted: list[str] = []

    async def deleted_just_before(kube: Any, **kwargs: Any) -> Any:
        if kwargs["resource"] == objects.SANDBOX and not deleted:
            deleted.append(kwargs["obj"].metadata.name)
            await cluster.delete_sandbox(deleted[0])
        return await real_add_finalizer(kube, **kwargs)

    monkeypatch.setattr(writes, "add_finalizer", deleted_just_before)
    await cluster.create_sandbox("fleeting", timeout=600)
    # Well within the sweep's grace (120 s): the reconciler gave it back.
    await _wait_given_back(cluster, ready[0])
    assert deleted == ["fleeting"]
    assert await cluster.sandbox("fleeting") is None
    assert _claims(reconciler, "claimed") == 1
    assert _claims(reconciler, "discarded") == 1
    await reconciler.counted("llmsafespace_sandbox_vanished_during_pass_total", 1)
    errors_seen = reconciler.sample(
        "llmsafespace_bus_messages_total", stream=world.nats.events_stream, outcome="error"
    )
    assert errors_seen == 0


async def test_a_sandbox_gone_before_its_running_status_gives_its_claim_back(
    world: World,
    cluster: Cluster,
    pool_manager: PoolManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another replica released the sandbox (its finalizer removed, the Sandbox gone) while
    this one adopted a warm pod for it: the claim is not yet in the sandbox's status, so the
    other replica could not give it back, and this pass's Running write answers 404. The
    discard keeps the claim while the adopted pod's deletion is pending (its grace period,
    held here), for the sandbox's own release to wait on; but no pass of a gone sandbox
    comes, and the WarmPod stayed Assigned until the pool manager's sweep (found by
    bench/chaos.py). The pass that finds the sandbox gone gives back the claim it holds."""
    reconciler, ready = await _pool_in_the_queue(
        world, cluster, pool_manager, 1, stop_watcher=False
    )
    claimed = ready[0]
    pod_name = claimed["status"]["podName"]
    await hold_deletion(
        cluster.kube, resource=objects.POD, name=pod_name, namespace=cluster.namespace
    )
    real_update_status = writes.update_status
    removed: list[str] = []

    async def released_elsewhere_just_before(kube: Any, **kwargs: Any) -> Any:
        obj = kwargs["obj"]
        if kwargs["resource"] == objects.SANDBOX and not removed:
            name = obj.metadata.name
            removed.append(name)
            await cluster.delete_sandbox(name)
            # What the other replica's release ends with: the finalizer removed.
            await objects.patch_object(
                cluster.kube,
                resource=objects.SANDBOX,
                namespace=cluster.namespace,
                name=name,
                body={"metadata": {"finalizers": None}},
            )
        return await real_update_status(kube, **kwargs)

    monkeypatch.setattr(writes, "update_status", released_elsewhere_just_before)
    try:
        await cluster.create_sandbox("fleeting", timeout=600)
        # Well within the sweep's grace (120 s): the reconciler gave it back.
        await _wait_given_back(cluster, claimed)
        assert removed == ["fleeting"]
        assert await cluster.sandbox("fleeting") is None
        assert _claims(reconciler, "claimed") == 1
        await reconciler.counted("llmsafespace_sandbox_vanished_during_pass_total", 1)
        released = reconciler.sample(
            "llmsafespace_sandbox_warm_pods_released_total", how="stray_claim"
        )
        assert released == 1
    finally:
        await release_deletion(
            cluster.kube, resource=objects.POD, name=pod_name, namespace=cluster.namespace
        )
