"""A WarmPod's phase from what its pod is doing (pure: no I/O, ``now`` explicit).

Phases (``warmpod.Phase``), and who moves them:

- *(no status)* → ``Pending``: the pool manager creates the WarmPod, then its pod
  (``names.pod_name``), and records ``podName`` with phase ``Pending`` and the pod as the
  API server stored it (``podUID``, ``podSpecHash``: ``lss_common.logic.pod_records``), from
  the create's answer. Only the process that created the pod can record it: a pass that finds
  the pod unrecorded waits ``RECORD_GRACE_SECONDS`` for that record, then fails the WarmPod
  (``PodUnverified``: made by someone else, or its creator stopped in between).
- A pod that is not the recorded one (another UID: ``PodConflict``) or whose spec changed
  since (``PodModified``: a new image, an ephemeral container) fails the WarmPod, whatever
  its phase before: it is never Ready, and a claim would refuse it too.
- ``Pending`` → ``Ready`` only when the pod is Ready **and** has an IP; ``lastHeartbeat`` and
  the ``Ready`` condition are set. While the pod stays Ready the heartbeat is refreshed every
  ``heartbeat_interval_seconds`` (0: only on transitions). ``Ready`` → ``Pending`` if the pod
  stops being Ready (it is not claimable then).
- ``Pending``/``Ready`` → ``Failed`` when the pod is gone, being deleted, failed, crash-looping,
  cannot pull its image, or is still not Ready ``ready_timeout_seconds`` after the pod was
  created (after it stopped being Ready, for a WarmPod that was Ready: a long-lived one is
  not failed for a readiness blip). A Failed (or Terminating) WarmPod is deleted in the same
  pass; the pool refills.
- ``Assigned`` belongs to the claim (sandbox reconciler) and the recycler: never touched here.

The TTL clock (``idle_since``) is when the WarmPod last became Ready, read from the ``Ready``
condition's ``lastTransitionTime``; the heartbeat is a liveness record only. (The seed used
``lastHeartbeat`` for both, so a real heartbeat would have made its TTL never expire.)
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from lss_common.logic import conditions, pod_records
from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_pool_manager import names, podspec

Phase = warmpod_model.Phase
READY_CONDITION = "Ready"
#: How long a pass waits for the pod's creator to record it (normally the next round trip).
RECORD_GRACE_SECONDS: Final = 30.0
#: How often it looks again meanwhile: the record's own hint may be skipped as an own write.
RECORD_POLL_SECONDS: Final = 0.5


class Reason(enum.StrEnum):
    """Reasons of the WarmPod's ``Ready`` condition."""

    POD_STARTING = "PodStarting"
    POD_READY = "PodReady"
    POD_NOT_READY = "PodNotReady"
    POD_GONE = "PodGone"
    POD_FAILED = "PodFailed"
    NOT_READY_IN_TIME = "NotReadyInTime"
    POD_CONFLICT = "PodConflict"
    POD_REFUSED = "PodRefused"
    POD_UNVERIFIED = "PodUnverified"
    POD_MODIFIED = "PodModified"


#: Reasons of a WarmPod failed because its pod is not (or no longer) the one it recorded.
UNVERIFIED_REASONS: Final = frozenset(
    {Reason.POD_CONFLICT.value, Reason.POD_UNVERIFIED.value, Reason.POD_MODIFIED.value}
)


@dataclasses.dataclass(frozen=True, slots=True)
class WarmPodPlan:
    """What to do to one WarmPod now."""

    create_pod: bool = False
    status: warmpod_model.WarmPodStatus | None = None
    """The new status to write (None: unchanged)."""
    delete: bool = False
    requeue_after_seconds: float | None = None


def idle_since(obj: warmpod_model.WarmPod) -> datetime.datetime | None:
    """When the WarmPod last became Ready (or was assigned, if later); None if never Ready."""
    status = warmpod_model.status_of(obj)
    ready = conditions.find_condition(status.conditions, condition_type=READY_CONDITION)
    moments = [
        meta.parse_timestamp(text)
        for text in (
            ready.last_transition_time if ready and ready.status == "True" else None,
            status.assigned_at,
        )
        if text
    ]
    return max(moments) if moments else None


