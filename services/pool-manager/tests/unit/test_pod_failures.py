"""``pod_failures``: which WarmPod failures count, the pool's record, its backoff (one at a
time, a growing delay), when it clears, and the ``WarmPodsFailing`` condition."""

from __future__ import annotations

import datetime

from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import lifecycle, pod_failures, preload, sizing

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def failed(reason: str) -> warmpod_model.WarmPodStatus:
    return warmpod_model.WarmPodStatus(
        phase=warmpod_model.Phase.FAILED,
        conditions=[
            meta.Condition(
                type=lifecycle.READY_CONDITION,
                status="False",
                reason=reason,
                message="ImagePullBackOff: pull failed",
                last_transition_time=meta.format_timestamp(NOW),
            )
        ],
    )


def member(phase: str, *, created: datetime.datetime) -> sizing.Member:
    return sizing.Member(name="p", uid=f"u-{phase}-{created}", phase=phase, created_at=created)


def test_only_the_pods_own_failures_count() -> None:
    assert pod_failures.counts(failed("PodFailed")) == (
        "PodFailed",
        "ImagePullBackOff: pull failed",
    )
    assert pod_failures.counts(failed("NotReadyInTime")) is not None
    # Deleted by hand, a name taken by someone else, a refusal: not the pool's image's fault.
    for reason in ("PodGone", "PodConflict", "PodRefused"):
        assert pod_failures.counts(failed(reason)) is None
    assert pod_failures.counts(warmpod_model.WarmPodStatus(phase="Ready")) is None
    assert pod_failures.counts(None) is None


def test_the_record_counts_in_a_row_each_warm_pod_once() -> None:
    first = pod_failures.recorded(
        None, warm_pod_uid="a", reason="PodFailed", message="m1", now=ago(10)
    )
    second = pod_failures.recorded(
        first, warm_pod_uid="b", reason="NotReadyInTime", message="m2", now=NOW
    )
    assert second == warmpool_model.PodFailures(
        consecutive_failures=2,
        last_failure_time=meta.format_timestamp(NOW),
        last_failure_reason="NotReadyInTime",
        last_failure_message="m2",
        last_failed_warm_pod_uid="b",
    )
    # The same WarmPod's failure seen again (a retried pass, another replica): not counted.
    again = pod_failures.recorded(
        second, warm_pod_uid="b", reason="NotReadyInTime", message="m2", now=NOW
    )
    assert again is second


def test_one_at_a_time_after_a_growing_delay() -> None:
    record = warmpool_model.PodFailures(
        consecutive_failures=3, last_failure_time=meta.format_timestamp(ago(10))
    )

    def allowance(members: list[sizing.Member]) -> preload.Allowance:
        return pod_failures.allowance(
            record, members=members, now=NOW, base_seconds=5, max_seconds=300
        )

    # 5 * 2^2 = 20 s from the failure: 10 s to go.
    assert allowance([]) == preload.Allowance(max_creates=0, retry_after_seconds=10.0)
    # A probe on its way: nothing more until its outcome.
    assert allowance([member("Pending", created=NOW)]).max_creates == 0
    later = pod_failures.allowance(
        record,
        members=[],
        now=NOW + datetime.timedelta(seconds=11),
        base_seconds=5,
        max_seconds=300,
    )
    assert later == preload.Allowance(max_creates=1)
    assert pod_failures.allowance(
        None, members=[], now=NOW, base_seconds=5, max_seconds=300
    ) == preload.Allowance(max_creates=None)


def test_cleared_by_a_warm_pod_created_after_the_last_failure_that_works() -> None:
    record = warmpool_model.PodFailures(
        consecutive_failures=2, last_failure_time=meta.format_timestamp(ago(30))
    )
    assert not pod_failures.is_cleared(record, members=[member("Ready", created=ago(60))])
    assert not pod_failures.is_cleared(record, members=[member("Pending", created=ago(5))])
    assert pod_failures.is_cleared(record, members=[member("Ready", created=ago(5))])
    assert pod_failures.is_cleared(record, members=[member("Ready", created=ago(30))])
    assert pod_failures.is_cleared(record, members=[member("Assigned", created=ago(5))])
    assert not pod_failures.is_cleared(None, members=[member("Ready", created=ago(5))])


def test_the_stricter_allowance_wins() -> None:
    free = preload.Allowance(max_creates=None)
    one = preload.Allowance(max_creates=1)
    wait = preload.Allowance(max_creates=0, retry_after_seconds=7.0)
    longer = preload.Allowance(max_creates=0, retry_after_seconds=9.0)
    assert pod_failures.stricter(free, free) == free
    assert pod_failures.stricter(free, one) == one
    assert pod_failures.stricter(one, wait) == wait
    assert pod_failures.stricter(wait, longer) == longer
