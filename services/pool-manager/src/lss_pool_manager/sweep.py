"""Leaked claims: Assigned WarmPods that no sandbox holds, and what to delete (pure).

A claim is the CAS ``Ready`` → ``Assigned`` (``assignedTo`` = the sandbox's UID,
``assignedAt``) followed, in the same reconciler pass, by the pod's adoption and the
Sandbox's ``status.warmPodRef``. A reconciler killed between the CAS and that status write
leaves a WarmPod Assigned to a sandbox that does not reference it. If the sandbox is
reconciled again while still new, the reconciler resumes its claim (its ready queue indexes
assignments by sandbox UID); if the sandbox went away, or started from another pod, nothing
would ever release it, and the pool would count it as assigned forever.

The pool manager releases such a WarmPod once it has been Assigned for the grace period
(:func:`judge`): its sandbox no longer exists (``SANDBOX_GONE``), or exists, is past new
(a phase beyond Pending, or being deleted) and its ``status.warmPodRef`` names another
WarmPod or none (``NOT_REFERENCED``). A new sandbox's claim is kept, as the reconciler keeps
it: its next pass resumes it. A claim younger
than the grace period is never judged, so a claim in flight (milliseconds) is never taken
from its sandbox; a sandbox that references its WarmPod is never touched, whatever its phase
(the reconciler gives the WarmPod back when the sandbox ends).

The pod goes with the WarmPod (:func:`may_delete_pod`) when it is still the WarmPod's, or
was adopted by the claiming sandbox but is not the pod the sandbox runs on (it would carry
the sandbox's labels and sit behind its Service). A pod the sandbox runs on, or anybody
else's, is never deleted.

No I/O, no clock: ``now`` and the grace period are arguments.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from lss_common.logic import owners
from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model


class Verdict(enum.StrEnum):
    """What an Assigned WarmPod's claim is (``reason`` label when released)."""

    IN_USE = "in_use"
    TOO_RECENT = "too_recent"
    SANDBOX_GONE = "sandbox_gone"
    NOT_REFERENCED = "not_referenced"

    @property
    def is_leaked(self) -> bool:
        return self in (Verdict.SANDBOX_GONE, Verdict.NOT_REFERENCED)


@dataclasses.dataclass(frozen=True, slots=True)
class Holder:
    """The sandbox a claim names, as far as the sweep needs it."""

    uid: str
    namespace: str
    name: str
    warm_pod_ref: tuple[str, str] | None
    """(namespace, name) of ``status.warmPodRef``; None when unset."""
    pod_name: str | None
    phase: str | None = None
    deleting: bool = False

    @property
    def is_new(self) -> bool:
        """Not past new: no status phase beyond Pending, no ``warmPodRef``, not being
        deleted. The reconciler resumes such a sandbox's claim on its next pass (and keeps
        it on purpose while the sandbox's first writes are refused)."""
        return (
            not self.deleting and self.warm_pod_ref is None and self.phase in (None, "", "Pending")
        )


