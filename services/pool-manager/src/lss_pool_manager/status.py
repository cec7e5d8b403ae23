"""The WarmPool's status from a sizing plan or a failure (pure: no I/O, ``now`` explicit).

Counts are those of the plan (after its creates and deletes): ``availablePods`` Ready,
``assignedPods`` claimed, ``pendingPods`` on their way. ``lastScaleTime`` moves only when a
scaling operation happened. One condition, ``Ready`` (Kubernetes conventions: the transition
time moves only when the status does):

==========================  ======  ================================================================
reason                      status  meaning
==========================  ======  ================================================================
Filled                      True    as many unassigned WarmPods as wanted are Ready
Filling                     False   WarmPods are being created or started
RateLimited                 False   creation is paced by the token bucket (refilling)
MaxSizeReached              False   maxSize keeps the pool below minSize (or autoscaling) unassigned
<resolution reason>         False   the runtime or profile cannot be used (RuntimeNotFound, ...)
PreloadFailing              False   WarmPods keep failing a preload script (one at a time, backoff)
WarmPodsFailing             False   WarmPods' pods keep failing or not becoming Ready (one at a
                                    time, backoff; the last reason and message in the condition)
PreloadLanguageUnsupported  False   a preload script's language has no interpreter
DeletionBlocked             False   deleting, waiting for Assigned WarmPods to be released
Deleting                    False   deleting its WarmPods and pods
==========================  ======  ================================================================

A pool that lists ``spec.preloadPackages`` also gets ``PackagesPreloaded=False`` with reason
``Unsupported``: packages are not installed (a warm pod has no egress to reach a package
index, and on the local platform an exec runs on the host); the condition says so instead of
ignoring the field. It goes away when the list is emptied.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable

import msgspec

from lss_common.logic import conditions
from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import sizing

READY_CONDITION = "Ready"
PACKAGES_CONDITION = "PackagesPreloaded"
PACKAGES_UNSUPPORTED = "Unsupported"


class Reason(enum.StrEnum):
    """Reasons of the pool's ``Ready`` condition set by the pool manager itself."""

    FILLED = "Filled"
    FILLING = "Filling"
    RATE_LIMITED = "RateLimited"
    MAX_SIZE_REACHED = "MaxSizeReached"
    PRELOAD_FAILING = "PreloadFailing"
    PODS_FAILING = "WarmPodsFailing"
    DELETION_BLOCKED = "DeletionBlocked"
    PODS_REFUSED = "PodsRefused"
    DELETING = "Deleting"
    PREVIOUS_POOL_CLEANUP = "PreviousPoolCleanup"
    NAME_CONFLICT = "NameConflict"


def _ready_condition(
    plan: sizing.SizingPlan,
    *,
    preload: warmpool_model.PreloadStatus | None = None,
    pod_failures: warmpool_model.PodFailures | None = None,
    refusal: str | None = None,
) -> tuple[bool, Reason, str]:
    counts = plan.counts
    if refusal is not None:
        return (
            False,
            Reason.PODS_REFUSED,
            f"{counts.available} of {plan.wanted_unassigned} Ready; the API server refuses "
            f"to create warm pods (tried again periodically): {refusal}",
        )
    if plan.limited_by is sizing.Limit.MAX_SIZE:
        return (
            False,
            Reason.MAX_SIZE_REACHED,
            f"wants {plan.wanted_unassigned} unassigned WarmPods; maxSize allows "
            f"{counts.available + counts.pending} beside {counts.assigned} assigned",
        )
    if counts.available >= plan.wanted_unassigned and counts.pending == 0:
        return True, Reason.FILLED, f"{counts.available} Ready, {counts.assigned} assigned"
    failures = preload.consecutive_failures if preload is not None else None
    if failures:
        return (
            False,
            Reason.PRELOAD_FAILING,
            f"{failures} WarmPods in a row failed a preload script; new ones are created one "
            f"at a time, after a growing delay, until one succeeds. Last: "
            f"{preload.last_failure_message if preload is not None else ''}",
        )
    if pod_failures is not None and pod_failures.consecutive_failures:
        return (
            False,
            Reason.PODS_FAILING,
            f"{pod_failures.consecutive_failures} WarmPods in a row failed "
            f"({pod_failures.last_failure_reason}); new ones are created one at a time, after "
            f"a growing delay, until one is Ready. Last: {pod_failures.last_failure_message}",
        )
    if plan.limited_by is sizing.Limit.RATE:
        return (
            False,
            Reason.RATE_LIMITED,
            f"{counts.available} of {plan.wanted_unassigned} Ready; creations are paced",
        )
    return (
        False,
        Reason.FILLING,
        f"{counts.available} of {plan.wanted_unassigned} Ready, {counts.pending} pending",
    )


