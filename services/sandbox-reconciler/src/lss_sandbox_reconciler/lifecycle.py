"""Sandbox phases, lifetime arithmetic and what an observed pod means for its sandbox (pure).

Phases (``sandbox.Phase``): ``Pending`` (nothing built yet) → ``Creating`` (children being
created, pod not Ready) → ``Running`` (pod Ready; the lifetime ``spec.timeout`` counts from
the first time) → ``Terminated`` (lifetime over, reason ``Expired``). ``Terminating`` while
the Sandbox is being deleted. ``Failed`` when it cannot run, with a reason saying what to
fix. ``Terminated`` and ``Failed`` are terminal, as a Pod's are: their children are released
and nothing is re-created; fix the spec and create a new Sandbox.

A pod is judged as follows (``classify_pod``): phase Failed or Succeeded, or a container in
CrashLoopBackOff → ``PodFailed``; a container waiting on ImagePullBackOff, InvalidImageName
or ErrImageNeverPull → ``ImagePullBackOff`` (a single ErrImagePull is not final: the kubelet
retries and reports ImagePullBackOff when it fails again); unschedulable for longer than the
configured deadline since the pod's creation → ``Unschedulable``; Ready → running.

No I/O; ``now`` is an argument. Pods are the API server's JSON (dicts).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from typing import Any, Final

from lss_common.logic import conditions as conditions_logic
from lss_common.models import meta
from lss_common.models import sandbox as sandbox_model

Phase = sandbox_model.Phase
TERMINAL_PHASES: Final = frozenset({Phase.TERMINATED, Phase.FAILED})


class ConditionType(enum.StrEnum):
    """The Sandbox's condition types (DESIGN §5)."""

    READY = "Ready"
    POD_SCHEDULED = "PodScheduled"
    RUNTIME_RESOLVED = "RuntimeResolved"
    PROFILE_RESOLVED = "ProfileResolved"
    NETWORK_READY = "NetworkReady"
    CHILDREN_RELEASED = "ChildrenReleased"
    """On an ended (Failed, Terminated) sandbox only: False while a child's delete fails,
    True once every child is released. Ready keeps the reason it ended for."""


class Reason(enum.StrEnum):
    """Condition reasons set by the lifecycle (resolution and merge have their own)."""

    RESOLVED = "Resolved"
    CREATING = "Creating"
    POD_READY = "PodReady"
    POD_NOT_READY = "PodNotReady"
    POD_PENDING = "PodPending"
    SCHEDULED = "Scheduled"
    UNSCHEDULABLE = "Unschedulable"
    POD_FAILED = "PodFailed"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    EXPIRED = "Expired"
    TERMINATING = "Terminating"
    RELEASED = "Released"
    POLICIES_APPLIED = "PoliciesApplied"
    EGRESS_UNRESOLVED = "EgressUnresolved"
    NAME_CONFLICT = "NameConflict"


PROGRESS_REASONS: Final = frozenset(
    {
        Reason.RESOLVED,
        Reason.CREATING,
        Reason.POD_PENDING,
        Reason.SCHEDULED,
        Reason.POD_NOT_READY,
        Reason.POD_READY,
    }
)
"""Ready reasons of a sandbox on its way to running (or running). Any other reason on a
Ready=False condition is a problem being reported: a refused write, a conflict, an
unresolved egress domain, an unschedulable pod."""


def reports_problem(status: sandbox_model.SandboxStatus) -> bool:
    """Whether the status's Ready condition is False for another reason than progress."""
    ready = next((c for c in status.conditions or () if c.type == ConditionType.READY), None)
    return (
        ready is not None
        and ready.status == conditions_logic.FALSE
        and (ready.reason or "") not in PROGRESS_REASONS
    )


class PodState(enum.StrEnum):
    """What an observed pod means for its sandbox."""

    MISSING = "missing"
    DELETING = "deleting"
    PENDING = "pending"
    UNSCHEDULABLE = "unschedulable"
    """Unschedulable, still within the deadline."""
    NOT_READY = "not-ready"
    READY = "ready"
    FAILED = "failed"
    """Terminal: the sandbox fails with the verdict's reason."""


