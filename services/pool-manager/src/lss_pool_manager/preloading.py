"""Run a pool's preload scripts in one warm pod before it becomes Ready (reads, execs, writes).

Called by the warmpod handler when a WarmPod built with preload scripts would become Ready
(``preload.needs_preload``). The decisions are ``preload``'s; this module orders the I/O:

1. read the pool: its scripts must still be those the WarmPod was built for (else the
   WarmPod is outdated and deleted; the pool replaces it);
2. the ``Preloaded`` condition says what was done already (``preload.state_of``): a marker
   within its deadline means another pass is running them (requeue at the deadline), one
   past it means that pass died (the WarmPod fails, ``Interrupted``);
3. write the marker (PUT with the resourceVersion read: two replicas cannot both start), then
   exec the scripts in order, each with its own timeout, through ``pods/exec`` into the
   pod's sandbox container;
4. success: read the pod again and write the lifecycle's next status (``Ready`` when the pod
   still is) with ``Preloaded=True``, then clear the pool's failure record if it had one;
   failure: the pool's failure record (its creation backoff) incremented *first*, then
   ``Failed`` naming the script, then the WarmPod deleted (its pod goes by garbage
   collection). The pool pass reads the record after listing the WarmPods, so a pass that
   sees the failure (a Failed or missing WarmPod) also sees the record: no replacement
   escapes the backoff. A record write that meets ``RECORD_ATTEMPTS`` conflicts in a row
   (each after a re-read of the pool) is given up with a warning: that one failure goes
   unrecorded and its replacement is not held back; the next failure is recorded.

A pool manager killed during step 3 leaves the marker; whoever looks after the deadline fails
the WarmPod, so scripts run at most once per pod.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from lss_common import errors
from lss_common.kube import client, podexec
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.observability import logs
from lss_common.runtime import clock as clock_module
from lss_pool_manager import apply, lifecycle, names, observe, podspec, preload, retire, sizing
from lss_pool_manager import metrics as metrics_module
from lss_pool_manager import settings as settings_module

_log = logging.getLogger(__name__)

# A failure record that keeps meeting concurrent pool status writes is given up after this
# many re-reads: the WarmPod's own Failed condition still says what happened.
RECORD_ATTEMPTS = 10
# The outcome of a run (its WarmPod's status) is written this many times at most, re-reading
# the WarmPod in between (a conflict, a transient API failure).
OUTCOME_ATTEMPTS = 4
_OUTCOME_RETRY_SECONDS = 0.2
# Pauses before an exec that never reached the container is tried again (then it fails).
_EXEC_RETRY_SECONDS: tuple[float, ...] = (0.5, 1.0, 2.0)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What the warmpod handler does after a preload pass."""

    requeue_after_seconds: float | None = None
    deleted: bool = False