def has_ip(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP") or status.get("podIPs"))


def recorded(
    status: warmpod_model.WarmPodStatus, *, pod: Mapping[str, Any]
) -> warmpod_model.WarmPodStatus:
    """``status`` with the record of ``pod`` as the create's answer stored it."""
    return msgspec.structs.replace(
        status,
        pod_uid=pod_records.uid_of(pod),
        pod_spec_hash=pod_records.stored_spec_hash(pod),
    )


def created_status(
    obj: warmpod_model.WarmPod, *, pod: Mapping[str, Any], now: datetime.datetime
) -> warmpod_model.WarmPodStatus:
    """The status of a WarmPod whose pod this process has just created (``pod``: the create's
    answer): Pending, with the pod's record."""
    return recorded(_starting(obj, now=now), pod=pod)


def _starting(obj: warmpod_model.WarmPod, *, now: datetime.datetime) -> warmpod_model.WarmPodStatus:
    pod_name = names.pod_name(obj.metadata.name or "", uid=obj.metadata.uid or "")
    return _with(
        obj,
        msgspec.structs.replace(
            warmpod_model.status_of(obj), pod_name=pod_name, pod_namespace=obj.metadata.namespace
        ),
        phase=Phase.PENDING,
        ready=False,
        reason=Reason.POD_STARTING,
        message=f"pod {pod_name} is being created",
        now=now,
    )


def is_own_pod(pod: Mapping[str, Any], *, warm_pod_uid: str) -> bool:
    """Whether the pod's controller is this WarmPod (or a Sandbox that claimed it)."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("uid") == warm_pod_uid:
            return True
    return False


def _with(
    obj: warmpod_model.WarmPod,
    status: warmpod_model.WarmPodStatus,
    *,
    phase: str,
    ready: bool,
    reason: Reason | str,
    message: str,
    now: datetime.datetime,
    heartbeat: bool = False,
) -> warmpod_model.WarmPodStatus:
    updated = conditions.set_condition(
        status.conditions,
        condition_type=READY_CONDITION,
        status="True" if ready else "False",
        reason=str(reason),
        message=message,
        now=now,
        observed_generation=obj.metadata.generation,
    )
    return msgspec.structs.replace(
        status,
        phase=phase,
        conditions=updated,
        observed_generation=obj.metadata.generation,
        last_heartbeat=meta.format_timestamp(now) if heartbeat else status.last_heartbeat,
    )


def refused_status(
    obj: warmpod_model.WarmPod, *, message: str, now: datetime.datetime
) -> warmpod_model.WarmPodStatus:
    """The status of a WarmPod whose pod (or Service) the API server refused to create:
    Pending, with no pod name (the pod does not exist, so the next pass creates it again
    rather than finding it gone)."""
    status = msgspec.structs.replace(
        warmpod_model.status_of(obj), pod_name=None, pod_namespace=None
    )
    return _with(
        obj,
        status,
        phase=Phase.PENDING,
        ready=False,
        reason=Reason.POD_REFUSED,
        message=message,
        now=now,
    )


def refusal_of(obj: warmpod_model.WarmPod) -> str | None:
    """The API server's message when the WarmPod's pod was refused (None: it was not)."""
    for condition in warmpod_model.status_of(obj).conditions or ():
        if condition.type == READY_CONDITION and condition.reason == Reason.POD_REFUSED:
            return condition.message or str(Reason.POD_REFUSED)
    return None


def needs_pod(obj: warmpod_model.WarmPod) -> bool:
    """Whether :func:`plan_warm_pod` looks at the pod: not for a WarmPod being deleted,
    Assigned (its pod is its sandbox's now) or Failed/Terminating (it is deleted either way).
    A claim's hint then costs the pool manager one read instead of two."""
    if obj.metadata.deletion_timestamp:
        return False
    phase = warmpod_model.status_of(obj).phase or ""
    return phase not in (Phase.ASSIGNED, Phase.FAILED, Phase.TERMINATING)


def _was_ready(status: warmpod_model.WarmPodStatus) -> bool:
    """Whether the WarmPod is Pending because its pod stopped being Ready (not starting)."""
    ready = conditions.find_condition(status.conditions, condition_type=READY_CONDITION)
    return ready is not None and ready.reason == Reason.POD_NOT_READY


def _not_ready_since(
    obj: warmpod_model.WarmPod, *, pod: Mapping[str, Any], now: datetime.datetime
) -> tuple[datetime.datetime, str]:
    """Since when the pod has not been Ready, and since what: its creation, or, for a
    WarmPod that was Ready, the moment it stopped being Ready (a Ready WarmPod of an hour is
    not failed for a readiness blip, only for one lasting the ready timeout)."""
    status = warmpod_model.status_of(obj)
    if status.phase == Phase.READY:
        return now, "it stopped being Ready"
    ready = conditions.find_condition(status.conditions, condition_type=READY_CONDITION)
    if ready is not None and ready.reason == Reason.POD_NOT_READY and ready.last_transition_time:
        return meta.parse_timestamp(ready.last_transition_time), "it stopped being Ready"
    created = (pod.get("metadata") or {}).get(
        "creationTimestamp"
    ) or obj.metadata.creation_timestamp
    return (meta.parse_timestamp(created) if created else now), "creation"


def _created(pod: Mapping[str, Any], *, now: datetime.datetime) -> datetime.datetime:
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    return meta.parse_timestamp(created) if created else now


def plan_warm_pod(
    obj: warmpod_model.WarmPod,
    *,
    pod: Mapping[str, Any] | None,
    now: datetime.datetime,
    heartbeat_interval_seconds: float,
    ready_timeout_seconds: float,
) -> WarmPodPlan:
    """The next step for ``obj`` given its observed pod (None: absent)."""
    metadata = obj.metadata
    if metadata.deletion_timestamp or not metadata.name or not metadata.uid:
        return WarmPodPlan()
    status = warmpod_model.status_of(obj)
    phase = status.phase or ""
    if phase == Phase.ASSIGNED:
        return WarmPodPlan()
    if phase in (Phase.FAILED, Phase.TERMINATING):
        return WarmPodPlan(delete=True)
    pod_name = names.pod_name(metadata.name, uid=metadata.uid)

    def fail(reason: Reason | str, message: str) -> WarmPodPlan:
        new = _with(
            obj, status, phase=Phase.FAILED, ready=False, reason=reason, message=message, now=now
        )
        return WarmPodPlan(status=new, delete=True)

    if pod is None:
        if status.pod_name:
            return fail(Reason.POD_GONE, f"pod {status.pod_name} no longer exists")
        return WarmPodPlan(create_pod=True, status=_starting(obj, now=now))
    if not is_own_pod(pod, warm_pod_uid=metadata.uid):
        return fail(Reason.POD_CONFLICT, f"pod {pod_name} exists but does not belong to it")
    if not status.pod_uid or not status.pod_spec_hash:
        age = (now - _created(pod, now=now)).total_seconds()
        if age < RECORD_GRACE_SECONDS:
            # Its creator records it right after its create: nothing to say before that.
            return WarmPodPlan(
                requeue_after_seconds=min(RECORD_POLL_SECONDS, RECORD_GRACE_SECONDS - age)
            )
        return fail(
            Reason.POD_UNVERIFIED,
            f"pod {pod_name} was not recorded by its creator within "
            f"{int(RECORD_GRACE_SECONDS)} s (made by someone else, or the pool manager "
            "stopped in between)",
        )
    if pod_records.uid_of(pod) != status.pod_uid:
        return fail(
            Reason.POD_CONFLICT,
            f"pod {pod_name} is not the pod created for it (UID "
            f"{pod_records.uid_of(pod) or '?'}, recorded {status.pod_uid})",
        )
    if pod_records.stored_spec_hash(pod) != status.pod_spec_hash:
        return fail(
            Reason.POD_MODIFIED,
            f"pod {pod_name}'s spec changed since it was created (its image, containers or "
            "resources): not the pod the pool built",
        )
    if not status.pod_name:
        status = msgspec.structs.replace(
            status, pod_name=pod_name, pod_namespace=metadata.namespace
        )
    verdict = podspec.classify_pod(
        dict(pod), now=now, unschedulable_deadline_seconds=ready_timeout_seconds
    )
    if verdict.state is podspec.PodState.DELETING:
        # Evicted, preempted, a node drained, deleted by hand: gone, not failed (a pool's
        # failure backoff counts PodFailed only; a drain is no reason to slow its refill).
        return fail(Reason.POD_GONE, verdict.message)
    if verdict.state is podspec.PodState.FAILED:
        return fail(Reason.POD_FAILED, verdict.message)
    if verdict.state is podspec.PodState.READY and has_ip(pod):
        last = status.last_heartbeat
        due = (
            phase != Phase.READY
            or last is None
            or (
                heartbeat_interval_seconds > 0
                and (now - meta.parse_timestamp(last)).total_seconds() >= heartbeat_interval_seconds
            )
        )
        new = _with(
            obj,
            status,
            phase=Phase.READY,
            ready=True,
            reason=Reason.POD_READY,
            message=f"pod {pod_name} is Ready",
            now=now,
            heartbeat=due,
        )
        return WarmPodPlan(
            status=new if new != warmpod_model.status_of(obj) else None,
            requeue_after_seconds=heartbeat_interval_seconds or None,
        )
    since, what = _not_ready_since(obj, pod=pod, now=now)
    age = (now - since).total_seconds()
    if age >= ready_timeout_seconds:
        return fail(
            Reason.NOT_READY_IN_TIME,
            f"pod {pod_name} not Ready {int(age)} s after {what}: {verdict.message}",
        )
    new = _with(
        obj,
        status,
        phase=Phase.PENDING,
        ready=False,
        # Still PodNotReady on the passes after the first: that reason is what keeps the
        # moment it stopped being Ready (_not_ready_since); PodStarting would date the
        # blip from the pod's creation and fail a WarmPod of an hour at the next pass.
        reason=Reason.POD_NOT_READY
        if phase == Phase.READY or _was_ready(status)
        else Reason.POD_STARTING,
        message=verdict.message,
        now=now,
    )
    return WarmPodPlan(
        status=new if new != warmpod_model.status_of(obj) else None,
        requeue_after_seconds=ready_timeout_seconds - age,
    )