@dataclasses.dataclass(frozen=True, slots=True)
class PodVerdict:
    """The judgement of one pod observation."""

    state: PodState
    reason: str
    message: str
    scheduled: bool
    recheck_after_seconds: float | None = None
    """When the verdict changes by time alone (the unschedulable deadline)."""


_IMAGE_FAILURES: Final = frozenset({"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_CRASH_LOOP: Final = "CrashLoopBackOff"


def _condition(pod: Mapping[str, Any], condition_type: str) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == condition_type:
            return dict(condition)
    return None


def classify_pod(
    pod: Mapping[str, Any] | None,
    *,
    now: datetime.datetime,
    unschedulable_deadline_seconds: float,
) -> PodVerdict:
    """Judge the sandbox's pod (None: it does not exist)."""
    if pod is None:
        return PodVerdict(PodState.MISSING, Reason.CREATING, "the pod is being created", False)
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return PodVerdict(
            PodState.DELETING, Reason.POD_NOT_READY, "the pod is being deleted", False
        )
    status = pod.get("status") or {}
    scheduled_condition = _condition(pod, "PodScheduled")
    scheduled = bool(scheduled_condition and scheduled_condition.get("status") == "True")
    phase = status.get("phase")
    if phase in ("Failed", "Succeeded"):
        detail = status.get("message") or status.get("reason") or f"pod phase {phase}"
        return PodVerdict(
            PodState.FAILED, Reason.POD_FAILED, f"the sandbox pod stopped: {detail}", scheduled
        )
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting") or {}
        waiting_reason = waiting.get("reason")
        if waiting_reason in _IMAGE_FAILURES:
            return PodVerdict(
                PodState.FAILED,
                Reason.IMAGE_PULL_BACK_OFF,
                f"image {container.get('image', '?')} cannot be pulled ({waiting_reason}): "
                f"{waiting.get('message') or 'check the RuntimeEnvironment image'}",
                scheduled,
            )
        if waiting_reason == _CRASH_LOOP:
            last = (container.get("lastState") or {}).get("terminated") or {}
            return PodVerdict(
                PodState.FAILED,
                Reason.POD_FAILED,
                f"container {container.get('name', '?')} keeps crashing (exit code "
                f"{last.get('exitCode', '?')}, {last.get('reason') or 'no reason'})",
                scheduled,
            )
    if scheduled_condition and scheduled_condition.get("reason") == "Unschedulable":
        created = metadata.get("creationTimestamp")
        age = (now - meta.parse_timestamp(created)).total_seconds() if created else 0.0
        message = scheduled_condition.get("message") or "no node fits the pod"
        if age >= unschedulable_deadline_seconds:
            return PodVerdict(
                PodState.FAILED,
                Reason.UNSCHEDULABLE,
                f"unschedulable for {int(age)} s: {message}",
                False,
            )
        return PodVerdict(
            PodState.UNSCHEDULABLE,
            Reason.UNSCHEDULABLE,
            message,
            False,
            recheck_after_seconds=unschedulable_deadline_seconds - age,
        )
    ready = _condition(pod, "Ready")
    if ready and ready.get("status") == "True":
        return PodVerdict(PodState.READY, Reason.POD_READY, "the sandbox pod is ready", scheduled)
    if phase == "Running":
        return PodVerdict(
            PodState.NOT_READY, Reason.POD_NOT_READY, "the agent is not ready yet", scheduled
        )
    return PodVerdict(PodState.PENDING, Reason.POD_PENDING, "the pod is starting", scheduled)


def expiry_time(start_time: str, *, timeout_seconds: int) -> datetime.datetime:
    """When a sandbox that became Running at ``start_time`` expires."""
    return meta.parse_timestamp(start_time) + datetime.timedelta(seconds=timeout_seconds)


def seconds_until_expiry(
    start_time: str | None, *, timeout_seconds: int, now: datetime.datetime
) -> float | None:
    """Seconds left of the lifetime (≤ 0: expired); None before the sandbox first ran."""
    if not start_time:
        return None
    return (expiry_time(start_time, timeout_seconds=timeout_seconds) - now).total_seconds()


def is_terminal(phase: str | None) -> bool:
    """Whether the phase is Terminated or Failed."""
    return phase in TERMINAL_PHASES