class Preloader:
    """Preloads for one pool manager process."""

    def __init__(
        self,
        kube: Callable[[], client.Kube],
        *,
        executor: podexec.PodExecutor,
        settings: settings_module.PoolManagerSettings,
        metrics: metrics_module.PoolManagerMetrics,
        clock: clock_module.Clock,
    ) -> None:
        self._kube = kube
        self._executor = executor
        self._options = settings.pool
        self._preload = settings.preload
        self._metrics = metrics
        self._clock = clock

    async def run(self, warm_pod: warmpod_model.WarmPod, *, pod_name: str) -> Outcome:
        """Advance ``warm_pod``'s preload (see the module docstring)."""
        kube = self._kube()
        namespace = warm_pod.metadata.namespace or ""
        pool = await observe.get_pool_of(kube, warm_pod)
        if pool is None or pool.metadata.deletion_timestamp:
            return Outcome()  # the pool's deletion removes the WarmPod
        try:
            steps = preload.steps_of(
                pool.spec, default_timeout_seconds=self._preload.default_timeout_seconds
            )
        except preload.PreloadConfigError:
            steps = ()  # the pool pass reports it; this WarmPod cannot be preloaded as built
        if not steps or preload.preload_hash(steps) != preload.hash_of(warm_pod):
            return await self._delete(warm_pod, reason=sizing.DeleteReason.OUTDATED)
        now = self._clock.now()
        state, left = preload.state_of(
            warm_pod, now=now, deadline_after_seconds=preload.deadline_seconds(steps)
        )
        if state is preload.State.RUNNING:
            return Outcome(requeue_after_seconds=left)
        if state is preload.State.INTERRUPTED:
            return await self._fail(pool, warm_pod, verdict=preload.interrupted(steps))
        if state is not preload.State.TO_RUN:
            return Outcome()  # done or failed: the lifecycle takes it from here
        marked = await apply.write_warm_pod_status(
            kube,
            warm_pod=warm_pod,
            status=preload.marker_status(warm_pod, steps=steps, now=now, pod_name=pod_name),
        )
        _log.info("preload started", extra=logs.extra(scripts=len(steps), pod=pod_name))
        verdict = await self._run_steps(namespace=namespace, pod_name=pod_name, steps=steps)
        if verdict is not None:
            pod = await observe.get_pod(kube, namespace=namespace, name=pod_name)
            if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
                # The pod died under its scripts (a node lost, deleted by hand; the exec then
                # fails, or never starts): the WarmPod fails for its pod, like one whose pod
                # dies while Ready, not for a script — no preload failure on the pool's
                # record, so no creation backoff for it.
                return await self._pod_ended(marked, pod=pod)
            return await self._fail(pool, marked, verdict=verdict)
        return await self._succeed(pool, marked, steps=steps, pod_name=pod_name)

    async def _pod_ended(
        self, marked: warmpod_model.WarmPod, *, pod: dict[str, Any] | None
    ) -> Outcome:
        plan = lifecycle.plan_warm_pod(
            marked,
            pod=pod,
            now=self._clock.now(),
            heartbeat_interval_seconds=self._options.heartbeat_interval_seconds,
            ready_timeout_seconds=self._options.ready_timeout_seconds,
        )
        written = marked
        if plan.status is not None:
            status = plan.status

            async def status_for(_: warmpod_model.WarmPod) -> warmpod_model.WarmPodStatus:
                return status

            written = await self._write_outcome(marked, status_for)
        _log.warning("preload ended by its pod's end", extra={"pod_deleting": pod is not None})
        self._metrics.preloads_total.labels(preload.Result.INTERRUPTED.value).inc()
        if plan.delete:
            # Failed by the plan: its pod died, or is not (or no longer) the recorded one.
            return await self._delete(written, reason=preload.deletion_reason(written))
        return Outcome(requeue_after_seconds=plan.requeue_after_seconds)

    async def _exec(
        self, *, namespace: str, pod_name: str, step: preload.Step
    ) -> podexec.ExecResult:
        """Run one step. An exec that never reached the container (a blip of the API server
        or of its connection to the kubelet) is tried again, a few times: the script did
        not run, so this cannot run it twice, and failing the WarmPod for it threw warm pods
        away and slowed the pool's refill (its failure backoff)."""
        for attempt, pause in enumerate((*_EXEC_RETRY_SECONDS, None), start=1):
            try:
                return await self._executor.run(
                    namespace=namespace,
                    pod=pod_name,
                    container=podspec.CONTAINER,
                    argv=step.argv,
                    timeout_seconds=step.timeout_seconds,
                )
            except podexec.ExecNotStarted as error:
                if pause is None:
                    raise
                _log.warning(
                    "preload exec not started; trying again",
                    extra={"attempt": attempt, "error": str(error)},
                )
                await self._clock.sleep(pause)
        raise AssertionError("unreachable")

    async def _run_steps(
        self, *, namespace: str, pod_name: str, steps: Sequence[preload.Step]
    ) -> preload.Verdict | None:
        """The first failing step's verdict, or None when every step succeeded."""
        for step in steps:
            try:
                result = await self._exec(namespace=namespace, pod_name=pod_name, step=step)
            except errors.LssError as error:
                return preload.exec_failed(step, total=len(steps), error=str(error))
            verdict = preload.judge_step(
                step,
                total=len(steps),
                exit_code=result.exit_code,
                timed_out=result.timed_out,
                message=result.message,
                stdout=result.stdout,
                stderr=result.stderr,
            )
            if verdict.reason is not None:
                return verdict
        return None

    async def _succeed(
        self,
        pool: warmpool_model.WarmPool,
        marked: warmpod_model.WarmPod,
        *,
        steps: Sequence[preload.Step],
        pod_name: str,
    ) -> Outcome:
        kube = self._kube()
        decided: list[lifecycle.WarmPodPlan] = []

        async def status_for(current: warmpod_model.WarmPod) -> warmpod_model.WarmPodStatus:
            now = self._clock.now()
            # The scripts took time: the pod is read again so Ready is never written for a
            # pod that died meanwhile.
            pod = await observe.get_pod(
                kube, namespace=current.metadata.namespace or "", name=pod_name
            )
            plan = lifecycle.plan_warm_pod(
                current,
                pod=pod,
                now=now,
                heartbeat_interval_seconds=self._options.heartbeat_interval_seconds,
                ready_timeout_seconds=self._options.ready_timeout_seconds,
            )
            decided[:] = [plan]
            base = plan.status or warmpod_model.status_of(current)
            return preload.succeeded_status(current, base, steps=steps, now=now)

        written = await self._write_outcome(marked, status_for)
        plan = decided[0]
        self._metrics.preloads_total.labels(preload.Result.SUCCEEDED.value).inc()
        _log.info("preload succeeded", extra=logs.extra(scripts=len(steps), pod=pod_name))
        cleared = preload.recorded_success(warmpool_model.status_of(pool).preload)
        if cleared is not None:
            await self._record(pool, update=lambda _: cleared)
        if plan.delete:
            # Failed by the plan: its pod died, or is not (or no longer) the recorded one.
            return await self._delete(written, reason=preload.deletion_reason(written))
        return Outcome(requeue_after_seconds=plan.requeue_after_seconds)

    async def _fail(
        self,
        pool: warmpool_model.WarmPool,
        warm_pod: warmpod_model.WarmPod,
        *,
        verdict: preload.Verdict,
    ) -> Outcome:
        assert verdict.reason is not None
        reason = verdict.reason
        now = self._clock.now()
        message = f"WarmPod {warm_pod.metadata.name}: {verdict.message}"
        # The pool's record first: a pool pass that sees this WarmPod Failed or gone (and so
        # wants a replacement) reads the record after its list, and finds the failure.
        await self._record(
            pool, update=lambda record: preload.recorded_failure(record, message=message, now=now)
        )

        async def status_for(current: warmpod_model.WarmPod) -> warmpod_model.WarmPodStatus:
            return preload.failed_status(
                current, reason=reason, message=verdict.message, now=self._clock.now()
            )

        written = await self._write_outcome(warm_pod, status_for)
        self._metrics.preloads_total.labels(preload.result_of(reason).value).inc()
        _log.warning("preload failed", extra=logs.extra(reason=reason, error=verdict.message))
        return await self._delete(written, reason=sizing.DeleteReason.PRELOAD_FAILED)

    async def _write_outcome(
        self,
        marked: warmpod_model.WarmPod,
        status_for: Callable[[warmpod_model.WarmPod], Awaitable[warmpod_model.WarmPodStatus]],
    ) -> warmpod_model.WarmPod:
        """Write the preload's outcome on the WarmPod this run marked.

        A conflict or a transient failure re-reads the WarmPod and writes again, while the
        marker is still this run's: a lost outcome write left the marker to run out, so a
        preload that succeeded was failed as Interrupted (and a failure was counted twice
        on the pool's record).
        """
        kube = self._kube()
        current = marked
        attempt = 0
        while True:
            try:
                return await apply.write_warm_pod_status(
                    kube, warm_pod=current, status=await status_for(current)
                )
            except errors.RetryableError:
                attempt += 1
                if attempt >= OUTCOME_ATTEMPTS:
                    raise
                await self._clock.sleep(_OUTCOME_RETRY_SECONDS * attempt)
                fresh = await observe.get_warm_pod(
                    kube,
                    namespace=marked.metadata.namespace or "",
                    name=marked.metadata.name or "",
                )
                if (
                    fresh is None
                    or fresh.metadata.uid != marked.metadata.uid
                    or preload.marker_of(fresh) != preload.marker_of(marked)
                ):
                    raise  # no longer this run's to finish
                current = fresh

    async def _record(
        self,
        pool: warmpool_model.WarmPool,
        *,
        update: Callable[[warmpool_model.PreloadStatus | None], warmpool_model.PreloadStatus],
    ) -> None:
        """Write the pool's preload record, re-reading the pool on each conflict."""
        try:
            await apply.update_pool_status(
                self._kube(),
                pool=pool,
                update=lambda status: msgspec.structs.replace(
                    status, preload=update(status.preload)
                ),
                attempts=RECORD_ATTEMPTS,
            )
        except errors.ConflictError:
            _log.warning("pool preload record not written: conflicts")

    async def _delete(
        self, warm_pod: warmpod_model.WarmPod, *, reason: sizing.DeleteReason
    ) -> Outcome:
        # With the resourceVersion decided on: the read may come from the watch cache, and
        # a WarmPod changed since (claimed, Ready) is not this decision's to delete; its
        # change's hint brings a pass that decides again.
        deleted = await retire.retire_warm_pod(
            self._kube(),
            namespace=warm_pod.metadata.namespace or "",
            name=warm_pod.metadata.name or "",
            uid=warm_pod.metadata.uid or "",
            resource_version=warm_pod.metadata.resource_version or "",
            metrics=self._metrics,
        )
        if deleted:
            self._metrics.pods_deleted_total.labels(reason.value).inc()
        return Outcome(deleted=True)


def pod_name_of(warm_pod: warmpod_model.WarmPod) -> str:
    """The WarmPod's pod: always its deterministic name, the pod whose ownership the pass
    checked (``lifecycle.is_own_pod``). Never ``status.podName``: whoever may write a
    WarmPod's status could otherwise point the pool's scripts at another pod to exec in."""
    return names.pod_name(warm_pod.metadata.name or "", uid=warm_pod.metadata.uid or "")
