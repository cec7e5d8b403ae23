"""sweep: an Assigned WarmPod is released only past the grace period and only when its sandbox
is gone (or is a namesake with another UID) or does not reference it; a referenced one never
is, whatever the sandbox's phase; the pod goes with it only when it is the WarmPod's own or an
adopted pod the sandbox does not run on; when to look again. Also the pool-side pieces that
meet the sweep and preload: ``max_creates`` in sizing and the ``PreloadFailing`` status."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import sizing, status, sweep

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
GRACE = 120.0
SANDBOX_UID = "sb-uid-1"


def ts(seconds_ago: float) -> str:
    return meta.format_timestamp(NOW - datetime.timedelta(seconds=seconds_ago))


def warm_pod(
    *,
    name: str = "p-0",
    phase: str = "Assigned",
    assigned_ago: float | None = 600,
    assigned_to: str | None = SANDBOX_UID,
    deleting: bool = False,
) -> warmpod_model.WarmPod:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": f"wp-{name}",
        "resourceVersion": "7",
        "creationTimestamp": ts(3600),
    }
    if deleting:
        metadata["deletionTimestamp"] = ts(1)
    status: dict[str, Any] = {"phase": phase, "podName": f"{name}-pod"}
    if assigned_to:
        status["assignedTo"] = assigned_to
    if assigned_ago is not None:
        status["assignedAt"] = ts(assigned_ago)
    return warmpod_model.from_dict(
        {
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "WarmPod",
            "metadata": metadata,
            "spec": {
                "poolRef": {"name": "p"},
                "runtime": "python:3.11",
                "securityLevel": "standard",
                "resources": {"cpu": "500m", "memory": "512Mi", "ephemeralStorage": "1Gi"},
            },
            "status": status,
        }
    )


def sandbox(
    *,
    uid: str = SANDBOX_UID,
    ref: str | None = "p-0",
    pod_name: str | None = "p-0-pod",
    phase: str | None = "Running",
    deleting: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {} if phase is None else {"phase": phase}
    if ref is not None:
        status["warmPodRef"] = {"name": ref}
    if pod_name is not None:
        status["podName"] = pod_name
    metadata: dict[str, Any] = {"name": "sb", "namespace": "ns", "uid": uid}
    if deleting:
        metadata["deletionTimestamp"] = ts(1)
    return {"metadata": metadata, "status": status}


def judge(obj: warmpod_model.WarmPod, holder: dict[str, Any] | None) -> sweep.Verdict:
    return sweep.judge(
        obj,
        holder=sweep.holder_of(holder) if holder is not None else None,
        now=NOW,
        grace_seconds=GRACE,
    )


def test_holder_of_a_sandbox() -> None:
    found = sweep.holder_of(sandbox())
    assert found == sweep.Holder(
        uid=SANDBOX_UID,
        namespace="ns",
        name="sb",
        warm_pod_ref=("ns", "p-0"),
        pod_name="p-0-pod",
        phase="Running",
    )
    assert sweep.holder_of(sandbox(ref=None)).warm_pod_ref is None


def test_same_holder_is_the_listed_sandbox_or_none_for_a_namesake() -> None:
    listed = sweep.holder_of(sandbox(ref=None))
    # Since the list, the sandbox took the WarmPod: the fresh read is what counts.
    assert sweep.same_holder(listed, sandbox()) == sweep.holder_of(sandbox())
    # Deleted and re-created under its name: not the claim's holder, whatever it runs on.
    assert sweep.same_holder(listed, sandbox(uid="a-namesake")) is None
    # A namesake running on the claimed pod does not keep that pod from the release.
    claimed = warm_pod()
    pod = {
        "metadata": {
            "name": "p-0-pod",
            "ownerReferences": [
                {"kind": "Sandbox", "uid": SANDBOX_UID, "controller": True, "name": "sb"}
            ],
        }
    }
    namesake = sweep.same_holder(listed, sandbox(uid="a-namesake", pod_name="p-0-pod"))
    assert sweep.may_delete_pod(pod, warm_pod=claimed, holder=namesake)


@pytest.mark.parametrize(
    ("obj", "holder", "verdict"),
    [
        (warm_pod(), sandbox(), sweep.Verdict.IN_USE),
        (warm_pod(), None, sweep.Verdict.SANDBOX_GONE),
        (warm_pod(), sandbox(uid="a-namesake"), sweep.Verdict.SANDBOX_GONE),
        (warm_pod(), sandbox(ref=None, pod_name="sandbox-sb"), sweep.Verdict.NOT_REFERENCED),
        (warm_pod(), sandbox(ref="p-9"), sweep.Verdict.NOT_REFERENCED),
        (warm_pod(assigned_ago=GRACE - 1), None, sweep.Verdict.TOO_RECENT),
        (warm_pod(assigned_ago=GRACE - 1), sandbox(ref=None), sweep.Verdict.TOO_RECENT),
        (warm_pod(assigned_ago=GRACE), None, sweep.Verdict.SANDBOX_GONE),
        # without assignedAt the WarmPod's creation is the clock (an hour ago here)
        (warm_pod(assigned_ago=None), None, sweep.Verdict.SANDBOX_GONE),
        (warm_pod(phase="Ready", assigned_to=None), None, sweep.Verdict.IN_USE),
        (warm_pod(deleting=True), None, sweep.Verdict.IN_USE),
        # A new sandbox (its first writes refused, or no reconciler for a while): its next
        # pass resumes the claim, as the reconciler's is_stray_claim says.
        (warm_pod(), sandbox(ref=None, pod_name=None, phase=None), sweep.Verdict.IN_USE),
        (warm_pod(), sandbox(ref=None, pod_name=None, phase="Pending"), sweep.Verdict.IN_USE),
        # ... but not once it is being deleted, or past new.
        (
            warm_pod(),
            sandbox(ref=None, pod_name=None, phase=None, deleting=True),
            sweep.Verdict.NOT_REFERENCED,
        ),
        (
            warm_pod(),
            sandbox(ref=None, pod_name="sandbox-sb", phase="Creating"),
            sweep.Verdict.NOT_REFERENCED,
        ),
    ],
)
def test_judge(
    obj: warmpod_model.WarmPod, holder: dict[str, Any] | None, verdict: sweep.Verdict
) -> None:
    assert judge(obj, holder) is verdict


@given(
    age=st.floats(min_value=0, max_value=10_000),
    grace=st.floats(min_value=1, max_value=1_000),
    gone=st.booleans(),
    ref=st.sampled_from([None, "p-0", "p-1"]),
)
def test_never_releases_a_referenced_or_young_claim(
    age: float, grace: float, gone: bool, ref: str | None
) -> None:
    obj = warm_pod(assigned_ago=age)
    holder = None if gone else sweep.holder_of(sandbox(ref=ref))
    verdict = sweep.judge(obj, holder=holder, now=NOW, grace_seconds=grace)
    if verdict.is_leaked:
        # assignedAt is written to the second (rounded down): up to 1 s older than age
        assert age > grace - 1
        assert gone or ref != "p-0"
    if not gone and ref == "p-0":
        assert not verdict.is_leaked


def owned_pod(kind: str, uid: str, *, name: str = "p-0-pod", **meta_extra: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": "pod-uid",
            "ownerReferences": [{"kind": kind, "uid": uid, "controller": True, "name": "x"}],
            **meta_extra,
        }
    }


@pytest.mark.parametrize(
    ("pod", "holder", "allowed"),
    [
        (owned_pod("WarmPod", "wp-p-0"), None, True),
        (owned_pod("WarmPod", "wp-p-0"), sandbox(ref=None), True),
        (owned_pod("WarmPod", "wp-other"), None, False),
        # adopted by the claiming sandbox: deleted when the sandbox is gone, or runs elsewhere
        (owned_pod("Sandbox", SANDBOX_UID), None, True),
        (owned_pod("Sandbox", SANDBOX_UID), sandbox(ref=None, pod_name="sandbox-sb"), True),
        # ... but never the pod the sandbox runs on
        (owned_pod("Sandbox", SANDBOX_UID), sandbox(ref=None, pod_name="p-0-pod"), False),
        # someone else's pod, or one without a controller, or one going already
        (owned_pod("Sandbox", "another-sandbox"), None, False),
        (owned_pod("ReplicaSet", "rs"), None, False),
        ({"metadata": {"name": "p-0-pod"}}, None, False),
        (owned_pod("WarmPod", "wp-p-0", deletionTimestamp=ts(1)), None, False),
        (None, None, False),
    ],
)
def test_may_delete_pod(
    pod: dict[str, Any] | None, holder: dict[str, Any] | None, allowed: bool
) -> None:
    found = sweep.holder_of(holder) if holder is not None else None
    assert sweep.may_delete_pod(pod, warm_pod=warm_pod(), holder=found) is allowed


def test_due_and_next_check() -> None:
    old = warm_pod(name="p-0", assigned_ago=600)
    young = warm_pod(name="p-1", assigned_ago=100)
    ready = warm_pod(name="p-2", phase="Ready", assigned_to=None, assigned_ago=None)
    pods = [old, young, ready]
    assert sweep.due(pods, now=NOW, grace_seconds=GRACE) == [old]

    def next_check(since: float | None, *items: warmpod_model.WarmPod) -> float | None:
        return sweep.next_check_seconds(
            items,
            now=NOW,
            grace_seconds=GRACE,
            seconds_since_check=since,
            interval_seconds=60,
        )

    assert next_check(None, *pods) == 0.0  # never checked: now
    assert next_check(10, *pods) == 20.0  # the young one leaves its grace in 20 s
    assert next_check(50, *pods) == 10.0  # the interval since the last check ends first
    assert next_check(10, old) == 50.0
    assert next_check(100, old) == 0.0
    assert next_check(10, ready) is None


# -- the pool's side: max_creates and the PreloadFailing condition ------------------------------


def plan(*, max_creates: int | None, min_size: int = 3) -> sizing.SizingPlan:
    return sizing.plan_sizing(
        sizing.Shape(min_size=min_size),
        pool_name="p",
        members=[],
        expectations=sizing.Expectations(),
        bucket=sizing.TokenBucket.full(capacity=10, rate_per_second=1),
        last_scale_time=None,
        now=NOW,
        max_creates=max_creates,
    )


def test_max_creates_caps_the_fill() -> None:
    assert len(plan(max_creates=None).create) == 3
    assert plan(max_creates=None).limited_by is None
    capped = plan(max_creates=1)
    assert capped.create == ("p-0",)
    assert capped.limited_by is sizing.Limit.PRELOAD_BACKOFF
    held = plan(max_creates=0)
    assert held.create == ()
    assert held.counts.pending == 0
    assert plan(max_creates=5).limited_by is None


def test_preload_failing_condition() -> None:
    pool = warmpool_model.from_dict(
        {
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "WarmPool",
            "metadata": {"name": "p", "namespace": "ns", "generation": 1},
            "spec": {"runtime": "python:3.11", "minSize": 3},
            "status": {
                "preload": {
                    "consecutiveFailures": 2,
                    "lastFailureTime": ts(5),
                    "lastFailureMessage": 'WarmPod p-1: preload script "x" failed',
                }
            },
        }
    )
    found = status.sized_status(pool, plan=plan(max_creates=0), now=NOW)
    (ready,) = found.conditions or []
    assert (ready.status, ready.reason) == ("False", "PreloadFailing")
    assert 'preload script "x" failed' in (ready.message or "")
    assert found.preload == warmpool_model.status_of(pool).preload  # kept as it was


def test_a_claim_holds_while_its_adopted_pod_terminates_for_a_living_sandbox() -> None:
    """The reconciler keeps a deleted sandbox's policies until the pod it adopted is gone,
    and learns of that pod from the Assigned WarmPod: released, its pass removed them."""
    claimed = warm_pod()
    going = owned_pod("Sandbox", SANDBOX_UID, deletionTimestamp=ts(1))
    deleting = sweep.holder_of(sandbox(ref=None, pod_name=None, phase=None, deleting=True))
    assert sweep.holds_for_its_pod(going, warm_pod=claimed, holder=deleting)
    # The sandbox gone (its finalizer removed): nothing waits for the pod any more.
    assert not sweep.holds_for_its_pod(going, warm_pod=claimed, holder=None)
    # Not terminating, or not the claiming sandbox's: no reason to wait.
    assert not sweep.holds_for_its_pod(
        owned_pod("Sandbox", SANDBOX_UID), warm_pod=claimed, holder=deleting
    )
    assert not sweep.holds_for_its_pod(
        owned_pod("Sandbox", "someone", deletionTimestamp=ts(1)), warm_pod=claimed, holder=deleting
    )
    assert not sweep.holds_for_its_pod(None, warm_pod=claimed, holder=deleting)
