"""Handle one hint: observe → plan → apply, for a WarmPool or a WarmPod.

``warmpool`` hints size the pool (``sizing``), write its status (``status``) and, when it is
being deleted, tear it down behind its finalizer. ``warmpod`` hints drive one WarmPod's
lifecycle (``lifecycle``): create its pod, mark it Ready, refresh its heartbeat, fail and
delete it when its pod dies. This is the only module that mixes reads, decisions and writes.

In-memory state, per process and lost harmlessly on restart (the API server is the truth):
each pool's token bucket and expectations, the pools whose ServiceAccount and policy were
ensured, and the requeue book.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

import msgspec

from lss_common import errors
from lss_common.bus import consuming, outcomes, own_writes
from lss_common.kube import client, podexec
from lss_common.logic import owners, revisions, subjects
from lss_common.models import kinds, messages, meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.observability import logs
from lss_common.runtime import clock as clock_module
from lss_pool_manager import (
    apply,
    batching,
    lifecycle,
    names,
    observe,
    orphan_sweeping,
    pod_failures,
    podspec,
    pool_uids,
    preload,
    preloading,
    requeue,
    retire,
    sizing,
    status,
    sweeping,
)
from lss_pool_manager import metrics as metrics_module
from lss_pool_manager import settings as settings_module

_log = logging.getLogger(__name__)

# How soon a pool waiting for a previous namesake's children to be collected looks again.
_PREVIOUS_POOL_RECHECK_SECONDS = 1.0
#: Status writes tried to record a created pod (other passes' writes conflict, the API
#: server has a blip): only this pass can record it, and a lost record replaces the pod.
_RECORD_ATTEMPTS = 5
_RECORD_RETRY_SECONDS = 0.2
#: Child resources of a pool (singular, as hints name them) whose change is checked at once.
_NETWORK_POLICY = "networkpolicy"
_SERVICE_ACCOUNT = "serviceaccount"


class Handler:
    """The pool manager's message handler (one per process)."""

    def __init__(
        self,
        settings: settings_module.PoolManagerSettings,
        *,
        kube: client.KubeConnection,
        metrics: metrics_module.PoolManagerMetrics,
        clock: clock_module.Clock,
        executor: podexec.PodExecutor,
        written: revisions.WrittenRevisions | None = None,
    ) -> None:
        self._settings = settings
        self._written = written
        self._options = settings.pool
        self._kube = kube
        self._metrics = metrics
        self._clock = clock
        self._buckets: dict[str, sizing.TokenBucket] = {}
        self._expectations: dict[str, sizing.Expectations] = {}
        # When each pool's ServiceAccount and deny policy were last checked (monotonic):
        # again every pool_resync_seconds, which repairs one deleted by hand.
        self._ensured: dict[str, float] = {}
        self._pool_uids = pool_uids.PoolUids()
        self._book = requeue.RequeueBook()
        self._batcher = batching.RefillBatcher(window_seconds=self._options.refill_batch_seconds)
        self._preloader = preloading.Preloader(
            lambda: kube.kube, executor=executor, settings=settings, metrics=metrics, clock=clock
        )
        self._sweeper = sweeping.Sweeper(
            lambda: kube.kube, options=settings.pool, metrics=metrics, clock=clock
        )
        self._orphans = orphan_sweeping.OrphanSweeper(
            lambda: kube.kube,
            interval_seconds=settings.pool.pool_resync_seconds,
            metrics=metrics,
            clock=clock,
        )

    async def handle(self, event: messages.ChangeEvent) -> outcomes.Outcome:
        if event.namespace is None:
            raise errors.InvalidMessage(f"{event.kind} hint without a namespace")
        if own_writes.is_current_own_write(event, written=self._written, may_skip=may_skip):
            self._metrics.own_write_hints_total.inc()
            return outcomes.DONE
        if own_writes.is_current_delivery_skippable(event, skip=is_service_hint):
            self._metrics.service_hints_total.inc()
            return outcomes.DONE
        with logs.bind(kind=event.kind, namespace=event.namespace, name=event.name):
            if event.kind == kinds.WARM_POOL.singular:
                # A deny policy or account change, riding along included, is checked now:
                # never batched away behind a WarmPod's hint.
                children_changed = own_writes.current_delivery_announces(
                    event, what=_is_pool_child_hint
                )
                batched = None if children_changed else self._batch(event)
                if batched is not None:
                    return batched
                key = _pool_key(event.namespace, event.name)
                try:
                    return await self.handle_pool(
                        namespace=event.namespace,
                        name=event.name,
                        children_changed=children_changed,
                    )
                except (errors.PermanentError, errors.InvalidObjectError) as error:
                    return self._refused(key, error)
            if event.kind == kinds.WARM_POD.singular:
                key = _warm_pod_key(event.namespace, event.name)
                try:
                    return await self.handle_warm_pod(
                        namespace=event.namespace, name=event.name, versions=_versions(event)
                    )
                except (errors.PermanentError, errors.InvalidObjectError) as error:
                    return self._refused(key, error)
        raise errors.InvalidMessage(f"the pool manager does not handle {event.kind!r} hints")

    def _refused(self, key: str, error: errors.LssError) -> outcomes.Outcome:
        """A write the API server refused for good (403, 422: RBAC, an admission policy)
        that no pass reported otherwise: it is fixed outside the pool, so look again after
        ``refused_write_retry_seconds`` instead of waiting for the resync."""
        _log.error("write refused", extra={"error": str(error)})
        self._metrics.refused_writes_total.inc()
        return self._requeue(key, self._options.refused_write_retry_seconds)

    def _batch(self, event: messages.ChangeEvent) -> outcomes.Outcome | None:
        """The outcome of a pool hint the refill batching defers or covers (batching.py);
        None: run the pass now."""
        if event.child is None or event.child.resource != kinds.WARM_POD.singular:
            return None
        decision = self._batcher.decide(
            _pool_key(event.namespace or "", event.name),
            now=self._clock.monotonic(),
            first_delivery=consuming.is_first_delivery(),
        )
        if decision.verdict is batching.Verdict.DEFER:
            self._metrics.batched_pool_passes_total.labels("deferred").inc()
            return outcomes.RequeueAfter(decision.after_seconds)
        if decision.verdict is batching.Verdict.COVERED:
            self._metrics.batched_pool_passes_total.labels("covered").inc()
            return outcomes.DONE
        return None

    async def _ensure_children(
        self, pool: warmpool_model.WarmPool, *, changed: bool = False
    ) -> list[str]:
        """The pool's ServiceAccount and deny policy, checked once per pool_resync_seconds
        or when a hint says one of them changed (``changed``: a deleted deny policy left
        the warm pods open until the next check, up to 5 minutes); what is not the pool's
        yet (see ``apply.ensure_pool_children``)."""
        uid = pool.metadata.uid or ""
        checked = self._ensured.get(uid)
        now = self._clock.monotonic()
        if (
            not changed
            and checked is not None
            and now - checked < self._options.pool_resync_seconds
        ):
            return []
        waiting = await apply.ensure_pool_children(self._kube.kube, pool=pool)
        if not waiting:
            self._ensured[uid] = now
        return waiting

    def _requeue(self, key: str, after_seconds: float | None) -> outcomes.Outcome:
        seconds = self._book.decide(
            key,
            after_seconds=after_seconds,
            now=self._clock.monotonic(),
            stream_seq=consuming.current_stream_seq(),
            covered_seqs=consuming.current_covered_seqs(),
        )
        return outcomes.DONE if seconds is None else outcomes.RequeueAfter(seconds)

    # -- pools -----------------------------------------------------------------------------

    async def handle_pool(
        self, *, namespace: str, name: str, children_changed: bool = False
    ) -> outcomes.Outcome:
        kube = self._kube.kube
        key = _pool_key(namespace, name)
        pool = await observe.get_pool(kube, namespace=namespace, name=name)
        if pool is None:
            self._forget(key, namespace=namespace, name=name)
            return outcomes.DONE
        stale = self._pool_uids.seen(key, pool.metadata.uid or "")
        if stale is not None:
            self._drop_pool_state(stale)  # a predecessor under this name
        if pool.metadata.deletion_timestamp:
            return await self._delete_pool(pool, key=key)
        pool = await apply.add_finalizer(kube, pool=pool)
        now = self._clock.now()
        try:  # preload scripts (preload.py): the hash new WarmPods record
            preload_hash = preload.preload_hash(
                preload.steps_of(
                    pool.spec,
                    default_timeout_seconds=self._settings.preload.default_timeout_seconds,
                )
            )
        except preload.PreloadConfigError as error:
            await self._write_failed(pool, reason=error.reason, message=str(error))
            return self._requeue(key, None)  # a spec change (a hint) fixes it
        uid = pool.metadata.uid or ""
        try:
            inputs = await observe.build_inputs(kube, pool=pool, settings=self._settings.sandbox)
            waiting = await self._ensure_children(pool, changed=children_changed)
        except errors.PermanentError as error:
            await self._write_failed(pool, reason=error.reason, message=str(error))
            return self._requeue(key, self._options.invalid_pool_recheck_seconds)
        if waiting:
            # A pool of the same name was deleted and this one created before its children
            # were collected: no warm pod until they are gone and this pool's exist.
            await self._write_failed(
                pool,
                reason=status.Reason.PREVIOUS_POOL_CLEANUP,
                message="waiting for the garbage collector to delete a previous pool's "
                + ", ".join(waiting),
            )
            return self._requeue(key, _PREVIOUS_POOL_RECHECK_SECONDS)
        members_found = await observe.list_warm_pods(kube, pool=pool, any_version=True)
        swept = await self._sweeper.run(pool, warm_pods=members_found)  # leaked claims
        fingerprint = self._fingerprint(pool, inputs=inputs)
        members = [
            _member(wp, record=inputs.record, preload_hash=preload_hash, fingerprint=fingerprint)
            for wp in members_found
            if (wp.metadata.uid or "") not in swept.released
        ]
        in_flight = (
            self._expectations.get(uid, sizing.Expectations())
            .settled(
                observed_names=(wp.metadata.name or "" for wp in members_found),
                observed_uids=(wp.metadata.uid or "" for wp in members_found),
                now=now,
            )
            .creates
        )
        preload_allowance = preload.creation_allowance(
            await self._preload_record(pool, preload_hash=preload_hash),
            members=members,
            now=now,
            base_seconds=self._settings.preload.failure_backoff_seconds,
            max_seconds=self._settings.preload.failure_backoff_max_seconds,
            in_flight=len(in_flight),
        )
        bucket = self._buckets.get(uid) or sizing.TokenBucket.full(
            capacity=self._options.create_burst,
            rate_per_second=self._options.create_rate_per_second,
        )
        shape = status.shape_of(pool)
        last_scale = status.last_scale_time(pool)

        def sized(
            record: warmpool_model.PodFailures | None,
        ) -> tuple[sizing.SizingPlan, preload.Allowance]:
            allowance = pod_failures.stricter(
                preload_allowance,
                pod_failures.allowance(
                    record,
                    members=members,
                    now=now,
                    base_seconds=self._settings.failures.backoff_seconds,
                    max_seconds=self._settings.failures.backoff_max_seconds,
                    in_flight=len(in_flight),
                ),
            )
            return sizing.plan_sizing(
                shape,
                pool_name=name,
                members=members,
                expectations=self._expectations.get(uid, sizing.Expectations()),
                bucket=bucket,
                last_scale_time=last_scale,
                now=now,
                max_creates=allowance.max_creates,
            ), allowance

        record = _live_failures(pool, members=members)
        plan, allowance = sized(record)
        if plan.create:
            # The failure record read *after* the list: a WarmPod's pass records its failure
            # before it deletes the WarmPod, so a list that shows it gone, however stale, is
            # older than this read, and its replacement never escapes the backoff. Only a
            # pass about to create pays for the read.
            fresh = await observe.get_pool(kube, namespace=namespace, name=name)
            if fresh is not None and not fresh.metadata.deletion_timestamp:
                pool = fresh
                if _live_failures(fresh, members=members) != record:
                    record = _live_failures(fresh, members=members)
                    plan, allowance = sized(record)
        self._buckets[uid] = plan.bucket
        expectations = plan.expectations.expecting(
            creates=plan.create,
            deletes=[d.uid for d in plan.delete],
            now=now,
            timeout_seconds=self._options.expectation_timeout_seconds,
        )
        self._expectations[uid] = expectations
        if plan.create or plan.delete:
            _log.info(
                "sizing pool",
                extra=logs.extra(
                    create=len(plan.create),
                    delete=len(plan.delete),
                    operation=str(plan.operation) if plan.operation else None,
                    wanted_unassigned=plan.wanted_unassigned,
                ),
            )
        results = await asyncio.gather(
            *(self._delete(pool, deletion) for deletion in plan.delete),
            *(
                self._create(pool, slot=slot, inputs=inputs, preload_hash=preload_hash)
                for slot in plan.create
            ),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # Unconfirmed writes must not be trusted as expectations: re-observe next time.
            self._expectations.pop(uid, None)
            refused = next((f for f in failures if _is_refusal(f)), None)
            if refused is None:
                raise failures[0]
            # Fixed outside the pool (a quota, an admission policy, RBAC): say so and try
            # again later. A WarmPod made before its pod was refused says so too.
            await self._write_failed(pool, reason=status.Reason.PODS_REFUSED, message=str(refused))
            return self._requeue(key, self._options.refused_write_retry_seconds)
        if plan.operation is not None:
            self._metrics.scaling_operations_total.labels(plan.operation.value).inc()
        self._metrics.record_sizing(namespace=namespace, pool=name, counts=plan.counts)
        self._batcher.record(
            key, batching.Supply(available=plan.counts.available, wanted=plan.wanted_unassigned)
        )
        refusal = next(
            (found for wp in members_found if (found := lifecycle.refusal_of(wp)) is not None),
            None,
        )
        new_status = status.sized_status(
            pool, plan=plan, now=now, refusal=refusal, pod_failures=record
        )
        if new_status != warmpool_model.status_of(pool):
            await apply.write_pool_status(kube, pool=pool, status=new_status)
        await self._orphans.run(pool, warm_pods=members_found)
        return self._requeue(
            key,
            _earliest(
                plan.requeue_after_seconds,
                allowance.retry_after_seconds,
                swept.requeue_after_seconds,
                expectations.seconds_to_lapse(now=now),
                self._options.pool_resync_seconds,
            ),
        )

    async def _preload_record(
        self, pool: warmpool_model.WarmPool, *, preload_hash: str
    ) -> warmpool_model.PreloadStatus | None:
        """The pool's preload failure record, read *after* the WarmPods were listed.

        A failed preload records the failure before it fails (then deletes) its WarmPod, so a
        list that shows the failure, however stale, is older than the record read here
        (``preloading.py``): a replacement never escapes the backoff.
        """
        if not preload_hash:
            return warmpool_model.status_of(pool).preload
        fresh = await observe.get_pool(
            self._kube.kube, namespace=pool.metadata.namespace or "", name=pool.metadata.name or ""
        )
        return warmpool_model.status_of(fresh or pool).preload

    async def _create(
        self,
        pool: warmpool_model.WarmPool,
        *,
        slot: str,
        inputs: observe.BuildInputs,
        preload_hash: str,
    ) -> None:
        kube = self._kube.kube
        fingerprint = self._fingerprint(pool, inputs=inputs)
        created = await apply.create_warm_pod(
            kube,
            body=apply.warm_pod_body(
                pool,
                name=slot,
                record=inputs.record,
                pod_spec_hash=fingerprint,
                preload_hash=preload_hash,
            ),
        )
        if created is None:
            return
        self._metrics.pods_created_total.inc()
        # Created right away (not on the WarmPod's own hint) to save a round trip; the
        # warmpod handler creates them instead if this process dies in between.
        pod = await self._create_pod_and_service(created, pool=pool, inputs=inputs)
        if pod is not None:
            await self._record_pod(created, pod=pod)

    async def _record_pod(self, warm_pod: warmpod_model.WarmPod, *, pod: dict[str, Any]) -> None:
        """Record the pod this process has just created in its WarmPod's status (Pending):
        no other process can (``lifecycle``: without the record the WarmPod never gets Ready).
        A conflict is another pass's status write (a refusal noted): recorded on top of it."""
        # Shielded: a pass cancelled now (a shutdown's deadline) would lose the record.
        await asyncio.shield(self._write_record(warm_pod, pod=pod))

    async def _write_record(self, warm_pod: warmpod_model.WarmPod, *, pod: dict[str, Any]) -> None:
        kube = self._kube.kube
        current: warmpod_model.WarmPod | None = warm_pod
        for attempt in range(_RECORD_ATTEMPTS):
            if current is None or current.metadata.uid != warm_pod.metadata.uid:
                return  # deleted since: its pod goes with it
            status = warmpod_model.status_of(current)
            if status.pod_uid:
                return  # recorded already
            new = (
                lifecycle.created_status(current, pod=pod, now=self._clock.now())
                if not status.phase
                else lifecycle.recorded(status, pod=pod)
            )
            try:
                await apply.write_warm_pod_status(kube, warm_pod=current, status=new)
                return
            except errors.NotFoundError:
                return
            except (errors.ConflictError, errors.RetryableError) as error:
                if isinstance(error, errors.RetryableError):
                    await self._clock.sleep(_RECORD_RETRY_SECONDS * (attempt + 1))
                with contextlib.suppress(errors.RetryableError):
                    current = await observe.get_warm_pod(
                        kube,
                        namespace=warm_pod.metadata.namespace or "",
                        name=warm_pod.metadata.name or "",
                    )
        # Not recorded: the WarmPod fails as unverified after the grace and is replaced.
        _log.warning(
            "warm pod's pod not recorded: conflicts",
            extra={"pod": (pod.get("metadata") or {}).get("name")},
        )

    def _fingerprint(self, pool: warmpool_model.WarmPool, *, inputs: observe.BuildInputs) -> str:
        """The fingerprint of the pod the pool's inputs build now (what a claim compares),
        computed for a stand-in WarmPod: identity is not part of it."""
        probe = warmpod_model.WarmPod(
            metadata=meta.ObjectMeta(name="probe", namespace=pool.metadata.namespace, uid="0" * 8),
            spec=inputs.record,
        )
        return podspec.fingerprint(
            podspec.render_warm_pod(
                inputs.spec,
                warm_pod=probe,
                pool_uid=pool.metadata.uid or "",
                settings=self._settings.sandbox,
            )
        )

    async def _create_pod_and_service(
        self,
        warm_pod: warmpod_model.WarmPod,
        *,
        pool: warmpool_model.WarmPool,
        inputs: observe.BuildInputs,
    ) -> dict[str, Any] | None:
        """The warm pod and the Service prepared with it, together (one after the other,
        or the Service with the WarmPod's Ready status, they cost a round trip per WarmPod
        and the refill rate dropped from ≈ 25 to 12 to 15 WarmPods/s, measured). A claim
        adopts the Service with the pod; one that finds no Service yet (or a pool manager with
        ``prepare_services`` off) creates it (``lss_sandbox_reconciler.adopt.adopt_service``).
        Returns the pod as created (None: it existed already).
        """
        kube = self._kube.kube
        pool_uid = pool.metadata.uid or ""
        pod = podspec.render_warm_pod(
            inputs.spec, warm_pod=warm_pod, pool_uid=pool_uid, settings=self._settings.sandbox
        )
        writes: list[Awaitable[object]] = [apply.create_pod(kube, pod=pod)]
        if self._options.prepare_services:
            service = podspec.render_warm_service(warm_pod)
            writes.append(apply.create_service(kube, service=service))
        results = await asyncio.gather(*writes, return_exceptions=True)
        created = results[0]
        if isinstance(created, BaseException):
            raise created
        if len(results) > 1 and isinstance(results[1], Exception):
            # The Service is a shortcut (a claim that finds none creates it): a refused or
            # failed create must not lose the pod created beside it, whose record only this
            # pass can write (raised, the WarmPod was replaced as unverified 30 s later, and
            # under a Services quota again and again).
            self._metrics.service_create_failures_total.inc()
            _log.warning(
                "warm pod's Service not created; a claim will create it",
                extra={"error": str(results[1])},
            )
        return created if isinstance(created, dict) else None

    async def _delete(self, pool: warmpool_model.WarmPool, deletion: sizing.Deletion) -> None:
        deleted = await retire.retire_warm_pod(
            self._kube.kube,
            namespace=pool.metadata.namespace or "",
            name=deletion.name,
            uid=deletion.uid,
            resource_version=deletion.resource_version,
            metrics=self._metrics,
        )
        if deleted:
            self._metrics.pods_deleted_total.labels(deletion.reason.value).inc()
            return
        # Gone already, or changed since observed (claimed, most likely): the decision was
        # stale, so stop expecting its deletion and let the next pass decide again.
        uid = pool.metadata.uid or ""
        open_expectations = self._expectations.get(uid)
        if open_expectations is not None:
            self._expectations[uid] = open_expectations.forgetting_delete(deletion.uid)

    async def _write_failed(
        self,
        pool: warmpool_model.WarmPool,
        *,
        reason: str,
        message: str,
        counts: sizing.Counts | None = None,
    ) -> None:
        new_status = status.failed_status(
            pool, reason=reason, message=message, now=self._clock.now(), counts=counts
        )
        if new_status != warmpool_model.status_of(pool):
            await apply.write_pool_status(self._kube.kube, pool=pool, status=new_status)

    async def _delete_pool(self, pool: warmpool_model.WarmPool, *, key: str) -> outcomes.Outcome:
        kube = self._kube.kube
        if kinds.FINALIZER not in (pool.metadata.finalizers or ()):
            return outcomes.DONE
        warm_pods = await observe.list_warm_pods(kube, pool=pool)
        # A leaked claim would block the deletion forever: released first (sweeping.py).
        swept = await self._sweeper.run(pool, warm_pods=warm_pods)
        warm_pods = [wp for wp in warm_pods if (wp.metadata.uid or "") not in swept.released]
        assigned = [
            wp
            for wp in warm_pods
            if warmpod_model.status_of(wp).phase == warmpod_model.Phase.ASSIGNED
        ]
        if assigned and not self._options.force_delete_with_assigned_pods:
            await self._write_failed(
                pool,
                reason=status.Reason.DELETION_BLOCKED,
                message=f"{len(assigned)} WarmPods are Assigned to sandboxes "
                f"({', '.join(sorted(wp.metadata.name or '' for wp in assigned)[:5])}); "
                "deletion waits until they are released",
                # What is left, not the counts of the pool's last sizing (they stood still
                # for the whole deletion, found by bench/chaos.py).
                counts=status.counts_of(warm_pods),
            )
            # Through the book: the WarmPods' heartbeats wake a blocked pool again and
            # again, and each wake-up must not start a requeue cycle of its own.
            return self._requeue(key, self._options.deletion_poll_seconds)
        pods = await observe.list_pool_pods(kube, pool=pool)
        # Pods still controlled by one of the pool's WarmPods; a claimed pod is controlled by
        # its Sandbox and lives on with it.
        unclaimed = [pod for pod in pods if _controller_kind(pod) == warmpod_model.KIND]
        if not warm_pods and not unclaimed:
            await apply.remove_finalizer(kube, pool=pool)
            self._forget(
                key, namespace=pool.metadata.namespace or "", name=pool.metadata.name or ""
            )
            self._metrics.pools_deleted_total.inc()
            _log.info("warm pool deleted")
            return outcomes.DONE
        # Ready WarmPods stay claimable until they are gone: each delete carries the version
        # listed, so a WarmPod claimed since (its CAS) or a pod adopted since is left alone,
        # and the next pass finds the claim and waits for it. A pod goes only once its
        # WarmPod is gone (or had none listed).
        deleted = await asyncio.gather(
            *(
                apply.delete_warm_pod(
                    kube,
                    namespace=wp.metadata.namespace or "",
                    name=wp.metadata.name or "",
                    uid=wp.metadata.uid or "",
                    resource_version=wp.metadata.resource_version or None,
                )
                for wp in warm_pods
            )
        )
        # Not deleted: changed since the list (or gone already; then the next pass's list
        # no longer has it, and its pod goes then).
        kept = {wp.metadata.uid for wp, done in zip(warm_pods, deleted, strict=True) if not done}
        await asyncio.gather(
            *(
                apply.delete_pod(
                    kube,
                    namespace=pod["metadata"]["namespace"],
                    name=pod["metadata"]["name"],
                    uid=pod["metadata"].get("uid"),
                    resource_version=pod["metadata"].get("resourceVersion"),
                )
                for pod in unclaimed
                if not pod["metadata"].get("deletionTimestamp") and _controller_uid(pod) not in kept
            ),
        )
        count = sum(1 for done in deleted if done)
        if count:
            self._metrics.pods_deleted_total.labels(sizing.DeleteReason.POOL_DELETION.value).inc(
                count
            )
        return self._requeue(key, self._options.deletion_poll_seconds)

    def _forget(self, key: str, *, namespace: str, name: str) -> None:
        """Everything this process keeps for a pool that is gone."""
        self._book.forget(key)
        self._batcher.forget(key)
        self._metrics.forget_pool(namespace=namespace, pool=name)
        uid = self._pool_uids.gone(key)
        if uid is not None:
            self._drop_pool_state(uid)

    def _drop_pool_state(self, uid: str) -> None:
        self._sweeper.forget(uid)
        self._orphans.forget(uid)
        for state in (self._ensured, self._buckets, self._expectations):
            state.pop(uid, None)

    # -- warm pods ---------------------------------------------------------------------------

    async def handle_warm_pod(
        self, *, namespace: str, name: str, versions: HintVersions | None = None
    ) -> outcomes.Outcome:
        kube = self._kube.kube
        versions = versions or HintVersions()
        key = _warm_pod_key(namespace, name)
        warm_pod = await observe.get_warm_pod(
            kube, namespace=namespace, name=name, not_older_than=versions.warm_pod
        )
        if warm_pod is None or not warm_pod.metadata.uid:
            self._book.forget(key)
            return outcomes.DONE
        pod = (
            await observe.get_pod(
                kube,
                namespace=namespace,
                name=names.pod_name(name, uid=warm_pod.metadata.uid),
                not_older_than=versions.pod,
            )
            if lifecycle.needs_pod(warm_pod)
            else None
        )
        plan = lifecycle.plan_warm_pod(
            warm_pod,
            pod=pod,
            now=self._clock.now(),
            heartbeat_interval_seconds=self._options.heartbeat_interval_seconds,
            ready_timeout_seconds=self._options.ready_timeout_seconds,
        )
        status_to_write = plan.status
        created: dict[str, Any] | None = None
        if plan.create_pod:
            try:
                created = await self._create_missing_pod(warm_pod)
            except (errors.PermanentError, errors.InvalidObjectError) as error:
                # Refused (a quota, an admission policy): the WarmPod keeps its slot and says
                # why; replacing it would only be refused again, in a loop.
                _log.warning("warm pod's pod refused", extra={"error": str(error)})
                refused = lifecycle.refused_status(
                    warm_pod, message=str(error), now=self._clock.now()
                )
                if refused != warmpod_model.status_of(warm_pod):
                    try:
                        await apply.write_warm_pod_status(kube, warm_pod=warm_pod, status=refused)
                    except errors.NotFoundError:
                        return self._gone(key)
                return self._requeue(key, self._options.refused_write_retry_seconds)
            if created is None:
                # Deleted as outdated, or the pod existed: whoever created it records it.
                return outcomes.DONE
            if status_to_write is not None:
                status_to_write = lifecycle.recorded(status_to_write, pod=created)
        if plan.status is not None and preload.needs_preload(
            warm_pod, becoming_ready=plan.status.phase == warmpod_model.Phase.READY
        ):  # Ready only after its preload scripts ran (preloading.py)
            done = await self._preloader.run(warm_pod, pod_name=preloading.pod_name_of(warm_pod))
            if done.deleted:
                self._book.forget(key)
                return outcomes.DONE
            return self._requeue(key, done.requeue_after_seconds)
        failure = pod_failures.counts(plan.status) if plan.delete else None
        if failure is not None:
            # On the pool first, like a preload failure: a pool pass that sees this WarmPod
            # Failed or gone (and wants a replacement) then finds the failure too.
            await self._record_failure(warm_pod, reason=failure[0], message=failure[1])
        if status_to_write is not None:
            try:
                warm_pod = await apply.write_warm_pod_status(
                    kube, warm_pod=warm_pod, status=status_to_write
                )
            except errors.NotFoundError:
                return self._gone(key)
            except (errors.ConflictError, errors.RetryableError):
                if created is not None:
                    # Only this pass can record the pod it created: on top of whatever
                    # changed the WarmPod, or once the API server answers again (else it
                    # would fail as unverified), then the pass is retried.
                    await self._record_pod(warm_pod, pod=created)
                raise
        if plan.delete:
            deleted = await retire.retire_warm_pod(
                kube,
                namespace=namespace,
                name=name,
                uid=warm_pod.metadata.uid or "",
                resource_version=warm_pod.metadata.resource_version or "",
                metrics=self._metrics,
            )
            if deleted:
                reason = preload.deletion_reason(warm_pod)
                _log.info("warm pod failed and deleted", extra={"reason": reason.value})
                self._metrics.pods_deleted_total.labels(reason.value).inc()
            self._book.forget(key)
            return outcomes.DONE
        return self._requeue(key, plan.requeue_after_seconds)

    async def _record_failure(
        self, warm_pod: warmpod_model.WarmPod, *, reason: str, message: str
    ) -> None:
        """One more failure on the WarmPod's pool record (its creation backoff)."""
        kube = self._kube.kube
        pool = await observe.get_pool_of(kube, warm_pod)
        if pool is None:
            return
        now = self._clock.now()
        described = f"WarmPod {warm_pod.metadata.name}: {message}"
        try:
            await apply.update_pool_status(
                kube,
                pool=pool,
                update=lambda current: msgspec.structs.replace(
                    current,
                    pod_failures=pod_failures.recorded(
                        current.pod_failures,
                        warm_pod_uid=warm_pod.metadata.uid or "",
                        reason=reason,
                        message=described,
                        now=now,
                    ),
                ),
            )
        except errors.ConflictError:
            _log.warning("pool failure record not written: conflicts")
        self._metrics.pod_failures_total.labels(reason).inc()

    def _gone(self, key: str) -> outcomes.Outcome:
        """The WarmPod was deleted since it was read (its pool's scale-down or deletion, a
        release, by hand): nothing is left to look after, and its pod goes with it (the
        garbage collector; the pool's next pass refills)."""
        _log.info("warm pod gone before its status write")
        self._book.forget(key)
        return outcomes.DONE

    async def _create_missing_pod(self, warm_pod: warmpod_model.WarmPod) -> dict[str, Any] | None:
        """Create the pod of a WarmPod whose creator died before it; returns the pod as
        created (None: the WarmPod was deleted as outdated, or the pod exists already)."""
        kube = self._kube.kube
        pool = await observe.get_pool_of(kube, warm_pod)
        orphaned = pool is None or bool(pool.metadata.deletion_timestamp)
        inputs: observe.BuildInputs | None = None
        if pool is not None and not orphaned:
            try:
                inputs = await observe.build_inputs(
                    kube, pool=pool, settings=self._settings.sandbox
                )
            except errors.PermanentError:
                inputs = None
        if (
            pool is None
            or inputs is None
            or inputs.record != warm_pod.spec
            or _fingerprint_of(warm_pod) != self._fingerprint(pool, inputs=inputs)
        ):
            # Orphaned, or built for a configuration that no longer applies (its record, or
            # the pod it would get now: a new image, a profile's content, a setting): the
            # pool replaces it. Creating the pod from today's inputs under yesterday's
            # fingerprint would let a claim take it for the pod it recorded.
            # With its resourceVersion: the WarmPod was read from the watch cache, and one
            # changed since (its pod made by another replica, claimed) is not ours to delete.
            deleted = await retire.retire_warm_pod(
                kube,
                namespace=warm_pod.metadata.namespace or "",
                name=warm_pod.metadata.name or "",
                uid=warm_pod.metadata.uid or "",
                resource_version=warm_pod.metadata.resource_version or "",
                metrics=self._metrics,
            )
            if deleted:
                self._metrics.pods_deleted_total.labels(sizing.DeleteReason.OUTDATED.value).inc()
            return None
        return await self._create_pod_and_service(warm_pod, pool=pool, inputs=inputs)


def _is_refusal(error: BaseException) -> bool:
    """A write the API server refuses for good (403, 422): retrying soon cannot help."""
    return isinstance(error, errors.PermanentError | errors.InvalidObjectError)


def _live_failures(
    pool: warmpool_model.WarmPool, *, members: Sequence[sizing.Member]
) -> warmpool_model.PodFailures | None:
    """The pool's failure record, None once a WarmPod created after the last failure works."""
    record = warmpool_model.status_of(pool).pod_failures
    if record is None or pod_failures.is_cleared(record, members=members):
        return None
    return record


def _fingerprint_of(warm_pod: warmpod_model.WarmPod) -> str | None:
    return (warm_pod.metadata.annotations or {}).get(podspec.POD_SPEC_HASH)


def _member(
    warm_pod: warmpod_model.WarmPod,
    *,
    record: warmpod_model.WarmPodSpec,
    preload_hash: str,
    fingerprint: str,
) -> sizing.Member:
    metadata = warm_pod.metadata
    created = metadata.creation_timestamp
    return sizing.Member(
        name=metadata.name or "",
        uid=metadata.uid or "",
        phase=warmpod_model.status_of(warm_pod).phase or "",
        created_at=meta.parse_timestamp(created)
        if created
        else meta.parse_timestamp("1970-01-01T00:00:00Z"),
        idle_since=lifecycle.idle_since(warm_pod),
        deleting=bool(metadata.deletion_timestamp),
        # The record, the preload scripts or the pod the pool builds now (its fingerprint: a
        # new image, a profile's content, a setting) differ: no sandbox would match it.
        outdated=warm_pod.spec != record
        or preload.hash_of(warm_pod) != preload_hash
        or _fingerprint_of(warm_pod) != fingerprint,
        refused=lifecycle.refusal_of(warm_pod) is not None,
        resource_version=metadata.resource_version or "",
        failure=preload.deletion_reason(warm_pod),
    )


def _warm_pod_key(namespace: str, name: str) -> str:
    return subjects.message_id("warmpod", namespace=namespace, name=name, resource_version="-")


def _pool_key(namespace: str, name: str) -> str:
    return subjects.message_id("warmpool", namespace=namespace, name=name, resource_version="-")


def _controller_kind(pod: dict[str, Any]) -> str | None:
    kind = (owners.controller_of(pod) or {}).get("kind")
    return None if kind is None else str(kind)


def _controller_uid(pod: dict[str, Any]) -> str | None:
    uid = (owners.controller_of(pod) or {}).get("uid")
    return None if uid is None else str(uid)


def _earliest(*delays: float | None) -> float | None:
    found = [delay for delay in delays if delay is not None]
    return min(found) if found else None


def may_skip(event: messages.ChangeEvent) -> bool:
    """Whether the pool manager may skip ``event`` when it announces its own write.

    Not a WarmPod it created (``ADDED`` of the key's own object): if creating its pod failed
    after it, that hint's pass is what creates the pod. Not a WarmPool woken by a child: the
    pool's pass is what counts its WarmPods into the pool's status after they change.
    """
    if event.child is None:
        return event.event_type != "ADDED"
    return event.kind != kinds.WARM_POOL.singular


def _is_pool_child_hint(event: messages.ChangeEvent) -> bool:
    """Whether a WarmPool hint says its ServiceAccount or deny policy changed."""
    return event.child is not None and event.child.resource in (
        _NETWORK_POLICY,
        _SERVICE_ACCOUNT,
    )


def is_service_hint(event: messages.ChangeEvent) -> bool:
    """Whether ``event`` only says that a WarmPod's Service changed: no pass needed.

    The pool manager creates the Service with the pod and never looks at it again (its
    plans follow the WarmPod and the pod; a claim that finds no Service creates it), so
    its creation, its re-owning by a claim and its deletion would each cost a pass that
    reads the WarmPod (and, unless it is Assigned, the pod) only to change nothing. Skipped
    only when every hint riding along is one too, on a first delivery
    (``own_writes.is_current_delivery_skippable``): a pod's hint coalesced with it must run.
    """
    return (
        event.kind == kinds.WARM_POD.singular
        and event.child is not None
        and event.child.resource == "service"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class HintVersions:
    """The resourceVersions a WarmPod's pass reads its objects at (or newer, from the API
    server's watch cache, ``objects.get_object``): the WarmPod's own hint's, or its pod's
    when the hint announced the pod's change. None: a consistent read."""

    warm_pod: str | None = None
    pod: str | None = None


def _versions(event: messages.ChangeEvent) -> HintVersions:
    """What the hint announces, if the pass may read at it: only on its first delivery,
    alone. Not when other hints ride along (one of them may announce a newer change, which
    the pass promises to observe), nor for a redelivery (a retry after a conflict, or a
    requeued check: read what etcd has)."""
    if not consuming.is_first_delivery(alone=True):
        return HintVersions()
    if event.child is None:
        return HintVersions(warm_pod=event.resource_version or None)
    if event.child.resource == "pod":
        return HintVersions(pod=event.child.resource_version or None)
    return HintVersions()
