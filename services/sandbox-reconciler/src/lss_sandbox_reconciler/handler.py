"""Handle one ``sandbox`` hint: observe → plan → apply → outcome. The only module mixing them.

A hint names a key; the event's content is never trusted (DESIGN §3.2). A pass reads the
Sandbox and its world (``observe``), plans (``plan.plan_sandbox``, pure) and applies
(``apply``). A 409 anywhere means the world moved: the next pass re-reads and re-plans, up to
``reconcile.max_conflict_passes`` times, then the hint is nak'ed (``ConflictError``) and comes
back. Outcomes: ``Done``, or ``RequeueAfter(plan.requeue_after_seconds)`` when time alone
will change the answer (lifetime expiry, unschedulable deadline, children still being
deleted, the ipblock refresh).

A write the API server refuses for good (403, 422), of a child, of the Sandbox itself
(finalizer, status) or of the claim, becomes a ``Ready=False`` condition naming the cause
(when the status may be written) and a Warning Event, and the sandbox is looked at again after
``reconcile.refused_write_retry_seconds`` (what refuses it, RBAC or an admission policy, is
fixed outside the sandbox). A failed delete also keeps the finalizer and counts
``llmsafespace_sandbox_cleanup_failures_total``.

After a pass whose status write went through, the written status's LSS_STATUS record is
published at once (``announcing.StatusAnnouncer``, best effort; the watcher publishes it too).

Events (each one API write) are posted on transitions that need a human's attention or end
a sandbox: Failed, Terminated (expired), a cleanup failure and refused writes. Running needs
none: the status says it, and the pod has its own events.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import logging
import socket
from collections.abc import Callable, Collection
from typing import Final

from lss_common import errors
from lss_common.bus import consuming, outcomes, own_writes
from lss_common.kube import client as client_module
from lss_common.kube import objects, writes
from lss_common.logic import conditions as conditions_logic
from lss_common.logic import revisions
from lss_common.models import messages, meta
from lss_common.models import sandbox as sandbox_model
from lss_common.observability import logs
from lss_common.observability import metrics as shared_metrics
from lss_common.runtime import clock as clock_module
from lss_sandbox_reconciler import announcing, apply, lifecycle, observe, plan, warm
from lss_sandbox_reconciler import metrics as metrics_module
from lss_sandbox_reconciler import settings as settings_module

_log = logging.getLogger(__name__)

REPORTING_CONTROLLER: Final = "llmsafespace.dev/sandbox-reconciler"
CLEANUP_FAILED: Final = "CleanupFailed"
WRITE_REJECTED: Final = "WriteRejected"
READ_REFUSED: Final = "ReadRefused"
_KIND: Final = shared_metrics.Kind.SANDBOX.value


class Released:
    """The sandboxes (namespace, name) this replica released lately (finalizer removed).

    Releasing a sandbox deletes its children, and each deletion's hint arrives after the
    Sandbox is gone. For those keys a pass reads the Sandbox alone first (one get instead of
    the children's eight); a namesake created since is found by that get and read in full.
    Bounded: the oldest entries go first.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._keys: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()

    def add(self, key: tuple[str, str]) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)

    def discard(self, key: tuple[str, str]) -> None:
        self._keys.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


class Requeues:
    """Which delayed re-check of each sandbox this replica already has pending on the server.

    A delayed nak keeps its message unacknowledged until the delay ends, and unacknowledged
    messages count against the consumer's ``max_ack_pending``. Requeueing *every* hint of a
    running sandbox (each pod or Service change is one) until its expiry would fill that
    window and stall the consumer. So one message per key holds the re-check (the *holder*,
    by stream sequence); another hint whose re-check would come no earlier is simply acked:
    the holder's pass re-reads everything then (level-triggered). A record expires at its due
    time, so one that is stale (the holder was redelivered to another replica) suppresses
    nothing beyond the moment the holder fires. Duplicates are bounded by replicas and
    restarts, not by hints.
    """

    _SLACK_SECONDS: Final = 0.5

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], tuple[float, int]] = {}

    def decide(
        self,
        key: tuple[str, str],
        *,
        delay_seconds: float | None,
        stream_seq: int,
        now: float,
        covered_seqs: Collection[int] = (),
    ) -> bool:
        """Whether this message should be requeued (else acked); records the holder."""
        held = self._pending.get(key)
        if held is not None and (
            held[0] <= now or held[1] == stream_seq or held[1] in covered_seqs
        ):
            # Expired, or the holder itself: this message, riding on it, or its copy (come
            # back early: a redelivery, or handed over; acked as covered by its own record,
            # its re-check was lost).
            held = None
            self._pending.pop(key, None)
        if delay_seconds is None:
            return False
        due = now + delay_seconds
        if held is not None and held[0] <= due + self._SLACK_SECONDS:
            return False  # an earlier (or equal) re-check is already pending
        self._pending[key] = (due, stream_seq)
        return True


