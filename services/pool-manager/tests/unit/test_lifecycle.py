"""lifecycle: Pending until the pod is Ready with an IP; heartbeat refreshed on schedule;
Failed (then deleted) when the pod is gone, dies, crash-loops or never becomes Ready;
Assigned is never touched; the TTL clock is the Ready transition, not the heartbeat."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest

from lss_common.logic import pod_records
from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_pool_manager import lifecycle, names, pod_failures

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
UID = "abcdef12-0000-4000-8000-000000000000"
POD = names.pod_name("py-0", uid=UID)
POD_UID = "0d3c3c8e-1111-4000-8000-000000000000"
SPEC: dict[str, Any] = {
    "containers": [{"name": "sandbox", "image": "python:3.11", "resources": {}}],
    "automountServiceAccountToken": False,
}
RECORD = {"podUID": POD_UID, "podSpecHash": pod_records.stored_spec_hash({"spec": SPEC})}


def ts(seconds_ago: float) -> str:
    return meta.format_timestamp(NOW - datetime.timedelta(seconds=seconds_ago))


def warm_pod(
    status: dict[str, Any] | None = None, *, created_ago: float = 10, recorded: bool = True
) -> warmpod_model.WarmPod:
    """A WarmPod; with a status, the record of :func:`pod`'s pod unless ``recorded`` is
    False (the pool manager records its pod with the first status it writes)."""
    data: dict[str, Any] = {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "WarmPod",
        "metadata": {
            "name": "py-0",
            "namespace": "ns",
            "uid": UID,
            "generation": 1,
            "creationTimestamp": ts(created_ago),
        },
        "spec": {
            "poolRef": {"name": "py"},
            "runtime": "python:3.11",
            "securityLevel": "standard",
            "resources": {"cpu": "500m", "memory": "512Mi", "ephemeralStorage": "1Gi"},
        },
    }
    if status is not None:
        data["status"] = {**RECORD, **status} if recorded else status
    return warmpod_model.from_dict(data)


def pod(
    *,
    ready: bool = True,
    ip: str | None = "10.244.0.5",
    phase: str = "Running",
    created_ago: float = 5,
    **extra: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    status.update(extra)
    return {
        "metadata": {
            "name": POD,
            "namespace": "ns",
            "uid": POD_UID,
            "creationTimestamp": ts(created_ago),
            "ownerReferences": [
                {"kind": "WarmPod", "name": "py-0", "uid": UID, "controller": True}
            ],
        },
        # Bound to a node after its creation: not part of the record.
        "spec": {**SPEC, "nodeName": "kwok-node-0"},
        "status": status,
    }


def run(
    obj: warmpod_model.WarmPod, observed: dict[str, Any] | None, **options: float
) -> lifecycle.WarmPodPlan:
    return lifecycle.plan_warm_pod(
        obj,
        pod=observed,
        now=NOW,
        heartbeat_interval_seconds=options.get("heartbeat", 60.0),
        ready_timeout_seconds=options.get("timeout", 300.0),
    )


def test_fresh_warm_pod_creates_its_pod_and_is_pending() -> None:
    result = run(warm_pod(), None)
    assert result.create_pod
    assert result.status is not None
    assert result.status.phase == "Pending"
    assert result.status.pod_name == POD


def test_ready_only_with_an_ip_and_heartbeat_set() -> None:
    pending = warm_pod({"phase": "Pending", "podName": POD})
    no_ip = run(pending, pod(ip=None))
    assert no_ip.status is None or no_ip.status.phase == "Pending"
    result = run(pending, pod())
    assert result.status is not None
    assert result.status.phase == "Ready"
    assert result.status.last_heartbeat == meta.format_timestamp(NOW)
    assert result.requeue_after_seconds == 60.0


def test_heartbeat_refreshed_only_when_due() -> None:
    fresh = warm_pod({"phase": "Ready", "podName": POD, "lastHeartbeat": ts(30)})
    ready_again = run(fresh, pod())
    # the condition is new here, so a status is written, but the heartbeat is not moved
    assert ready_again.status is None or ready_again.status.last_heartbeat == ts(30)
    settled = warm_pod(
        {
            "phase": "Ready",
            "podName": POD,
            "lastHeartbeat": ts(30),
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "PodReady",
                    "message": f"pod {POD} is Ready",
                    "lastTransitionTime": ts(100),
                    "observedGeneration": 1,
                }
            ],
        }
    )
    assert run(settled, pod()).status is None
    due = run(settled, pod(), heartbeat=20)
    assert due.status is not None
    assert due.status.last_heartbeat == meta.format_timestamp(NOW)
    assert lifecycle.idle_since(settled) == NOW - datetime.timedelta(seconds=100)
    assert run(settled, pod(), heartbeat=0).status is None


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        (pod(phase="Failed"), "PodFailed"),
        (pod(phase="Succeeded"), "PodFailed"),
        (
            pod(
                ready=False,
                containerStatuses=[
                    {"name": "sandbox", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ],
            ),
            "PodFailed",
        ),
        (
            pod(
                ready=False,
                phase="Pending",
                containerStatuses=[
                    {
                        "name": "sandbox",
                        "image": "x",
                        "state": {"waiting": {"reason": "ImagePullBackOff"}},
                    }
                ],
            ),
            "PodFailed",
        ),
        (None, "PodGone"),
    ],
)
def test_pod_death_fails_and_deletes(observed: dict[str, Any] | None, reason: str) -> None:
    result = run(warm_pod({"phase": "Ready", "podName": POD}), observed)
    assert result.delete
    assert result.status is not None
    assert result.status.phase == "Failed"
    assert result.status.conditions is not None
    assert result.status.conditions[0].reason == reason


def test_pod_being_deleted_fails() -> None:
    observed = pod()
    observed["metadata"]["deletionTimestamp"] = ts(1)
    assert run(warm_pod({"phase": "Ready", "podName": POD}), observed).delete


def test_never_ready_fails_after_the_timeout_and_requeues_before() -> None:
    pending = warm_pod({"phase": "Pending", "podName": POD}, created_ago=400)
    before = run(pending, pod(ready=False, created_ago=100))
    assert not before.delete
    assert before.requeue_after_seconds == pytest.approx(200)
    after = run(pending, pod(ready=False, created_ago=301))
    assert after.delete
    assert after.status is not None
    assert after.status.conditions is not None
    assert after.status.conditions[0].reason == "NotReadyInTime"
    assert "after creation" in (after.status.conditions[0].message or "")


def test_a_long_ready_warm_pod_is_not_failed_for_a_readiness_blip() -> None:
    """The ready timeout runs from when a Ready WarmPod's pod stopped being Ready, not from
    the WarmPod's (or the pod's) creation an hour ago."""
    ready = warm_pod({"phase": "Ready", "podName": POD}, created_ago=3600)
    blip = run(ready, pod(ready=False, created_ago=3600))
    assert not blip.delete
    assert blip.status is not None
    assert blip.status.phase == "Pending"
    assert blip.requeue_after_seconds == pytest.approx(300)
    # Still not Ready: failed once the timeout has run from the blip's start.
    not_ready = lifecycle_status(blip.status, stopped_ago=301)
    after = run(warm_pod(not_ready, created_ago=3600), pod(ready=False, created_ago=3600))
    assert after.delete
    assert after.status is not None
    assert after.status.conditions is not None
    assert after.status.conditions[0].reason == "NotReadyInTime"
    assert "after it stopped being Ready" in (after.status.conditions[0].message or "")
    within = run(
        warm_pod(lifecycle_status(blip.status, stopped_ago=100), created_ago=3600),
        pod(ready=False, created_ago=3600),
    )
    assert not within.delete
    assert within.requeue_after_seconds == pytest.approx(200)


def test_a_readiness_blip_keeps_its_start_across_passes() -> None:
    """Every pass while the blip lasts (a resync, the other replica's pass on the status
    write's hint) keeps PodNotReady and its transition time: the timeout still runs from the
    blip's start, not from the pod's creation an hour ago."""
    ready = warm_pod({"phase": "Ready", "podName": POD}, created_ago=3600)
    blip = run(ready, pod(ready=False, created_ago=3600))
    assert blip.status is not None
    stored = lifecycle_status(blip.status, stopped_ago=10)
    again = run(warm_pod(stored, created_ago=3600), pod(ready=False, created_ago=3600))
    assert not again.delete
    # Nothing to write: same phase, reason and transition time.
    assert again.status is None
    assert again.requeue_after_seconds == pytest.approx(290)
    # And a third pass, from the stored status, is no different.
    third = run(warm_pod(stored, created_ago=3600), pod(ready=False, created_ago=3600))
    assert not third.delete


def test_a_pod_created_late_gets_its_own_ready_timeout() -> None:
    """A WarmPod whose pod was refused for a while (a quota) times its pod from the pod's
    creation, not its own."""
    late = warm_pod({"phase": "Pending", "podName": POD}, created_ago=400)
    assert not run(late, pod(ready=False, created_ago=10)).delete


def lifecycle_status(status: Any, *, stopped_ago: float) -> dict[str, Any]:
    """``status`` as stored, its Ready condition's transition ``stopped_ago`` seconds ago."""
    data = msgspec.to_builtins(status)
    for item in data["conditions"]:
        if item["type"] == "Ready":
            item["lastTransitionTime"] = ts(stopped_ago)
    return dict(data)


def test_ready_pod_that_becomes_unready_goes_back_to_pending() -> None:
    result = run(warm_pod({"phase": "Ready", "podName": POD}), pod(ready=False))
    assert result.status is not None
    assert result.status.phase == "Pending"
    assert not result.delete


@pytest.mark.parametrize("observed", [None, pod(phase="Failed")])
def test_assigned_is_never_touched(observed: dict[str, Any] | None) -> None:
    assigned = warm_pod({"phase": "Assigned", "podName": POD, "assignedTo": "sandbox-uid"})
    assert run(assigned, observed) == lifecycle.WarmPodPlan()


def test_failed_or_terminating_is_deleted_without_a_write() -> None:
    for phase in ("Failed", "Terminating"):
        assert run(warm_pod({"phase": phase}), None) == lifecycle.WarmPodPlan(delete=True)


def test_a_pod_owned_by_someone_else_is_a_conflict() -> None:
    foreign = pod()
    foreign["metadata"]["ownerReferences"] = [{"kind": "WarmPod", "uid": "other"}]
    result = run(warm_pod({"phase": "Pending", "podName": POD}), foreign)
    assert result.delete
    assert result.status is not None
    assert result.status.conditions is not None
    assert result.status.conditions[0].reason == "PodConflict"


def test_deleting_warm_pod_is_left_alone() -> None:
    obj = warm_pod()
    obj.metadata.deletion_timestamp = ts(1)
    assert run(obj, None) == lifecycle.WarmPodPlan()


@pytest.mark.parametrize(
    ("status", "deleting", "needed"),
    [
        (None, False, True),
        ({"phase": "Pending"}, False, True),
        ({"phase": "Ready", "podName": POD}, False, True),
        ({"phase": "Assigned", "podName": POD, "assignedTo": "sandbox-uid"}, False, False),
        ({"phase": "Failed"}, False, False),
        ({"phase": "Terminating"}, False, False),
        ({"phase": "Ready", "podName": POD}, True, False),
    ],
)
def test_the_pod_is_read_only_when_the_plan_looks_at_it(
    status: dict[str, Any] | None, deleting: bool, needed: bool
) -> None:
    obj = warm_pod(status)
    if deleting:
        obj.metadata.deletion_timestamp = ts(1)
    assert lifecycle.needs_pod(obj) is needed
    if not needed:
        # Whatever the pod is, the plan is the same: not reading it loses nothing.
        plans = {str(run(obj, observed)) for observed in (None, pod(), pod(phase="Failed"))}
        assert len(plans) == 1


def test_a_refused_pod_leaves_the_warm_pod_pending_without_a_pod_name() -> None:
    starting = lifecycle.plan_warm_pod(
        warm_pod(), pod=None, now=NOW, heartbeat_interval_seconds=0, ready_timeout_seconds=300
    )
    assert starting.create_pod
    assert starting.status is not None
    assert starting.status.pod_name == POD
    before = warm_pod(msgspec.to_builtins(starting.status))
    refused = lifecycle.refused_status(before, message="exceeded quota: pods=0", now=NOW)
    assert refused.phase == "Pending"
    assert refused.pod_name is None
    after = warm_pod(msgspec.to_builtins(refused))
    assert lifecycle.refusal_of(after) == "exceeded quota: pods=0"
    assert lifecycle.refusal_of(before) is None
    # The next pass creates the pod again (it never existed): not "pod gone", not failed.
    again = lifecycle.plan_warm_pod(
        after, pod=None, now=NOW, heartbeat_interval_seconds=0, ready_timeout_seconds=300
    )
    assert again.create_pod
    assert not again.delete


def test_a_pod_being_deleted_is_gone_not_failed() -> None:
    """Evicted, preempted, a node drained: the WarmPod goes (``PodGone``), and it does not
    count on its pool's failure backoff (which counts ``PodFailed``)."""
    ready = warm_pod({"phase": "Ready", "podName": POD}, created_ago=600)
    going = pod(ready=True)
    going["metadata"]["deletionTimestamp"] = ts(1)
    result = run(ready, going)
    assert result.delete
    assert result.status is not None
    assert result.status.conditions is not None
    assert result.status.conditions[0].reason == "PodGone"
    assert pod_failures.counts(result.status) is None


# -- the record of the pod as created (lss_common.logic.pod_records) -------------------------


def reason_of(result: lifecycle.WarmPodPlan) -> str | None:
    assert result.status is not None
    assert result.status.conditions is not None
    return result.status.conditions[0].reason


def test_the_creator_records_its_pod_with_the_pending_status() -> None:
    created = pod(ready=False, created_ago=0)
    status = lifecycle.created_status(warm_pod(), pod=created, now=NOW)
    assert status.phase == "Pending"
    assert status.pod_name == POD
    assert status.pod_uid == POD_UID
    assert status.pod_spec_hash == RECORD["podSpecHash"]
    # What the scheduler sets afterwards is not part of the record.
    bound = pod()
    assert pod_records.stored_spec_hash(bound) == status.pod_spec_hash


@pytest.mark.parametrize("ready", [True, False])
def test_an_unrecorded_pod_waits_for_its_creator_then_fails(ready: bool) -> None:
    """Another pass finds the pod before its creator's status write: it writes nothing and
    looks again soon (the record's hint may be skipped as an own write); past the grace the
    WarmPod fails as unverified, Ready pod or not."""
    unrecorded = warm_pod(None)
    waiting = run(unrecorded, pod(ready=ready, created_ago=1))
    assert waiting == lifecycle.WarmPodPlan(requeue_after_seconds=lifecycle.RECORD_POLL_SECONDS)
    almost = run(unrecorded, pod(ready=ready, created_ago=lifecycle.RECORD_GRACE_SECONDS - 1))
    assert almost == waiting
    late = run(
        warm_pod({"phase": "Pending", "podName": POD}, recorded=False),
        pod(ready=ready, created_ago=lifecycle.RECORD_GRACE_SECONDS),
    )
    assert late.delete
    assert late.status is not None
    assert late.status.phase == "Failed"
    assert reason_of(late) == "PodUnverified"


def test_a_pod_that_is_not_the_recorded_one_fails_the_warm_pod() -> None:
    """Same name, forged owner reference, another UID: the pod was deleted and squatted."""
    squatter = pod()
    squatter["metadata"]["uid"] = "f00f00f0-0000-4000-8000-000000000000"
    result = run(warm_pod({"phase": "Ready", "podName": POD}), squatter)
    assert result.delete
    assert reason_of(result) == "PodConflict"
    assert result.status is not None
    assert "f00f00f0" in (result.status.conditions or [])[0].message


@pytest.mark.parametrize(
    "change",
    [
        lambda spec: spec["containers"][0].update(image="evil:latest"),
        lambda spec: spec.update(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
        lambda spec: spec["containers"][0].update(resources={"limits": {"cpu": "8"}}),
        lambda spec: spec.update(activeDeadlineSeconds=5),
    ],
    ids=["image", "ephemeral-container", "resize", "deadline"],
)
@pytest.mark.parametrize("phase", ["Pending", "Ready"])
def test_a_pod_changed_since_its_creation_fails_the_warm_pod(change: Any, phase: str) -> None:
    changed = pod()
    change(changed["spec"])
    result = run(warm_pod({"phase": phase, "podName": POD}), changed)
    assert result.delete
    assert result.status is not None
    assert result.status.phase == "Failed"
    assert reason_of(result) == "PodModified"


def test_an_unverified_warm_pod_is_deleted_for_that_reason() -> None:
    from lss_pool_manager import preload, sizing

    for reason in sorted(lifecycle.UNVERIFIED_REASONS):
        failed = warm_pod(
            {
                "phase": "Failed",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": reason,
                        "message": "",
                        "lastTransitionTime": ts(0),
                    }
                ],
            }
        )
        assert preload.deletion_reason(failed) is sizing.DeleteReason.UNVERIFIED
        # Changed or unrecorded pods slow the pool's creations down (a platform doing it to
        # every pod would otherwise churn the pool at full rate); a name conflict does not.
        counted = pod_failures.counts(warmpod_model.status_of(failed)) is not None
        assert counted == (reason != "PodConflict")
