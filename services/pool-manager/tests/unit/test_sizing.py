"""sizing: minSize counts pending and expected creates, maxSize caps the total, autoscaling
uses the seed's desired total (corrected, INVENTORY §10.5.17), scaleDownDelay 0 means none,
scale-down removes the oldest Ready WarmPods, TTL expires idle Ready ones, the token bucket
paces refills, and slot names keep any number of replicas from over-creating."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lss_pool_manager import names, sizing

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
POOL = "py"


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def member(slot: int, phase: str, **fields: object) -> sizing.Member:
    values: dict[str, object] = {
        "name": names.warm_pod_name(POOL, slot=slot),
        "uid": f"uid-{slot}",
        "phase": phase,
        "created_at": ago(1000 - slot),
        "idle_since": ago(100) if phase == "Ready" else None,
    }
    values.update(fields)
    return sizing.Member(**values)


def bucket(tokens: int = 100) -> sizing.TokenBucket:
    return sizing.TokenBucket(capacity=100, rate_per_second=1.0, tokens=tokens, updated_at=NOW)


def plan(
    shape: sizing.Shape,
    members: list[sizing.Member],
    *,
    expectations: sizing.Expectations | None = None,
    tokens: int = 100,
    last_scale_time: datetime.datetime | None = None,
) -> sizing.SizingPlan:
    return sizing.plan_sizing(
        shape,
        pool_name=POOL,
        members=members,
        expectations=expectations or sizing.Expectations(),
        bucket=bucket(tokens),
        last_scale_time=last_scale_time,
        now=NOW,
    )


def slots(*indices: int) -> tuple[str, ...]:
    return tuple(names.warm_pod_name(POOL, slot=i) for i in indices)


@pytest.mark.parametrize(
    ("shape", "members", "creates"),
    [
        (sizing.Shape(min_size=3), [], slots(0, 1, 2)),
        # pending ones count: the seed created 3 more here
        (sizing.Shape(min_size=3), [member(0, "Pending"), member(1, ""), member(2, "Ready")], ()),
        # assigned ones do not count toward minSize; lowest free slot first
        (sizing.Shape(min_size=2), [member(0, "Assigned"), member(1, "Ready")], slots(2)),
        # maxSize caps the total, assigned included
        (
            sizing.Shape(min_size=3, max_size=3),
            [member(0, "Assigned"), member(1, "Ready")],
            slots(2),
        ),
        (sizing.Shape(min_size=3, max_size=2), [member(0, "Assigned"), member(1, "Ready")], ()),
        # a failed one is replaced in the same pass, under another slot
        (sizing.Shape(min_size=1), [member(0, "Failed")], slots(1)),
        # ... but with maxSize its slot is still taken until it is gone
        (sizing.Shape(min_size=1, max_size=1), [member(0, "Failed")], ()),
        # a WarmPod being deleted is not supply, and holds its slot
        (sizing.Shape(min_size=1), [member(0, "Ready", deleting=True)], slots(1)),
        # minSize 0: nothing
        (sizing.Shape(min_size=0), [], ()),
    ],
)
def test_fill(shape: sizing.Shape, members: list[sizing.Member], creates: tuple[str, ...]) -> None:
    result = plan(shape, members)
    assert result.create == creates
    assert result.operation == (sizing.Operation.UP if creates else None)


def test_expected_creates_are_not_repeated_on_a_stale_view() -> None:
    expectations = sizing.Expectations().expecting(creates=slots(0, 1), now=NOW, timeout_seconds=30)
    result = plan(sizing.Shape(min_size=3), [], expectations=expectations)
    assert result.create == slots(2)
    assert result.counts.pending == 3


def test_expected_deletes_are_not_supply() -> None:
    expectations = sizing.Expectations().expecting(deletes=["uid-0"], now=NOW, timeout_seconds=30)
    result = plan(sizing.Shape(min_size=1), [member(0, "Ready")], expectations=expectations)
    assert result.create == slots(1)


def test_expectations_settle_when_observed_and_lapse() -> None:
    opened = sizing.Expectations().expecting(
        creates=["a", "b"], deletes=["u1", "u2"], now=ago(10), timeout_seconds=30
    )
    settled = opened.settled(observed_names={"a"}, observed_uids={"u1"}, now=NOW)
    assert dict(settled.creates) == {"b": ago(10) + datetime.timedelta(seconds=30)}
    assert set(settled.deletes) == {"u1"}
    lapsed = opened.settled(observed_names=set(), observed_uids={"u1", "u2"}, now=ago(-25))
    assert lapsed.is_empty


def test_rate_limit_creates_what_the_bucket_allows_and_requeues() -> None:
    result = plan(sizing.Shape(min_size=5), [], tokens=2)
    assert result.create == slots(0, 1)
    assert result.limited_by is sizing.Limit.RATE
    assert result.requeue_after_seconds == pytest.approx(1.0)
    assert result.counts.pending == 2


def test_token_bucket_refills_at_its_rate_up_to_capacity() -> None:
    empty = sizing.TokenBucket(capacity=5, rate_per_second=2.0, tokens=0.0, updated_at=NOW)
    granted, after = empty.take(10, now=NOW + datetime.timedelta(seconds=1.5))
    assert granted == 3
    assert after.tokens == pytest.approx(0.0)
    assert after.seconds_until_token(now=NOW + datetime.timedelta(seconds=1.5)) == 0.5
    assert empty.refilled(NOW + datetime.timedelta(hours=1)).tokens == 5
    # a clock going backwards adds nothing
    assert empty.refilled(ago(10)).tokens == 0


@pytest.mark.parametrize(
    ("assigned", "target", "min_size", "max_size", "wanted"),
    [
        (8, 80, 2, 0, 2),  # total 10 → 2 unassigned
        (8, 50, 2, 0, 8),  # total 16
        (0, 80, 2, 0, 2),
        (9, 80, 1, 0, 3),  # ceil(11.25)=12 → 3
        (8, 50, 2, 12, 4),  # capped by maxSize - assigned
        (12, 50, 2, 12, 0),
        (1, 100, 0, 0, 0),
    ],
)
def test_wanted_unassigned_with_autoscaling(
    assigned: int, target: int, min_size: int, max_size: int, wanted: int
) -> None:
    shape = sizing.Shape(
        min_size=min_size, max_size=max_size, autoscaling=True, target_utilization=target
    )
    assert sizing.wanted_unassigned(shape, assigned=assigned) == wanted


def test_autoscale_up_is_labelled_as_such() -> None:
    shape = sizing.Shape(min_size=1, max_size=10, autoscaling=True, target_utilization=50)
    members = [member(i, "Assigned") for i in range(3)] + [member(3, "Ready")]
    result = plan(shape, members)
    assert result.create == slots(4, 5)
    assert result.operation is sizing.Operation.AUTOSCALE_UP


def scale_down_case(delay: int, last: datetime.datetime | None) -> sizing.SizingPlan:
    shape = sizing.Shape(
        min_size=1,
        max_size=10,
        autoscaling=True,
        target_utilization=50,
        scale_down_delay_seconds=delay,
    )
    # ready ones created oldest first at slots 3, 1, 2
    members = [
        member(0, "Assigned"),
        member(1, "Ready", created_at=ago(50)),
        member(2, "Ready", created_at=ago(40)),
        member(3, "Ready", created_at=ago(60)),
    ]
    return plan(shape, members, last_scale_time=last)


def test_scale_down_removes_the_oldest_ready_after_the_delay() -> None:
    result = scale_down_case(300, ago(301))
    assert [d.name for d in result.delete] == list(slots(3, 1))
    assert {d.reason for d in result.delete} == {sizing.DeleteReason.SCALE_DOWN}
    assert result.operation is sizing.Operation.AUTOSCALE_DOWN
    assert result.counts.available == 1


def test_scale_down_waits_for_the_delay() -> None:
    result = scale_down_case(300, ago(100))
    assert result.delete == ()
    assert result.requeue_after_seconds == pytest.approx(200)


def test_scale_down_delay_zero_means_no_delay() -> None:
    assert len(scale_down_case(0, NOW).delete) == 2


def test_lowered_max_size_removes_at_once_even_within_the_delay() -> None:
    shape = sizing.Shape(
        min_size=0,
        max_size=2,
        autoscaling=True,
        target_utilization=50,
        scale_down_delay_seconds=300,
    )
    members = [member(0, "Assigned"), member(1, "Ready"), member(2, "Ready"), member(3, "Ready")]
    result = plan(shape, members, last_scale_time=NOW)
    assert len(result.delete) == 2
    assert {d.reason for d in result.delete} == {sizing.DeleteReason.OVER_MAX_SIZE}


def test_without_autoscaling_a_lowered_min_size_scales_down_at_once() -> None:
    result = plan(
        sizing.Shape(min_size=1), [member(0, "Ready"), member(1, "Ready")], last_scale_time=NOW
    )
    assert [d.name for d in result.delete] == list(slots(0))
    assert result.operation is sizing.Operation.DOWN


def test_ttl_expires_idle_ready_pods_and_replaces_them() -> None:
    members = [
        member(0, "Ready", idle_since=ago(3600)),
        member(1, "Ready", idle_since=ago(10)),
        member(2, "Pending"),
        member(3, "Assigned", idle_since=ago(99999)),
    ]
    result = plan(sizing.Shape(min_size=3, ttl_seconds=3600), members)
    assert [(d.name, d.reason) for d in result.delete] == [
        (slots(0)[0], sizing.DeleteReason.EXPIRED)
    ]
    assert result.create == slots(4)
    assert result.requeue_after_seconds == pytest.approx(3590)


def test_ttl_zero_never_expires() -> None:
    result = plan(
        sizing.Shape(min_size=1, ttl_seconds=0), [member(0, "Ready", idle_since=ago(1e7))]
    )
    assert result.delete == ()


def test_outdated_pending_and_ready_are_replaced_assigned_kept() -> None:
    members = [
        member(0, "Ready", outdated=True),
        member(1, "Pending", outdated=True),
        member(2, "Assigned", outdated=True),
    ]
    result = plan(sizing.Shape(min_size=2), members)
    assert {d.name for d in result.delete} == set(slots(0, 1))
    assert result.create == slots(3, 4)


def test_every_deletion_is_of_the_observed_version() -> None:
    # A stale view (the watch cache) must never delete a WarmPod claimed since: each deletion
    # carries the resourceVersion it was decided on, whatever its reason.
    members = [
        member(0, "Failed", resource_version="10"),
        member(1, "Ready", outdated=True, resource_version="11"),
        member(2, "Ready", idle_since=ago(7200), resource_version="12"),
        member(3, "Ready", resource_version="13"),
        member(4, "Ready", resource_version="14"),
    ]
    result = plan(sizing.Shape(min_size=0, max_size=1, ttl_seconds=3600), members)
    observed = {m.name: m.resource_version for m in members}
    assert {d.reason for d in result.delete} == {
        sizing.DeleteReason.POD_FAILED,
        sizing.DeleteReason.OUTDATED,
        sizing.DeleteReason.EXPIRED,
        sizing.DeleteReason.SCALE_DOWN,
    }
    assert all(d.resource_version == observed[d.name] for d in result.delete)


def test_a_failed_warm_pod_is_deleted_for_why_it_failed_whichever_pass_deletes_it() -> None:
    """The pool pass may find a WarmPod its preload failed before the preloader deletes it:
    it counts the preload's reason, not the pod's (CI met this race)."""
    members = [
        member(0, "Failed", failure=sizing.DeleteReason.PRELOAD_FAILED),
        member(1, "Failed"),
    ]
    result = plan(sizing.Shape(min_size=0), members)
    assert {d.name: d.reason for d in result.delete} == {
        members[0].name: sizing.DeleteReason.PRELOAD_FAILED,
        members[1].name: sizing.DeleteReason.POD_FAILED,
    }


def test_a_deletion_that_did_not_happen_is_no_longer_expected() -> None:
    open_expectations = sizing.Expectations().expecting(
        deletes=["uid-1", "uid-2"], now=NOW, timeout_seconds=60
    )
    assert set(open_expectations.forgetting_delete("uid-1").deletes) == {"uid-2"}


# -- properties -------------------------------------------------------------------------------

PHASES = st.sampled_from(["", "Pending", "Ready", "Assigned", "Failed", "Terminating"])


@st.composite
def pools(draw: st.DrawFn) -> tuple[sizing.Shape, list[sizing.Member]]:
    max_size = draw(st.integers(0, 12))
    min_size = draw(st.integers(0, max_size if max_size else 12))
    shape = sizing.Shape(
        min_size=min_size,
        max_size=max_size,
        ttl_seconds=draw(st.sampled_from([0, 60, 3600])),
        autoscaling=bool(max_size) and draw(st.booleans()),
        target_utilization=draw(st.integers(1, 100)),
        scale_down_delay_seconds=draw(st.sampled_from([0, 300])),
    )
    used = draw(st.lists(st.integers(0, 20), unique=True, max_size=14))
    members = [
        member(
            slot,
            draw(PHASES),
            deleting=draw(st.booleans()),
            idle_since=ago(draw(st.integers(0, 5000))),
        )
        for slot in used
    ]
    return shape, members


@settings(max_examples=300)
@given(pools(), st.integers(0, 100))
def test_never_exceeds_max_size_and_never_recreates_an_existing_name(
    case: tuple[sizing.Shape, list[sizing.Member]], tokens: int
) -> None:
    shape, members = case
    result = plan(shape, members, tokens=tokens)
    existing = {m.name for m in members}
    assert not set(result.create) & existing
    assert len(set(result.create)) == len(result.create)
    assert len(result.create) <= tokens
    if shape.max_size:
        # total after the pass: everything that exists plus what is created
        assert len(existing | set(result.create)) <= max(shape.max_size, len(existing))
        assert all(
            name in {names.warm_pod_name(POOL, slot=i) for i in range(shape.max_size)}
            for name in result.create
        )
    assert not (
        result.create
        and result.delete
        and result.operation in (sizing.Operation.DOWN, sizing.Operation.AUTOSCALE_DOWN)
    )
    deleted = {d.uid for d in result.delete}
    assigned = {m.uid for m in members if m.phase == "Assigned"}
    assert not deleted & assigned, "an Assigned WarmPod is never deleted by sizing"


@settings(max_examples=200)
@given(pools())
def test_two_replicas_with_the_same_view_create_the_same_names(
    case: tuple[sizing.Shape, list[sizing.Member]],
) -> None:
    shape, members = case
    assert plan(shape, members).create == plan(shape, list(reversed(members))).create


@settings(max_examples=200)
@given(pools())
def test_a_replica_that_has_not_seen_a_create_picks_that_same_name(
    case: tuple[sizing.Shape, list[sizing.Member]],
) -> None:
    """A stale replica (missing the newest create) can only collide, never add another."""
    shape, members = case
    first = plan(shape, members)
    if not first.create:
        return
    seen = [
        *members,
        *(sizing.Member(name=n, uid=f"new-{n}", phase="", created_at=NOW) for n in first.create),
    ]
    after = plan(shape, seen)
    stale = plan(shape, members)
    assert set(stale.create) <= set(first.create)
    assert not set(after.create) & set(first.create)


@settings(max_examples=200)
@given(pools())
def test_a_second_pass_on_the_result_is_quiet(
    case: tuple[sizing.Shape, list[sizing.Member]],
) -> None:
    """Apply the plan (creates appear Pending, deletes vanish): nothing more to create."""
    shape, members = case
    first = plan(shape, members)
    gone = {d.uid for d in first.delete}
    after = [m for m in members if m.uid not in gone] + [
        sizing.Member(name=n, uid=f"new-{n}", phase="Pending", created_at=NOW) for n in first.create
    ]
    second = plan(shape, after)
    if first.limited_by is None:
        assert second.create == ()


def test_expectations_say_when_the_first_one_lapses() -> None:
    now = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
    none = sizing.Expectations()
    assert none.seconds_to_lapse(now=now) is None
    open_ = none.expecting(creates=["p-0"], now=now, timeout_seconds=30).expecting(
        deletes=["uid-1"], now=now + datetime.timedelta(seconds=5), timeout_seconds=10
    )
    assert open_.seconds_to_lapse(now=now) == 15.0
    assert open_.seconds_to_lapse(now=now + datetime.timedelta(seconds=20)) == 0.0


def test_podless_refused_warm_pods_go_first_when_the_pool_shrinks() -> None:
    """WarmPods whose pod was refused (a quota) wait podless, retrying. A lowered minSize or
    maxSize removes them first: kept, they all got pods (above the new size) once the quota
    lifted. WarmPods merely starting are never removed for it."""
    refused = [member(i, "Pending", refused=True) for i in range(5)]
    emptied = plan(sizing.Shape(min_size=0), refused)
    assert sorted(d.name for d in emptied.delete) == sorted(m.name for m in refused)
    assert {d.reason for d in emptied.delete} == {sizing.DeleteReason.SCALE_DOWN}
    assert emptied.counts.pending == 0
    capped = plan(sizing.Shape(min_size=5, max_size=2), refused)
    assert [d.name for d in capped.delete] == [m.name for m in refused[:3]]  # oldest first
    assert {d.reason for d in capped.delete} == {sizing.DeleteReason.OVER_MAX_SIZE}
    assert capped.counts.pending == 2
    # Refused ones before Ready ones; starting ones stay.
    mixed = [member(0, "Ready"), member(1, "Pending", refused=True), member(2, "Pending")]
    shrunk = plan(sizing.Shape(min_size=1), mixed)
    assert [d.name for d in shrunk.delete] == [mixed[1].name, mixed[0].name]