class Handler:
    """The sandbox handler bound to one service's clients, settings, clock and metrics."""

    def __init__(
        self,
        kube: Callable[[], client_module.Kube],
        *,
        settings: settings_module.SandboxReconcilerSettings,
        clock: clock_module.Clock,
        metrics: metrics_module.SandboxMetrics,
        instance: str | None = None,
        warm_starter: warm.WarmStarter | None = None,
        written: revisions.WrittenRevisions | None = None,
        status: announcing.StatusAnnouncer | None = None,
    ) -> None:
        """``status`` publishes the record of each status write (None: only the watcher
        publishes status records)."""
        self._kube = kube
        self.warm = warm_starter
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._instance = instance or socket.gethostname()
        self.observer = observe.Observer(kube, settings=settings, clock=clock)
        self._written = written
        self._status = status
        self.requeues = Requeues()
        self.released = Released()

    async def handle(self, event: messages.ChangeEvent) -> outcomes.Outcome:
        """Reconcile the sandbox the hint names (see the module docstring)."""
        if event.kind != _KIND or event.namespace is None:
            _log.warning("hint for another kind ignored", extra={"hint_kind": event.kind})
            return outcomes.DONE
        if own_writes.is_current_own_write(event, written=self._written):
            # This process made that change in a pass that planned it from a fresh read; a
            # pass to observe it again would find nothing to do (lss_common.logic.revisions).
            self._metrics.own_write_hints_total.inc()
            return outcomes.DONE
        delay = (self._clock.now() - event.observed_at).total_seconds()
        self._metrics.hint_delay_seconds.observe(max(delay, 0.0))
        with logs.bind(
            kind=_KIND,
            namespace=event.namespace,
            hint_delay_seconds=round(delay, 4),
            **logs.extra(name=event.name),
        ):
            warm.HINT_OBSERVED_AT.set(event.observed_at)
            fresh = _announces_creation(event)
            version = _own_version(event)
            for _ in range(self._settings.reconcile.max_conflict_passes):
                try:
                    return await self._pass(
                        namespace=event.namespace, name=event.name, fresh=fresh, version=version
                    )
                except errors.ConflictError as error:
                    # Our view was stale: the next pass reads everything from etcd.
                    fresh, version = False, None
                    self._metrics.conflicts_total.inc()
                    _log.debug("conflict; observing again", extra={"error": str(error)})
            raise errors.ConflictError(
                f"Sandbox {event.namespace}/{event.name}: still conflicting after "
                f"{self._settings.reconcile.max_conflict_passes} passes"
            )

    async def _vanished(self, sandbox: sandbox_model.Sandbox) -> bool:
        """Whether the Sandbox of a write answered 404 is gone (or a namesake holds its name):
        deleted while its pass ran, by its owner or another replica's pass that removed the
        finalizer. Nothing is left to do then; the 404 is no error (it was logged as one,
        with a traceback, for about half of all deletions with two replicas)."""
        metadata = sandbox.metadata
        current = await objects.get_or_none(
            self._kube(),
            resource=objects.SANDBOX,
            namespace=metadata.namespace or "",
            name=metadata.name or "",
            decode=objects.as_dict,
        )
        if current is not None and current["metadata"].get("uid") == metadata.uid:
            return False
        self._metrics.vanished_total.inc()
        _log.info("sandbox gone during its pass")
        if self.warm is not None:
            await self.warm.release_vanished(metadata.uid or "")
        return True

    async def _pass(
        self, *, namespace: str, name: str, fresh: bool = False, version: str | None = None
    ) -> outcomes.Outcome:
        started = self._clock.monotonic()
        try:
            if (namespace, name) in self.released:
                if not await self.observer.exists(namespace=namespace, name=name):
                    return outcomes.DONE  # a late hint of its children's deletion
                self.released.discard((namespace, name))  # a namesake: read it in full
            snapshot = await self.observer.observe(
                namespace=namespace, name=name, fresh=fresh, not_older_than=version
            )
        except (errors.PermanentError, errors.InvalidObjectError) as error:
            return await self._read_refused((namespace, name), error=error)
        observed = self._clock.monotonic() - started
        self._metrics.pass_stage_seconds.labels(stage=metrics_module.Stage.OBSERVE.value).observe(
            observed
        )
        if snapshot is None:
            return outcomes.DONE  # deleted and gone: nothing of ours can remain (finalizer)
        sandbox = snapshot.sandbox
        metadata = sandbox.metadata
        with logs.bind(uid=metadata.uid, resource_version=metadata.resource_version):
            now = self._clock.now()
            if self.warm is not None:
                # Before planning: a released sandbox's plan must see a stray claim's pod that
                # it adopted (its policies and finalizer wait for that pod too).
                try:
                    snapshot = await self._with_stray_claim(snapshot)
                except (errors.PermanentError, errors.InvalidObjectError) as error:
                    # A refused read or delete of the claim (RBAC, an admission policy): said
                    # on the Sandbox and looked at again later, like any refused write.
                    reason = _reason_of(error)
                    await self._report_refusal(sandbox, reason=reason, message=str(error), now=now)
                    return self._after_refusal((namespace, name), error=error, reason=reason)
            planned = plan.plan_sandbox(snapshot, now=now, settings=self._settings.sandbox)
            try:
                started_warm = None
                if self.warm is not None:  # warm start, WarmPod give-back (warm.py)
                    await self.warm.release(snapshot)
                    await self.warm.remove_stray_cold_pod(snapshot)
                    await self.warm.release_replaced(snapshot)
                    started_warm = await self.warm.start(snapshot, planned=planned, now=now)
                    if started_warm is None:
                        self.warm.mark_cold(planned)
                if started_warm is not None:
                    planned, applied = started_warm.planned, started_warm.applied
                else:
                    applied = await apply.apply_plan(
                        self._kube(),
                        sandbox=sandbox,
                        planned=planned,
                        metrics=self._metrics,
                        strict_creates=snapshot.children_assumed_absent,
                    )
            except apply.ApplyError as error:
                refused = isinstance(error.cause, errors.PermanentError | errors.InvalidObjectError)
                reason = CLEANUP_FAILED if error.cleanup else _reason_of(error.cause)
                if refused or error.cleanup:
                    await self._report_refusal(
                        error.sandbox,
                        reason=reason,
                        message=str(error),
                        now=now,
                        observed=sandbox,
                        refused=refused,
                    )
                if refused:
                    return self._after_refusal((namespace, name), error=error.cause, reason=reason)
                if isinstance(error.cause, errors.NotFoundError) and await self._vanished(sandbox):
                    return outcomes.DONE
                raise error.cause from error
            except errors.NotFoundError:
                if await self._vanished(sandbox):
                    return outcomes.DONE
                raise
            except (errors.PermanentError, errors.InvalidObjectError) as error:
                # A write to the Sandbox itself (its finalizer, its status) or one of the
                # claim's (WarmPod, pod) was refused. The condition may be refused too (a
                # status write is); the Event still says it.
                reason = _reason_of(error)
                await self._report_refusal(sandbox, reason=reason, message=str(error), now=now)
                return self._after_refusal((namespace, name), error=error, reason=reason)
            if applied.status_written and self._status is not None:
                # applied.sandbox is the API server's answer to the status write (the
                # committed object at its new resourceVersion): its record can go out now,
                # one watch hop before the watcher's, and before this pass's Event.
                await self._status.announce(applied.sandbox)
            await self._record(sandbox, planned=planned, applied=applied, now=now)
            _log.debug(
                "pass done",
                extra={
                    "writes": applied.writes,
                    "phase": planned.status.phase,
                    "duration_seconds": round(self._clock.monotonic() - started, 4),
                    "observe_seconds": round(observed, 4),
                },
            )
            # Released: nothing to look at again (a pass that planned the release but found a
            # delete still pending keeps its requeue).
            delay = None if applied.finalizer_removed else planned.requeue_after_seconds
            return self._requeue((namespace, name), delay=delay)

    async def _with_stray_claim(self, snapshot: plan.Snapshot) -> plan.Snapshot:
        assert self.warm is not None
        pods = await self.warm.release_stray_claim(snapshot)
        if not pods:
            return snapshot
        children = snapshot.children
        return dataclasses.replace(
            snapshot,
            children=dataclasses.replace(children, other_pods=(*children.other_pods, *pods)),
        )

    async def _read_refused(
        self, key: tuple[str, str], *, error: errors.LssError
    ) -> outcomes.Outcome:
        """A read the pass needs was refused (RBAC: a 403) or its answer cannot be decoded:
        say so on the Sandbox when it can be read, and look again later like a refused write
        (what refuses it is fixed outside the sandbox). Acked, it waited for the resync."""
        sandbox: sandbox_model.Sandbox | None = None
        with contextlib.suppress(errors.LssError):
            sandbox = await objects.get_or_none(
                self._kube(),
                resource=objects.SANDBOX,
                namespace=key[0],
                name=key[1],
                decode=sandbox_model.decode,
            )
        if sandbox is None:
            _log.error("sandbox read refused", extra={"error": str(error)})
        else:
            await self._report_refusal(
                sandbox, reason=READ_REFUSED, message=str(error), now=self._clock.now()
            )
        return self._after_refusal(key, error=error, reason=READ_REFUSED)

    def _after_refusal(
        self, key: tuple[str, str], *, error: errors.LssError, reason: str
    ) -> outcomes.Outcome:
        """What refuses a write (RBAC, an admission policy, a quota) is fixed outside the
        sandbox: look again later, so the fix needs no edit of it and a deletion held by a
        refused delete completes by itself. Without a retry: ack (the resync looks again)."""
        self._metrics.refused_writes_total.labels(reason=reason).inc()
        retry = self._settings.reconcile.refused_write_retry_seconds
        if retry > 0:
            return self._requeue(key, delay=retry)
        if isinstance(error, errors.PermanentError):
            raise error
        raise errors.PermanentError(str(error), reason=WRITE_REJECTED) from error

    def _requeue(self, key: tuple[str, str], *, delay: float | None) -> outcomes.Outcome:
        """``RequeueAfter(delay)`` unless an earlier re-check of ``key`` is pending (Requeues)."""
        if self.requeues.decide(
            key,
            delay_seconds=delay,
            stream_seq=_stream_seq(),
            now=self._clock.monotonic(),
            covered_seqs=consuming.current_covered_seqs(),
        ):
            assert delay is not None
            return outcomes.RequeueAfter(delay)
        return outcomes.DONE

    # -- reporting --------------------------------------------------------------------------

    async def _record(
        self,
        before: sandbox_model.Sandbox,
        *,
        planned: plan.Plan,
        applied: apply.Applied,
        now: datetime.datetime,
    ) -> None:
        """Metrics, logs and Events for what this pass changed (it won the write)."""
        if applied.finalizer_removed:
            self.released.add((before.metadata.namespace or "", before.metadata.name or ""))
            if self.warm is not None:
                self.warm.forget_replaced(before.metadata.uid or "")
            self._metrics.deleted_total.inc()
            _log.info("sandbox released", extra={"writes": applied.writes})
            return
        if not applied.status_written:
            return
        old = sandbox_model.status_of(before)
        new = planned.status
        if old.phase == new.phase:
            return
        ready = _condition(new, lifecycle.ConditionType.READY)
        reason = ready.reason if ready is not None else (new.phase or "")
        message = ready.message if ready is not None and ready.message else ""
        _log.info(
            "sandbox phase changed",
            extra={"from_phase": old.phase, "to_phase": new.phase, "reason": reason},
        )
        if old.phase in (None, "", sandbox_model.Phase.PENDING) and new.phase in (
            sandbox_model.Phase.CREATING,
            sandbox_model.Phase.RUNNING,
        ):
            self._metrics.created_total.inc()
        if new.phase == sandbox_model.Phase.RUNNING and not old.start_time and new.start_time:
            created = before.metadata.creation_timestamp
            if created:
                elapsed = (now - meta.parse_timestamp(created)).total_seconds()
                launch = shared_metrics.Launch.COLD
                if new.warm_pod_ref is not None:
                    launch = shared_metrics.Launch.WARM
                self._metrics.startup_duration_seconds.labels(launch=launch.value).observe(
                    max(elapsed, 0.0)
                )
        if new.phase == sandbox_model.Phase.FAILED:
            self._metrics.failed_total.labels(reason=reason).inc()
            await self._post_event(
                applied.sandbox,
                reason=reason,
                message=message,
                event_type=writes.EventType.WARNING,
                now=now,
            )
        elif new.phase == sandbox_model.Phase.TERMINATED:
            await self._post_event(
                applied.sandbox,
                reason=reason,
                message=message,
                event_type=writes.EventType.NORMAL,
                now=now,
            )

    async def _report_refusal(
        self,
        sandbox: sandbox_model.Sandbox,
        *,
        reason: str,
        message: str,
        now: datetime.datetime,
        observed: sandbox_model.Sandbox | None = None,
        refused: bool = True,
    ) -> None:
        """A write was refused: a Ready=False condition naming it, and a Warning Event (when
        the condition changed, or could not be written: a refused status write).

        ``observed``: the Sandbox as this pass read it, before its own writes. A pass that
        writes its status beside the refused create (a pod refused by a quota) moves the
        condition off the refusal and back: compared with its own write, every re-check
        posted the same Warning Event again. ``refused`` False: a cleanup that failed for a
        transient reason (an unreachable API server), said the same way on the Sandbox but
        logged as the retried failure it is, not as a refusal."""
        if refused:
            _log.error("sandbox write refused", extra={"reason": reason, "error": message})
        else:
            _log.warning("sandbox cleanup failed; retried", extra={"error": message})
        # An ended sandbox keeps the reason it ended for on Ready (what to fix); its release
        # failing is said beside it. Reported on Ready, a cleanup failure replaced that reason
        # for good, even once the retried delete succeeded.
        ended = lifecycle.is_terminal(sandbox_model.status_of(sandbox).phase)
        condition_type = (
            lifecycle.ConditionType.CHILDREN_RELEASED
            if ended and reason == CLEANUP_FAILED
            else lifecycle.ConditionType.READY
        )
        try:
            changed = await writes.set_condition(
                self._kube(),
                resource=objects.SANDBOX,
                obj=sandbox,
                condition_type=condition_type,
                status=conditions_logic.FALSE,
                reason=reason,
                message=message,
                now=now,
                decode=sandbox_model.decode,
            )
        except (errors.PermanentError, errors.InvalidObjectError) as condition_error:
            _log.warning("condition refused too", extra={"error": str(condition_error)})
            await self._post_event(
                sandbox,
                reason=reason,
                message=message,
                event_type=writes.EventType.WARNING,
                now=now,
            )
            return
        except errors.LssError as condition_error:
            # The object moved on; the next pass meets the same refusal and reports it.
            _log.warning("condition not recorded", extra={"error": str(condition_error)})
            return
        if changed is not None:  # None: the Sandbox said exactly this already, nothing written
            self._metrics.count_write(
                kind=metrics_module.WriteKind.SANDBOX_STATUS,
                verb=metrics_module.WriteVerb.PATCH,
            )
        if changed is not None and not _said_already(
            observed, condition_type=condition_type, reason=reason, message=message
        ):
            await self._post_event(
                changed,
                reason=reason,
                message=message,
                event_type=writes.EventType.WARNING,
                now=now,
            )

    async def _post_event(
        self,
        involved: sandbox_model.Sandbox,
        *,
        reason: str,
        message: str,
        event_type: writes.EventType,
        now: datetime.datetime,
    ) -> None:
        if not self._settings.reconcile.post_events:
            return
        self._metrics.count_write(
            kind=metrics_module.WriteKind.EVENT, verb=metrics_module.WriteVerb.CREATE
        )
        await writes.post_event(
            self._kube(),
            involved=involved,
            resource=objects.SANDBOX,
            reason=reason,
            message=message or reason,
            event_type=event_type,
            reporting_controller=REPORTING_CONTROLLER,
            reporting_instance=self._instance,
            now=now,
        )