def holder_of(obj: Mapping[str, Any]) -> Holder:
    """A Sandbox (as a dict) as the sweep sees it."""
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    namespace = metadata.get("namespace") or ""
    ref = status.get("warmPodRef") or None
    return Holder(
        uid=metadata.get("uid") or "",
        namespace=namespace,
        name=metadata.get("name") or "",
        warm_pod_ref=(ref.get("namespace") or namespace, ref.get("name") or "") if ref else None,
        pod_name=status.get("podName"),
        phase=status.get("phase"),
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def same_holder(listed: Holder, found: Mapping[str, Any]) -> Holder | None:
    """The listed holder as ``found`` by name just before acting, or None when that is a
    namesake (the listed sandbox was deleted and another created under its name since)."""
    fresh = holder_of(found)
    return fresh if fresh.uid == listed.uid else None


def claimed_at(obj: warmpod_model.WarmPod) -> datetime.datetime | None:
    """When the WarmPod was claimed (``assignedAt``; its creation if a claim lacks it)."""
    status = warmpod_model.status_of(obj)
    text = status.assigned_at or obj.metadata.creation_timestamp
    return meta.parse_timestamp(text) if text else None


def is_assigned(obj: warmpod_model.WarmPod) -> bool:
    status = warmpod_model.status_of(obj)
    return (
        status.phase == warmpod_model.Phase.ASSIGNED
        and bool(status.assigned_to)
        and not obj.metadata.deletion_timestamp
    )


def _age_seconds(obj: warmpod_model.WarmPod, *, now: datetime.datetime) -> float:
    started = claimed_at(obj)
    return (now - started).total_seconds() if started is not None else float("inf")


def judge(
    obj: warmpod_model.WarmPod,
    *,
    holder: Holder | None,
    now: datetime.datetime,
    grace_seconds: float,
) -> Verdict:
    """The claim's verdict; ``holder`` is the sandbox whose UID is ``assignedTo`` (None: gone).

    A WarmPod that is not Assigned is ``IN_USE`` (not the sweep's business).
    """
    if not is_assigned(obj):
        return Verdict.IN_USE
    if _age_seconds(obj, now=now) < grace_seconds:
        return Verdict.TOO_RECENT
    if holder is None or holder.uid != warmpod_model.status_of(obj).assigned_to:
        return Verdict.SANDBOX_GONE
    if holder.warm_pod_ref == (obj.metadata.namespace or "", obj.metadata.name or ""):
        return Verdict.IN_USE
    if holder.is_new:
        # The reconciler's rule too (``claim.is_stray_claim``): a new sandbox's next pass
        # resumes the claim. Releasing it made that pass claim another WarmPod, released in
        # turn one grace period later: a warm pod burned every few minutes per sandbox whose
        # first writes an admission policy refuses, or across a reconciler outage.
        return Verdict.IN_USE
    return Verdict.NOT_REFERENCED


def due(
    warm_pods: Iterable[warmpod_model.WarmPod], *, now: datetime.datetime, grace_seconds: float
) -> list[warmpod_model.WarmPod]:
    """The Assigned WarmPods whose claim is past the grace period (to check)."""
    return [
        wp for wp in warm_pods if is_assigned(wp) and _age_seconds(wp, now=now) >= grace_seconds
    ]


def next_check_seconds(
    warm_pods: Iterable[warmpod_model.WarmPod],
    *,
    now: datetime.datetime,
    grace_seconds: float,
    seconds_since_check: float | None,
    interval_seconds: float,
) -> float | None:
    """When the pool should be looked at again for leaked claims (None: nothing to watch).

    A claim still within its grace period is due when the period ends; claims past it are
    checked again ``interval_seconds`` after the last check.
    """
    waits: list[float] = []
    for wp in warm_pods:
        if not is_assigned(wp):
            continue
        age = _age_seconds(wp, now=now)
        if age < grace_seconds:
            waits.append(grace_seconds - age)
        elif seconds_since_check is None:
            waits.append(0.0)
        else:
            waits.append(max(0.0, interval_seconds - seconds_since_check))
    return min(waits) if waits else None


def holds_for_its_pod(
    pod: Mapping[str, Any] | None,
    *,
    warm_pod: warmpod_model.WarmPod,
    holder: Holder | None,
) -> bool:
    """Whether a leaked claim's WarmPod must stay for now: its pod, adopted by the claiming
    sandbox that still exists, is terminating. The reconciler keeps that sandbox's policies
    and finalizer until the pod is gone, and the Assigned WarmPod is what tells its pass the
    pod exists; released here, the pass removed them while the pod still ran."""
    if holder is None or pod is None:
        return False
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    controller = owners.controller_of(pod)
    return (
        controller is not None
        and controller.get("kind") == "Sandbox"
        and controller.get("uid") == warmpod_model.status_of(warm_pod).assigned_to
    )


def may_delete_pod(
    pod: Mapping[str, Any] | None,
    *,
    warm_pod: warmpod_model.WarmPod,
    holder: Holder | None,
) -> bool:
    """Whether a leaked claim's pod goes with it (see the module docstring)."""
    if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    controller = owners.controller_of(pod)
    if controller is None:
        return False
    if controller.get("kind") == warmpod_model.KIND:
        return controller.get("uid") == warm_pod.metadata.uid
    if controller.get("kind") != "Sandbox":
        return False
    if controller.get("uid") != warmpod_model.status_of(warm_pod).assigned_to:
        return False
    name = (pod.get("metadata") or {}).get("name")
    return holder is None or holder.pod_name != name
