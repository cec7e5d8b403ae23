"""A pool whose WarmPods keep failing creates them one at a time, after a growing delay (pure).

A WarmPod whose pod fails (an image that cannot be pulled, a crash loop, a failed pod) or is
not Ready within the ready timeout is failed and deleted, and the pool replaces it. Without a
brake, a pool with a wrong image (or a registry outage) created, failed and deleted a WarmPod,
a pod and a Service every few seconds for ever, each new pod pulling again with a fresh
kubelet backoff, and said only ``Filling``: the reason lived on WarmPods deleted at once.

The WarmPod's pass records each such failure on its pool (``status.podFailures``: a count in
a row, when, why) before deleting it; the pool pass then allows one creation at a time, each
after ``backoff_seconds * 2^(failures-1)`` (capped) from the last failure, and says so in its
``Ready`` condition (``WarmPodsFailing``, with the last reason and message). The record is
cleared by the pool pass once a WarmPod created after the last failure is Ready (or claimed
since). Same shape and arithmetic as the preload backoff (``preload.creation_allowance``); a
pool under both gets the stricter allowance.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import lifecycle, preload, sizing

#: The WarmPod failures that count (not a pod deleted by hand, a name conflict, a refusal).
#: A pod changed after its creation counts: when something in the platform does it to every
#: pod (an in-place resize, a field an upgraded API server defaults), the pool would
#: otherwise re-create its pods at full rate for ever.
COUNTED: frozenset[str] = frozenset(
    {
        lifecycle.Reason.POD_FAILED.value,
        lifecycle.Reason.NOT_READY_IN_TIME.value,
        lifecycle.Reason.POD_MODIFIED.value,
        lifecycle.Reason.POD_UNVERIFIED.value,
    }
)


def counts(status: warmpod_model.WarmPodStatus | None) -> tuple[str, str] | None:
    """(reason, message) of a failed WarmPod status that counts as a pool failure."""
    if status is None or status.phase != warmpod_model.Phase.FAILED:
        return None
    for condition in status.conditions or ():
        if condition.type == lifecycle.READY_CONDITION and condition.reason in COUNTED:
            return condition.reason, condition.message or ""
    return None


def recorded(
    record: warmpool_model.PodFailures | None,
    *,
    warm_pod_uid: str,
    reason: str,
    message: str,
    now: datetime.datetime,
) -> warmpool_model.PodFailures:
    """The pool's record after one more failure; unchanged when that WarmPod's failure is
    the last one counted (a pass retried after a conflict, another replica's pass on the
    same failure: counted twice, it doubled the delay)."""
    if record is not None and warm_pod_uid and record.last_failed_warm_pod_uid == warm_pod_uid:
        return record
    failures = (record.consecutive_failures or 0) if record is not None else 0
    return warmpool_model.PodFailures(
        consecutive_failures=failures + 1,
        last_failure_time=meta.format_timestamp(now),
        last_failure_reason=reason,
        last_failure_message=message[:4096],
        last_failed_warm_pod_uid=warm_pod_uid or None,
    )


def is_cleared(
    record: warmpool_model.PodFailures | None, *, members: Sequence[sizing.Member]
) -> bool:
    """Whether a WarmPod created after the last failure is Ready (or was claimed): the pool
    works again."""
    if record is None or not record.consecutive_failures:
        return False
    if not record.last_failure_time:
        return True
    last = meta.parse_timestamp(record.last_failure_time)
    # Both times are to the second: a WarmPod created in the second of the failure counts
    # as after it (else a pool whose first good WarmPod came that quickly kept its record).
    return any(
        not member.deleting
        and member.phase in (warmpod_model.Phase.READY, warmpod_model.Phase.ASSIGNED)
        and member.created_at >= last
        for member in members
    )


def allowance(
    record: warmpool_model.PodFailures | None,
    *,
    members: Sequence[sizing.Member],
    now: datetime.datetime,
    base_seconds: float,
    max_seconds: float,
    in_flight: int = 0,
) -> preload.Allowance:
    """The creations the failures allow now (see the module docstring)."""
    as_preload = (
        None
        if record is None
        else warmpool_model.PreloadStatus(
            consecutive_failures=record.consecutive_failures,
            last_failure_time=record.last_failure_time,
        )
    )
    return preload.creation_allowance(
        as_preload,
        members=members,
        now=now,
        base_seconds=base_seconds,
        max_seconds=max_seconds,
        in_flight=in_flight,
    )


def stricter(first: preload.Allowance, second: preload.Allowance) -> preload.Allowance:
    """The allowance that permits less (the later retry when both wait)."""
    limits = [a.max_creates for a in (first, second) if a.max_creates is not None]
    if not limits:
        return preload.Allowance(max_creates=None)
    retries = [
        a.retry_after_seconds
        for a in (first, second)
        if a.retry_after_seconds is not None and a.max_creates == min(limits)
    ]
    return preload.Allowance(
        max_creates=min(limits), retry_after_seconds=max(retries) if retries else None
    )