def _announces_creation(event: messages.ChangeEvent) -> bool:
    """The hint is the Sandbox's own ADDED, first delivered, with nothing riding along: the
    pass may read the Sandbox before its children (``observe.Observer.observe(fresh=...)``)."""
    return (
        event.event_type == "ADDED"
        and event.child is None
        and consuming.is_first_delivery(alone=True)
    )


def _own_version(event: messages.ChangeEvent) -> str | None:
    """The resourceVersion to read the Sandbox at (or newer, from the watch cache): its own
    hint's, first delivered and alone. None for a child's hint (its version is another
    resource's), when other hints ride along (one of them may announce a newer change, which
    this pass promises to observe) and for a redelivery (a retry or a requeued re-check:
    read what etcd has)."""
    if event.child is not None or not event.resource_version:
        return None
    return event.resource_version if consuming.is_first_delivery(alone=True) else None


def _stream_seq() -> int:
    seq = consuming.current_stream_seq()
    return -1 if seq is None else seq  # outside the consume loop (tests): its own message


def _condition(status: sandbox_model.SandboxStatus, condition_type: str) -> meta.Condition | None:
    return next((c for c in status.conditions or () if c.type == condition_type), None)


def _said_already(
    observed: sandbox_model.Sandbox | None, *, condition_type: str, reason: str, message: str
) -> bool:
    """Whether the Sandbox as the pass read it already said this refusal."""
    if observed is None:
        return False
    found = conditions_logic.find_condition(
        sandbox_model.status_of(observed).conditions, condition_type=condition_type
    )
    return found is not None and found.reason == reason and found.message == message


def _reason_of(error: errors.LssError) -> str:
    if isinstance(error, errors.PermanentError) and error.reason.isalnum():
        return error.reason
    return WRITE_REJECTED