def sized_status(
    pool: warmpool_model.WarmPool,
    *,
    plan: sizing.SizingPlan,
    now: datetime.datetime,
    refusal: str | None = None,
    pod_failures: warmpool_model.PodFailures | None = None,
) -> warmpool_model.WarmPoolStatus:
    """The status after a sizing pass; ``refusal``: the API server's message for a warm pod
    it refused to create (it outranks every other reason: it needs an operator);
    ``pod_failures``: the pool's failure record as it stands after this pass (None: clear)."""
    ready, reason, message = _ready_condition(
        plan,
        preload=warmpool_model.status_of(pool).preload,
        pod_failures=pod_failures,
        refusal=refusal,
    )
    current = warmpool_model.status_of(pool)
    sized = _status(
        pool,
        available=plan.counts.available,
        assigned=plan.counts.assigned,
        pending=plan.counts.pending,
        last_scale_time=(
            meta.format_timestamp(now) if plan.operation is not None else current.last_scale_time
        ),
        ready=ready,
        reason=str(reason),
        message=message,
        now=now,
    )
    return msgspec.structs.replace(sized, pod_failures=pod_failures)


def counts_of(warm_pods: Iterable[warmpod_model.WarmPod]) -> sizing.Counts:
    """The pool's WarmPods as counted by phase (those being deleted are gone): for a pool
    being deleted, whose passes size nothing."""
    phases = [
        warmpod_model.status_of(wp).phase or ""
        for wp in warm_pods
        if not wp.metadata.deletion_timestamp
    ]
    ready = sum(1 for phase in phases if phase == warmpod_model.Phase.READY)
    assigned = sum(1 for phase in phases if phase == warmpod_model.Phase.ASSIGNED)
    pending = sum(1 for phase in phases if phase in ("", warmpod_model.Phase.PENDING))
    return sizing.Counts(available=ready, assigned=assigned, pending=pending)


def failed_status(
    pool: warmpool_model.WarmPool,
    *,
    reason: str,
    message: str,
    now: datetime.datetime,
    counts: sizing.Counts | None = None,
) -> warmpool_model.WarmPoolStatus:
    """The status of a pool that cannot be filled (or is being deleted): the counts given,
    else those it had."""
    current = warmpool_model.status_of(pool)
    if counts is None:
        counts = sizing.Counts(
            available=current.available_pods or 0,
            assigned=current.assigned_pods or 0,
            pending=current.pending_pods or 0,
        )
    return _status(
        pool,
        available=counts.available,
        assigned=counts.assigned,
        pending=counts.pending,
        last_scale_time=current.last_scale_time,
        ready=False,
        reason=reason,
        message=message,
        now=now,
    )


def _status(
    pool: warmpool_model.WarmPool,
    *,
    available: int,
    assigned: int,
    pending: int,
    last_scale_time: str | None,
    ready: bool,
    reason: str,
    message: str,
    now: datetime.datetime,
) -> warmpool_model.WarmPoolStatus:
    current = warmpool_model.status_of(pool)
    found = conditions.set_condition(
        current.conditions,
        condition_type=READY_CONDITION,
        status="True" if ready else "False",
        reason=reason,
        message=message,
        now=now,
        observed_generation=pool.metadata.generation,
    )
    packages = pool.spec.preload_packages or []
    if packages:
        found = conditions.set_condition(
            found,
            condition_type=PACKAGES_CONDITION,
            status="False",
            reason=PACKAGES_UNSUPPORTED,
            message=f"spec.preloadPackages ({', '.join(packages[:5])}"
            f"{', ...' if len(packages) > 5 else ''}) are not installed: warm pods have no "
            "egress to a package index. Build them into the RuntimeEnvironment's image, or "
            "install them from spec.preloadScripts against a source the pods can reach.",
            now=now,
            observed_generation=pool.metadata.generation,
        )
    else:
        found = conditions.remove_condition(found, condition_type=PACKAGES_CONDITION)
    return msgspec.structs.replace(
        current,
        available_pods=available,
        assigned_pods=assigned,
        pending_pods=pending,
        last_scale_time=last_scale_time,
        observed_generation=pool.metadata.generation,
        conditions=found,
    )


def last_scale_time(pool: warmpool_model.WarmPool) -> datetime.datetime | None:
    """The pool's ``status.lastScaleTime``, parsed."""
    text = warmpool_model.status_of(pool).last_scale_time
    return meta.parse_timestamp(text) if text else None


def shape_of(pool: warmpool_model.WarmPool) -> sizing.Shape:
    """The sizing shape of a pool, with the schema's defaults for unset fields."""
    spec = pool.spec
    auto = spec.auto_scaling
    return sizing.Shape(
        min_size=max(0, spec.min_size),
        max_size=max(0, spec.max_size or 0),
        ttl_seconds=max(0, spec.ttl if spec.ttl is not None else 3600),
        autoscaling=bool(auto and auto.enabled),
        target_utilization=(auto.target_utilization if auto and auto.target_utilization else 80),
        scale_down_delay_seconds=(
            auto.scale_down_delay if auto and auto.scale_down_delay is not None else 300
        ),
    )
