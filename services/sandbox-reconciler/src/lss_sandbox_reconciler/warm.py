"""Warm starts: feed the ready queue, claim and adopt a WarmPod, give it back at the end.

The handler calls :meth:`WarmStarter.start` after planning a pass whose plan creates the
sandbox's pod. When the sandbox may start warm (``claim.cold_reason``) and the ready queue
holds a match (``claim.matches``: record *and* pod-spec hash), the pass becomes:

1. the CAS on a picked candidate (``adopt.claim_warm_pod``), concurrently with the writes a
   warm and a cold start share (:func:`split_early`: finalizer and policies — so the
   sandbox's deny policy exists before its pod leaves the pool's; the ServiceAccount and the
   sandbox's own Service only when no candidate is queued); on 409 (another replica won, or
   a heartbeat moved the resourceVersion) the next candidate, and after
   ``warm.max_conflicts`` the rest of the cold plan (ServiceAccount, Service, pod, status);
   a CAS refused for good (403, 422) goes cold at once;
2. the adoption of the pod and of the Service prepared with it, together
   (``adopt.adopt_pod``, ``adopt.adopt_service``; the pod's answer is the pod, which is not
   read before), then the plan again on a snapshot where the adopted pod is the sandbox's
   pod and the adopted Service its Service: it must yield ``Running`` (else the claim is
   discarded) and normally no write the first wave did not do;
3. the status (``Running``, ``warmPodRef``, ``podName`` = the warm pod), written last and
   conditional on the Sandbox's resourceVersion, so ``Running`` is never visible before the
   pod is re-labelled and its allowances exist.

A failure of the first wave (the children beside the CAS) keeps the claim: the pod is
untouched, and the next pass resumes it. Any failure from the adoption on discards the claim
(pod and WarmPod deleted: the pod may carry the sandbox's labels already) and the error goes
to the handler, whose next pass starts over.
Two passes of one sandbox on two replicas can each claim: the status write admits one, the
other discards — unless the sandbox's stored status references that very WarmPod (two
passes resuming one claim: the winner's pod is never taken back). A pass interrupted after
its CAS is resumed from the queue's assignment index (fed by the CAS's answer) while the
sandbox is still new; once it is not, the claim is stray and given back
(:meth:`WarmStarter.release_stray_claim`); the pool manager sweeps what no replica indexed.

:meth:`WarmStarter.release` runs in passes of an ending sandbox: a WarmPod still assigned to
it is deleted (the pool refills) or, with ``warm.recycle``, published once on
``lss.recycle.<ns>.<warmpod>`` for the recycler (the WarmPod then carries
``RecycleRequested=True``, so later passes do not publish again). :class:`ReadyQueueFeed`
is the component that keeps every replica's queue current: one core-NATS subscription per
replica on the ``warmpod`` hints (every replica needs every hint; the durable consumer would
share them) and one WarmPod list at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime
import enum
import logging
import random
import typing
from collections.abc import Callable
from typing import Any, Final

import msgspec
import nats.aio.msg
import nats.aio.subscription
import prometheus_client

from lss_common import errors
from lss_common.bus import codec, own_writes, publishing
from lss_common.bus import connection as bus_connection
from lss_common.kube import client as client_module
from lss_common.kube import objects, writes
from lss_common.logic import conditions, pod_records, revisions, subjects
from lss_common.models import kinds, messages
from lss_common.models import profile as profile_model
from lss_common.models import sandbox as sandbox_model
from lss_common.models import warmpod as warmpod_model
from lss_common.observability import metrics as shared_metrics
from lss_common.runtime import clock as clock_module
from lss_sandbox_reconciler import (
    adopt,
    apply,
    claim,
    conformance,
    lifecycle,
    merge,
    names,
    plan,
    resolve,
)
from lss_sandbox_reconciler import metrics as metrics_module
from lss_sandbox_reconciler import ready_queue as ready_queue_module
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module

_log = logging.getLogger(__name__)

WARM: Final = shared_metrics.Launch.WARM.value
COLD: Final = shared_metrics.Launch.COLD.value

#: The WarmPod condition recording that its sandbox ended and it was published for the
#: recycler (``warm.recycle``): set once, after the publish.
RECYCLE_CONDITION: Final = "RecycleRequested"

#: When the watcher observed the change the current hint is about (set by the handler): the
#: start of the claim's milestones.
HINT_OBSERVED_AT: contextvars.ContextVar[datetime.datetime | None] = contextvars.ContextVar(
    "lss_warm_hint_observed_at", default=None
)

# A claim on a local API server takes milliseconds; a loaded one tens to hundreds.
CLAIM_BUCKETS_SECONDS: Final = (
    0.002,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Milestone(enum.StrEnum):
    """Points of a start, timed from when the watcher observed the change."""

    HINT_RECEIVED = "hint_received"
    CLAIMED = "claimed"
    ADOPTED = "adopted"
    RUNNING = "running"
    """The Running status committed (warm starts: in the same pass)."""


class Result(enum.StrEnum):
    """How a start attempt ended (``llmsafespace_sandbox_warm_claims_total``)."""

    CLAIMED = "claimed"
    CONFLICT = "conflict"
    NO_CANDIDATE = "no_candidate"
    INELIGIBLE = "ineligible"
    EXHAUSTED = "conflicts_exhausted"
    DISCARDED = "discarded"
    RESUMED = "resumed"
    REFUSED = "refused"
    NONCONFORMING = "nonconforming"
    """The claimed pod was not built as the sandbox's pod (a squatter, a patched image): the
    claim is discarded, the sandbox starts cold, the namespace stops claiming for a while."""
    REFUSED_RECENTLY = "refused_recently"
    """Not tried: a warm pod's adoption in the namespace was refused less than
    ``refused_write_retry_seconds`` ago (each attempt would burn a warm pod; a refused CAS
    costs only its write and is retried by the next sandbox)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WarmMetrics:
    """Warm-start metrics on the service's registry."""

    milestone_seconds: prometheus_client.Histogram
    claims_total: prometheus_client.Counter
    released_total: prometheus_client.Counter
    ready_queue_size: prometheus_client.Gauge

    @classmethod
    def register(cls, registry: prometheus_client.CollectorRegistry) -> typing.Self:
        return cls(
            milestone_seconds=prometheus_client.Histogram(
                "llmsafespace_sandbox_claim_milestone_seconds",
                "Watcher observed the change → each milestone of a start (hint_received, "
                "claimed, adopted, running), by launch (warm|cold).",
                ["launch", "milestone"],
                buckets=CLAIM_BUCKETS_SECONDS,
                registry=registry,
            ),
            claims_total=prometheus_client.Counter(
                "llmsafespace_sandbox_warm_claims_total",
                f"Warm claim attempts by result ({', '.join(Result)}).",
                ["result"],
                registry=registry,
            ),
            released_total=prometheus_client.Counter(
                "llmsafespace_sandbox_warm_pods_released_total",
                "WarmPods given back when their sandbox ended, by how (deleted|recycled), "
                "stray claims given back (stray_claim), and claims of running sandboxes "
                "whose warm pod was replaced by a pod of their own (replaced).",
                ["how"],
                registry=registry,
            ),
            ready_queue_size=prometheus_client.Gauge(
                "llmsafespace_sandbox_ready_queue_size",
                "Ready WarmPods this replica knows of (its claim candidates).",
                registry=registry,
            ),
        )


class _Stored(enum.Enum):
    """A claim as the sandbox's stored status shows it (``WarmStarter._stored_claim``)."""

    IN_USE = enum.auto()
    """The status references the claimed WarmPod."""
    NEW = enum.auto()
    """No pod, no WarmPod, not started: the claim can still be resumed."""
    OTHER = enum.auto()
    """Gone, deleting, or started otherwise (another WarmPod, a cold pod)."""
    UNKNOWN = enum.auto()
    """The read failed."""


@dataclasses.dataclass(slots=True)
class _Progress:
    """How far one claim's adoption got (read by its caller on a failure)."""

    adopted: bool = False
    """The pod (and its Service) are the sandbox's now, and the pod can serve it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Started:
    """A warm start that committed: the plan it wrote and what was applied."""

    planned: plan.Plan
    applied: apply.Applied
    warm: bool = True
    """False: no WarmPod could be claimed and the pass went on cold (``applied`` says so)."""


def split_early(
    planned: plan.Plan, *, likely_warm: bool = False
) -> tuple[tuple[plan.Action, ...], tuple[plan.Action, ...]]:
    """The actions a new sandbox needs before its pod whether it starts warm or cold
    (finalizer and the children's creates/replaces other than the pod, its Service and a
    namespace), and the rest.

    The Service's create always goes with the rest: a warm pod comes with a Service of its
    own, and a cold pod does not wait for its Service (``apply.schedule`` runs them in one
    wave). ``likely_warm`` (the ready queue holds a candidate): so does the ServiceAccount's
    — a warm pod runs as its pool's account, so only a cold fallback needs the sandbox's.
    """
    deferred = (
        (plan.Kind.SERVICE, plan.Kind.SERVICE_ACCOUNT) if likely_warm else (plan.Kind.SERVICE,)
    )
    early = tuple(
        a
        for a in planned.actions
        if a.verb is plan.Verb.ADD_FINALIZER
        or (
            a.verb in (plan.Verb.CREATE, plan.Verb.REPLACE)
            and a.kind not in (plan.Kind.POD, plan.Kind.NAMESPACE, *deferred)
        )
    )
    return early, tuple(a for a in planned.actions if a not in early)


@dataclasses.dataclass(frozen=True, slots=True)
class _Resolved:
    spec: merge.EffectiveSpec
    profile: tuple[str, str] | None


def _pod_action(planned: plan.Plan) -> plan.Action | None:
    return next(
        (a for a in planned.actions if a.verb is plan.Verb.CREATE and a.kind is plan.Kind.POD),
        None,
    )


class AdoptionRefused(Exception):
    """The API server refused the adoption of a claimed pod or its Service for good (403, or
    a 422 that is not the patch's failed test)."""


def claimed_pod_deviations(
    pod: dict[str, Any],
    *,
    candidate: ready_queue_module.Candidate,
    expected: dict[str, Any],
    options: settings_module.WarmOptions,
) -> list[str]:
    """Why the adopted ``pod`` is not one the sandbox may run on (``warm.verify_claimed_pods``);
    empty when it is. ``expected``: the spec of the pod the sandbox would get cold."""
    check = options.verify_claimed_pods
    if check is settings_module.ClaimedPodCheck.OFF:
        return []
    found: list[str] = []
    problem = pod_records.mismatch(pod, uid=candidate.pod_uid, spec_hash=candidate.stored_spec_hash)
    if problem is not None:
        found.append(problem)
    if check is settings_module.ClaimedPodCheck.STRICT:
        found.extend(
            conformance.deviations(
                expected,
                pod.get("spec") or {},
                annotations=(pod.get("metadata") or {}).get("annotations") or {},
                injected=frozenset(options.injected_containers),
            )
        )
    return found


class PodNotConforming(Exception):
    """The claimed pod is not the pod the sandbox would get cold (``conformance``)."""

    def __init__(self, pod: dict[str, Any], deviations: list[str]) -> None:
        super().__init__("; ".join(deviations))
        self.pod = pod
        self.deviations = deviations


class WarmStarter:
    """Claims for one reconciler process (its queue is fed by :class:`ReadyQueueFeed`)."""

    def __init__(
        self,
        kube: Callable[[], client_module.Kube],
        *,
        settings: settings_module.SandboxReconcilerSettings,
        clock: clock_module.Clock,
        metrics: WarmMetrics,
        sandbox_metrics: metrics_module.SandboxMetrics,
        queue: ready_queue_module.ReadyQueue,
        publisher: Callable[[], publishing.Publisher] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._options = settings.warm
        self._clock = clock
        self._metrics = metrics
        self._sandbox_metrics = sandbox_metrics
        self.queue = queue
        self._publisher = publisher
        self._rng = rng or random.Random()
        # Per namespace, until when (monotonic) warm starts are not tried: a claim's write
        # was refused there (RBAC, an admission policy), and would be again.
        self._refused_until: dict[str, float] = {}
        # Sandboxes whose replaced warm pod's claim this process gave back (release_replaced
        # reads only once per sandbox); forgotten when the sandbox is released.
        self._replaced: set[str] = set()

    def _refused_recently(self, namespace: str) -> bool:
        until = self._refused_until.get(namespace)
        if until is None:
            return False
        if until <= self._clock.monotonic():
            del self._refused_until[namespace]
            return False
        return True

    def _note_refusal(self, namespace: str) -> None:
        self._refused_until[namespace] = (
            self._clock.monotonic() + self._settings.reconcile.refused_write_retry_seconds
        )

    # -- timing -------------------------------------------------------------------------------

    def _since_hint(self) -> float | None:
        observed = HINT_OBSERVED_AT.get()
        if observed is None:
            return None
        return max((self._clock.now() - observed).total_seconds(), 0.0)

    def _mark(self, launch: str, milestone: Milestone) -> None:
        elapsed = self._since_hint()
        if elapsed is not None:
            self._metrics.milestone_seconds.labels(launch=launch, milestone=milestone).observe(
                elapsed
            )

    def mark_cold(self, planned: plan.Plan) -> None:
        """A pass about to create a cold pod: its hint milestone (Running comes passes later,
        in ``llmsafespace_sandbox_startup_duration_seconds{launch="cold"}``)."""
        if _pod_action(planned) is not None:
            self._mark(COLD, Milestone.HINT_RECEIVED)

    # -- the claim ----------------------------------------------------------------------------

    def _resolve(self, snapshot: plan.Snapshot) -> _Resolved | None:
        """Resolution and merge as the plan did them (it planned a pod, so they succeed)."""
        obj = snapshot.sandbox
        options = self._settings.sandbox
        try:
            runtime = resolve.select_runtime(obj.spec.runtime, candidates=snapshot.runtimes)
            key = resolve.profile_key(obj, shared_namespaces=options.shared_profile_namespaces)
            found: profile_model.SandboxProfile | None = None
            if key is not None:
                found = resolve.check_profile(snapshot.profile, key=key)
            spec = merge.merge_spec(obj, profile=found, runtime=runtime, settings=options)
        except (resolve.ResolveError, merge.SpecConflict):
            return None
        return _Resolved(spec=spec, profile=key)

    async def start(
        self, snapshot: plan.Snapshot, *, planned: plan.Plan, now: datetime.datetime
    ) -> Started | None:
        """Start the sandbox warm if it can; None: apply ``planned`` (cold) instead."""
        if not self._options.enabled:
            return None
        obj = snapshot.sandbox
        current = sandbox_model.status_of(obj)
        pod_action = _pod_action(planned)
        if (
            pod_action is None
            or pod_action.body is None
            or obj.metadata.deletion_timestamp
            or snapshot.children.pod is not None
            or current.warm_pod_ref is not None
            or current.phase not in (None, "", sandbox_model.Phase.PENDING)
        ):
            return None
        self._mark(WARM, Milestone.HINT_RECEIVED)
        owner = owner_module.owner_of(obj, settings=self._settings.sandbox)
        resolved = self._resolve(snapshot)
        if resolved is None or claim.cold_reason(resolved.spec, owner=owner) is not None:
            self._metrics.claims_total.labels(result=Result.INELIGIBLE).inc()
            return None
        if self._refused_recently(obj.metadata.namespace or "") and (
            self.queue.assignment(obj.metadata.uid or "") is None
        ):
            self._metrics.claims_total.labels(result=Result.REFUSED_RECENTLY).inc()
            return None
        wanted = claim.wanted_for(
            obj, spec=resolved.spec, profile=resolved.profile, cold_pod=pod_action.body
        )
        kube = self._kube()
        uid = obj.metadata.uid or ""
        likely_warm = self.queue.assignment(uid) is not None or bool(
            self.queue.candidates(
                wanted.namespace, matches=lambda c: claim.matches(c, wanted=wanted)
            )
        )
        early, rest = split_early(planned, likely_warm=likely_warm)
        # The finalizer and the policies are the same for a warm and a cold start: they are
        # written concurrently with the claim, so the sandbox's deny policy exists before its
        # pod is re-labelled out of the pool's.
        children, claimed = await asyncio.gather(
            apply.apply_plan(
                kube,
                sandbox=obj,
                planned=dataclasses.replace(planned, actions=early, status_changed=False),
                metrics=self._sandbox_metrics,
                strict_creates=snapshot.children_assumed_absent,
            ),
            self._claim_or_resume(kube, wanted=wanted, sandbox_uid=uid, now=now),
            return_exceptions=True,
        )
        if isinstance(claimed, BaseException):
            raise claimed  # no claim was made (or a failed one was discarded already)
        chosen, pod = claimed
        if isinstance(children, BaseException):
            # The claim stays the sandbox's: its pod is untouched (the adoption comes after),
            # and the next pass resumes it (no second CAS). Discarding it here made each
            # retry of a refused write (a quota, an admission policy) claim and delete
            # another warm pod. A sandbox that never gets there (started otherwise) gives it
            # back as a stray claim; the pool manager's sweep is last.
            if isinstance(children, errors.NotFoundError) and chosen is not None:
                # The Sandbox is gone (deleted before its finalizer landed): no pass of it
                # will come to resume the claim or give it back, which left the WarmPod
                # Assigned until the sweep's grace ran out. Given back now, unless the stored
                # sandbox (a fresh read) says it is still new.
                await self._discard(kube, sandbox=obj, chosen=chosen, pod=pod, resumable=True)
            raise children
        if chosen is None:
            return await self._cold(kube, snapshot, planned=planned, early=children, rest=rest)
        self._mark(WARM, Milestone.CLAIMED)
        progress = _Progress()
        try:
            return await self._adopt(
                kube,
                snapshot=snapshot,
                owner=owner,
                chosen=chosen,
                pod=pod,
                expected=pod_action.body.get("spec") or {},
                children=children,
                early=early,
                now=now,
                progress=progress,
            )
        except PodNotConforming as error:
            # Whoever made or changed this pod is not the pool manager: it and its WarmPod go,
            # the sandbox starts cold, and the namespace's next sandboxes skip the claim for
            # a while (its other warm pods may be the same).
            # Unconditionally (not ``_discard``, which keeps a claim whose sandbox it cannot
            # read): the pod carries the sandbox's labels since the adoption.
            self._metrics.claims_total.labels(result=Result.DISCARDED).inc()
            released = await asyncio.shield(
                adopt.discard_claim(
                    kube,
                    candidate=chosen,
                    pod_uid=(error.pod.get("metadata") or {}).get("uid"),
                    sandbox_uid=obj.metadata.uid or "",
                )
            )
            if released:
                self.queue.remove(chosen.key)
            self._note_refusal(chosen.namespace)
            self._metrics.claims_total.labels(result=Result.NONCONFORMING).inc()
            _log.error(
                "claimed warm pod is not the sandbox's pod; discarded, starting cold: %s",
                error,
                extra={"warm_pod": chosen.name, "deviations": error.deviations},
            )
            return await self._cold(kube, snapshot, planned=planned, early=children, rest=rest)
        except AdoptionRefused as error:
            refusal = error
        except BaseException as error:
            # Adopted and able to serve, the pod is the sandbox's: a failure after that (a
            # 409 on the status write, an outage) keeps the claim while the stored sandbox is
            # still new, and the next pass resumes it without a second CAS (discarding it
            # deleted a warm pod per conflicting pass). So does a transient failure before
            # (a 5xx, a timeout): the next pass resumes the claim — discarding it deleted the
            # pod another replica's pass, resuming the same claim, was about to run the
            # sandbox on. If another pass started the sandbox meanwhile (another replica's
            # claim won), the claim goes at once: its pod carries the sandbox's labels.
            await self._discard(
                kube,
                sandbox=obj,
                chosen=chosen,
                pod=pod,
                resumable=progress.adopted or _is_transient(error),
            )
            raise
        # The adoption was refused for good (RBAC, an admission policy), like a refused CAS:
        # every claim here would be. Retried, each pass claimed and discarded another warm
        # pod and the sandbox never ran. The claim goes (its pod may carry the sandbox's
        # labels if only the Service's patch was refused), the sandbox starts cold in this
        # pass, and the namespace's next sandboxes skip the claim for a while.
        await self._discard(kube, sandbox=obj, chosen=chosen, pod=None)
        self._note_refusal(chosen.namespace)
        self._metrics.claims_total.labels(result=Result.REFUSED).inc()
        _log.warning(
            "warm pod adoption refused; starting cold",
            extra={"warm_pod": chosen.name, "error": str(refusal.__cause__)},
        )
        return await self._cold(kube, snapshot, planned=planned, early=children, rest=rest)

    async def _cold(
        self,
        kube: client_module.Kube,
        snapshot: plan.Snapshot,
        *,
        planned: plan.Plan,
        early: apply.Applied,
        rest: tuple[plan.Action, ...],
    ) -> Started:
        """Cold after all: the first wave's children are there; the pod and the status (the
        rest of the cold plan) are written now."""
        self.mark_cold(planned)
        cold = await apply.apply_plan(
            kube,
            sandbox=early.sandbox,
            planned=dataclasses.replace(planned, actions=rest),
            metrics=self._sandbox_metrics,
            strict_creates=snapshot.children_assumed_absent,
        )
        return Started(
            planned=planned,
            applied=dataclasses.replace(cold, writes=early.writes + cold.writes),
            warm=False,
        )

    async def _discard(
        self,
        kube: client_module.Kube,
        *,
        sandbox: sandbox_model.Sandbox,
        chosen: ready_queue_module.Candidate,
        pod: dict[str, Any] | None,
        resumable: bool = False,
    ) -> None:
        """Give back a failed claim, unless the stored sandbox says to keep it."""
        stored = await self._stored_claim(kube, sandbox=sandbox, chosen=chosen)
        if stored is _Stored.IN_USE or stored is _Stored.UNKNOWN:
            # In use: another pass (a resumed claim on another replica) completed this same
            # claim, and the sandbox runs on this pod. Unknown: a later pass or the pool
            # manager's sweep decides.
            return
        if stored is _Stored.NEW and resumable:
            return
        self._metrics.claims_total.labels(result=Result.DISCARDED).inc()
        pod_uid = ((pod or {}).get("metadata") or {}).get("uid")
        released = await asyncio.shield(
            adopt.discard_claim(
                kube, candidate=chosen, pod_uid=pod_uid, sandbox_uid=sandbox.metadata.uid or ""
            )
        )
        if released:
            self.queue.remove(chosen.key)
        # Else the WarmPod stays Assigned and indexed: a later pass (release_stray_claim)
        # or the pool manager's sweep finishes the release, its pod first.

    async def _stored_claim(
        self,
        kube: client_module.Kube,
        *,
        sandbox: sandbox_model.Sandbox,
        chosen: ready_queue_module.Candidate,
    ) -> _Stored:
        """What the sandbox's stored status (a fresh read) says of the claim of ``chosen``."""
        try:
            current = await _stored(kube, sandbox)
        except errors.LssError:
            return _Stored.UNKNOWN
        if current is None:
            return _Stored.OTHER
        status = sandbox_model.status_of(current)
        ref = status.warm_pod_ref
        if ref is not None:
            here = (ref.namespace or current.metadata.namespace, ref.name)
            return _Stored.IN_USE if here == (chosen.namespace, chosen.name) else _Stored.OTHER
        if (
            current.metadata.deletion_timestamp
            or status.pod_name
            or status.phase not in (None, "", sandbox_model.Phase.PENDING)
        ):
            return _Stored.OTHER
        return _Stored.NEW

    async def _claim_or_resume(
        self,
        kube: client_module.Kube,
        *,
        wanted: claim.Wanted,
        sandbox_uid: str,
        now: datetime.datetime,
    ) -> tuple[ready_queue_module.Candidate | None, dict[str, Any] | None]:
        """A claim this replica made earlier for the sandbox (an interrupted pass), or a new one."""
        resumed = self.queue.assignment(sandbox_uid)
        if resumed is None:
            return await self._claim(kube, wanted=wanted, sandbox_uid=sandbox_uid, now=now)
        chosen = ready_queue_module.Candidate(
            namespace=resumed.namespace,
            name=resumed.name,
            uid=resumed.uid,
            resource_version="",
            pool="",
            pod_name=resumed.pod_name,
            spec_hash=wanted.spec_hash,
            pod_uid=resumed.pod_uid,
            stored_spec_hash=resumed.stored_spec_hash,
            record=warmpod_model.WarmPodSpec(
                pool_ref=warmpod_model.PoolRef(name=""),
                runtime=wanted.runtime,
                security_level=wanted.security_level,
                resources=wanted.resources,
            ),
        )
        pod = await adopt.get_pod(kube, namespace=chosen.namespace, name=chosen.pod_name)
        if pod is not None and (pod.get("metadata") or {}).get("deletionTimestamp"):
            # A claim kept only for its pod's deletion (a discard whose adopted pod still
            # terminates): nothing to resume. Resumed, each pass discarded it again until
            # the pod was gone — for ever on a node that lost contact. Another claim
            # instead; the old WarmPod goes with its pod (the sweep).
            return await self._claim(kube, wanted=wanted, sandbox_uid=sandbox_uid, now=now)
        self._metrics.claims_total.labels(result=Result.RESUMED).inc()
        return chosen, pod

    async def _claim(
        self,
        kube: client_module.Kube,
        *,
        wanted: claim.Wanted,
        sandbox_uid: str,
        now: datetime.datetime,
    ) -> tuple[ready_queue_module.Candidate | None, dict[str, Any] | None]:
        """The CAS on picked candidates until one wins or conflicts run out."""
        conflicts = 0
        while conflicts < self._options.max_conflicts:
            candidates = self.queue.candidates(
                wanted.namespace, matches=lambda c: claim.matches(c, wanted=wanted)
            )
            chosen = claim.pick(candidates, spread=self._options.pick_spread, rng=self._rng)
            if chosen is None:
                self._metrics.claims_total.labels(result=Result.NO_CANDIDATE).inc()
                return None, None
            # Taken out of the queue before the await: a concurrent pass of this replica
            # never tries the same WarmPod; its next hint puts it back if still Ready.
            self.queue.forget(chosen.key)
            try:
                cas = await adopt.claim_warm_pod(
                    kube, candidate=chosen, sandbox_uid=sandbox_uid, now=now
                )
            except (errors.ConflictError, errors.NotFoundError):
                conflicts += 1
                self._metrics.claims_total.labels(result=Result.CONFLICT).inc()
                continue
            except (errors.PermanentError, errors.InvalidObjectError) as error:
                # Refused for good (RBAC, an admission policy): the next candidate's CAS
                # would be refused the same way, and the warm start is only a shortcut. The
                # sandbox starts cold; the WarmPod, unchanged, stays a candidate.
                self.queue.restore(chosen)
                self._metrics.claims_total.labels(result=Result.REFUSED).inc()
                _log.warning(
                    "warm claim refused; starting cold",
                    extra={"warm_pod": chosen.name, "error": str(error)},
                )
                return None, None
            # The committed WarmPod (Assigned): the queue's assignment index learns the claim
            # now, and the feed skips the hint this write causes (no read behind the claim).
            self.queue.offer(cas)
            self._metrics.claims_total.labels(result=Result.CLAIMED).inc()
            # The pod is not read: the adoption's answer is the pod (one request less).
            return chosen, None
        self._metrics.claims_total.labels(result=Result.EXHAUSTED).inc()
        return None, None

    async def _adopt(
        self,
        kube: client_module.Kube,
        *,
        snapshot: plan.Snapshot,
        owner: owner_module.Owner,
        chosen: ready_queue_module.Candidate,
        pod: dict[str, Any] | None,
        expected: dict[str, Any],
        children: apply.Applied,
        early: tuple[plan.Action, ...],
        now: datetime.datetime,
        progress: _Progress,
    ) -> Started:
        """Adoption, then the Running status (see the module docstring).

        ``pod``: the claimed pod as read (a resumed claim), or None: not read, the adoption's
        answer is the pod. ``expected``: the spec of the pod the sandbox would get cold; the
        adopted pod must conform to it (``PodNotConforming``).
        """
        adopting = pod is None or not owner_module.is_owned_by(pod, owner=owner)
        if adopting:
            self._sandbox_metrics.count_write(
                kind=metrics_module.WriteKind.POD, verb=metrics_module.WriteVerb.PATCH
            )
        self._sandbox_metrics.count_write(
            kind=metrics_module.WriteKind.SERVICE, verb=metrics_module.WriteVerb.PATCH
        )
        # The pod and the Service prepared with it are adopted together (one round trip).
        adopted, warm_service = await asyncio.gather(
            adopt.adopt_pod(kube, candidate=chosen, owner=owner) if adopting else _given(pod),
            adopt.adopt_service(kube, candidate=chosen, owner=owner),
            return_exceptions=True,
        )
        if isinstance(warm_service, errors.PermanentError):
            raise AdoptionRefused(f"Service of {chosen.pod_name}") from warm_service
        if isinstance(warm_service, BaseException):
            raise warm_service
        if warm_service is not None and adopt.is_warm_pods(warm_service, warm_pod_uid=chosen.uid):
            # Its patch answered 422 and the Service is unchanged: refused, not raced.
            raise AdoptionRefused(f"Service of {chosen.pod_name}")
        if isinstance(adopted, errors.PermanentError):
            raise AdoptionRefused(f"pod {chosen.pod_name}") from adopted
        if isinstance(adopted, errors.InvalidObjectError):
            # The patch's test failed: the pod is no longer the WarmPod's. Another pass of
            # this same sandbox (its claim resumed on another replica) may have adopted it:
            # then it is the sandbox's, and must not be discarded as a failed claim. Still
            # the claimed WarmPod's, the test passed and the patch itself was refused (a 422
            # from an admission policy).
            now_owned = await adopt.get_pod(kube, namespace=chosen.namespace, name=chosen.pod_name)
            if now_owned is not None and owner_module.is_owned_by(now_owned, owner=owner):
                adopted = now_owned
            elif now_owned is not None and adopt.is_warm_pods(now_owned, warm_pod_uid=chosen.uid):
                raise AdoptionRefused(f"pod {chosen.pod_name}") from adopted
        if isinstance(adopted, errors.NotFoundError | errors.InvalidObjectError):
            # Gone, or no longer the claimed WarmPod's (the patch's test failed).
            raise errors.ConflictError(
                f"WarmPod {chosen.namespace}/{chosen.name}: its pod {chosen.pod_name} "
                f"cannot be adopted: {adopted}"
            ) from adopted
        if isinstance(adopted, BaseException):
            raise adopted
        pod = adopted
        deviations = claimed_pod_deviations(
            pod, candidate=chosen, expected=expected, options=self._options
        )
        if deviations:
            raise PodNotConforming(pod, deviations)
        obj = snapshot.sandbox
        current = sandbox_model.status_of(obj)
        claimed_status = msgspec.structs.replace(
            current,
            warm_pod_ref=sandbox_model.WarmPodRef(name=chosen.name, namespace=chosen.namespace),
        )
        warm_snapshot = dataclasses.replace(
            snapshot,
            sandbox=msgspec.structs.replace(obj, status=claimed_status),
            children=dataclasses.replace(snapshot.children, pod=pod, warm_service=warm_service),
        )
        planned = plan.plan_sandbox(warm_snapshot, now=now, settings=self._settings.sandbox)
        if _pod_action(planned) is not None or planned.status.phase != sandbox_model.Phase.RUNNING:
            raise errors.ConflictError(
                f"WarmPod {chosen.namespace}/{chosen.name}: its pod cannot serve the sandbox "
                f"({planned.status.phase})"
            )
        # The pod is the sandbox's and can serve it: from here a failure keeps the claim.
        progress.adopted = True
        # Whatever the warm plan writes beyond what the early wave wrote (normally nothing:
        # the children do not depend on which pod serves) goes with the adoption.
        remaining = tuple(a for a in planned.actions if a not in early)
        applied = await apply.apply_plan(
            kube,
            sandbox=children.sandbox,
            planned=dataclasses.replace(planned, actions=remaining, status_changed=False),
            metrics=self._sandbox_metrics,
            strict_creates=snapshot.children_assumed_absent,
        )
        self._mark(WARM, Milestone.ADOPTED)
        self._sandbox_metrics.count_write(
            kind=metrics_module.WriteKind.SANDBOX_STATUS,
            verb=metrics_module.WriteVerb.UPDATE_STATUS,
        )
        written = await writes.update_status(
            kube,
            resource=objects.SANDBOX,
            obj=applied.sandbox,
            status=planned.status,
            decode=sandbox_model.decode,
        )
        self._mark(WARM, Milestone.RUNNING)
        _log.info(
            "sandbox started warm",
            extra={"warm_pod": chosen.name, "pod": (pod.get("metadata") or {}).get("name")},
        )
        return Started(
            planned=planned,
            applied=dataclasses.replace(
                applied,
                sandbox=written,
                # The CAS, the adoption patches (pod unless resumed adopted, Service), status.
                writes=children.writes + applied.writes + 3 + int(adopting),
                status_written=True,
            ),
        )

    # -- the end ------------------------------------------------------------------------------

    async def release(self, snapshot: plan.Snapshot) -> None:
        """Give back the WarmPod of an ending sandbox (deleted, or handed to the recycler)."""
        obj = snapshot.sandbox
        status = sandbox_model.status_of(obj)
        ref = status.warm_pod_ref
        if ref is None or not (
            obj.metadata.deletion_timestamp or lifecycle.is_terminal(status.phase)
        ):
            return
        namespace = ref.namespace or obj.metadata.namespace or ""
        kube = self._kube()
        found = await adopt.release_warm_pod(
            kube, namespace=namespace, name=ref.name, sandbox_uid=obj.metadata.uid or ""
        )
        if found is None:
            return
        if self._options.recycle and self._publisher is not None:
            if conditions.is_condition_true(
                warmpod_model.status_of(found).conditions, condition_type=RECYCLE_CONDITION
            ):
                return  # handed over by an earlier pass: the recycler's now
            subject = subjects.recycle_subject(
                namespace, warmpod=ref.name, prefix=self._settings.nats.subject_prefix
            )
            await self._publisher().publish(
                messages.ChangeEvent(
                    kind=kinds.WARM_POD.singular,
                    namespace=namespace,
                    name=ref.name,
                    uid=found.metadata.uid,
                    resource_version=found.metadata.resource_version,
                    event_type="MODIFIED",
                    observed_at=self._clock.now(),
                ),
                subject=subject,
                msg_id=f"recycle/{namespace}/{ref.name}/{found.metadata.uid}",
            )
            # Every later pass of the ending sandbox would publish again (Nats-Msg-Id dedupes
            # only within the stream's window): the hand-off is recorded on the WarmPod, after
            # the publish so that a crash in between publishes again rather than never.
            with contextlib.suppress(errors.ConflictError, errors.NotFoundError):
                await writes.set_condition(
                    kube,
                    resource=objects.WARM_POD,
                    obj=found,
                    condition_type=RECYCLE_CONDITION,
                    status=conditions.TRUE,
                    reason="SandboxEnded",
                    message=f"sandbox {namespace}/{obj.metadata.name} ended; handed to the "
                    f"recycler on {subject}",
                    now=self._clock.now(),
                )
            self._metrics.released_total.labels(how="recycled").inc()
            return
        if await adopt.delete_warm_pod(
            kube, namespace=namespace, name=ref.name, uid=found.metadata.uid or ""
        ):
            self._metrics.released_total.labels(how="deleted").inc()
            _log.info("warm pod released", extra={"warm_pod": ref.name})

    async def release_replaced(self, snapshot: plan.Snapshot) -> None:
        """Give back the WarmPod of a running sandbox whose warm pod was replaced by its own.

        The warm pod died or was deleted while the sandbox ran, and the sandbox now runs on a
        cold pod of its own (``names.pod_name``); ``status.warmPodRef`` stays, as the record
        of how it started. Its WarmPod stayed Assigned for the sandbox's whole life, holding a
        slot of the pool (``maxSize``) with no pod, and blocking the pool's deletion (found
        by bench/chaos.py). It is deleted once its pod is gone or going (a pod that still
        runs is never left without its WarmPod). Reads only in that state, once per sandbox
        and process.
        """
        obj = snapshot.sandbox
        status = sandbox_model.status_of(obj)
        ref = status.warm_pod_ref
        uid = obj.metadata.uid or ""
        if (
            ref is None
            or uid in self._replaced
            or obj.metadata.deletion_timestamp
            or lifecycle.is_terminal(status.phase)
        ):
            return
        try:
            owner = owner_module.owner_of(obj, settings=self._settings.sandbox)
        except merge.SpecConflict:
            return
        if status.pod_name != names.pod_name(owner.name):
            return  # still on its warm pod (or not started)
        kube = self._kube()
        namespace = ref.namespace or obj.metadata.namespace or ""
        held = await adopt.release_warm_pod(
            kube, namespace=namespace, name=ref.name, sandbox_uid=uid
        )
        if held is None:
            self._replaced.add(uid)
            return
        pod_name = warmpod_model.status_of(held).pod_name
        if pod_name:
            pod = await adopt.get_pod(kube, namespace=namespace, name=pod_name)
            if pod is not None and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                return  # still there: looked at again by a later pass
        if await adopt.delete_warm_pod(
            kube, namespace=namespace, name=ref.name, uid=held.metadata.uid or ""
        ):
            self._metrics.released_total.labels(how="replaced").inc()
            _log.info("claim of a replaced warm pod released", extra={"warm_pod": ref.name})
        self.queue.remove((namespace, ref.name))
        self._replaced.add(uid)

    def forget_replaced(self, sandbox_uid: str) -> None:
        self._replaced.discard(sandbox_uid)

    async def release_stray_claim(self, snapshot: plan.Snapshot) -> tuple[dict[str, Any], ...]:
        """Give back a WarmPod Assigned to the sandbox that it can no longer use; returns the
        pods the pass's plan must release itself (see below).

        A pass killed between its CAS and the sandbox's status leaves the WarmPod Assigned
        (so does a discarded claim whose pod could not be deleted yet). While the sandbox is
        new, the next pass resumes that claim (``_claim_or_resume``); once it is not (it
        ended, or started from another pod), the claim is stray (``claim.is_stray_claim``):
        its WarmPod is deleted, and its pod too unless the sandbox runs on it. Found through
        this replica's assignment index (no read unless there is one); the pool manager's
        sweep is the backstop for claims no replica indexed.

        A sandbox being released (deleted, or ended) whose stray claim's pod was adopted by
        it (its labels: its Service and policies select it) gets that pod back: the plan
        deletes it and keeps the sandbox's policies and finalizer until it is gone, like its
        own pod. The WarmPod stays (it is what names the pod) until then.
        """
        obj = snapshot.sandbox
        uid = obj.metadata.uid or ""
        found = self.queue.assignment(uid)
        if found is None or not claim.is_stray_claim(obj, warm_pod=(found.namespace, found.name)):
            return ()
        kube = self._kube()
        held = await adopt.release_warm_pod(
            kube, namespace=found.namespace, name=found.name, sandbox_uid=uid
        )
        if held is None:
            self.queue.remove((found.namespace, found.name))
            return ()
        pod_name = warmpod_model.status_of(held).pod_name or found.pod_name
        pod = await adopt.get_pod(kube, namespace=found.namespace, name=pod_name)
        status = sandbox_model.status_of(obj)
        releasing = bool(obj.metadata.deletion_timestamp) or lifecycle.is_terminal(status.phase)
        if (
            releasing
            and pod is not None
            and pod_name != status.pod_name
            and adopt.is_labelled_for(pod, sandbox_uid=uid)
        ):
            return (pod,)
        if claim.may_discard_pod(
            pod,
            warm_pod_uid=held.metadata.uid or "",
            sandbox_uid=uid,
            sandbox_pod_name=status.pod_name,
        ):
            assert pod is not None
            with contextlib.suppress(errors.NotFoundError, errors.ConflictError):
                await writes.delete_if_present(
                    kube,
                    resource=objects.POD,
                    namespace=found.namespace,
                    name=pod_name,
                    uid=(pod.get("metadata") or {}).get("uid"),
                )
        if await adopt.delete_warm_pod(
            kube, namespace=found.namespace, name=found.name, uid=held.metadata.uid or ""
        ):
            self._metrics.released_total.labels(how="stray_claim").inc()
            _log.info("stray claim released", extra={"warm_pod": found.name})
        self.queue.remove((found.namespace, found.name))
        return ()

    async def release_vanished(self, sandbox_uid: str) -> None:
        """Give back the claim this replica holds for a sandbox that vanished during its pass.

        Another replica may delete a sandbox (release its children, remove its finalizer)
        while this one adopts a warm pod for it, before the claim is in the sandbox's status:
        the other replica's queue may not know the claim yet, this pass's status write answers
        404, and no pass of the gone sandbox comes to give the claim back, which left the
        WarmPod Assigned until the pool manager's sweep (found by bench/chaos.py). Its pod goes
        with it: owned by the WarmPod, or by the gone Sandbox once adopted.
        """
        found = self.queue.assignment(sandbox_uid)
        if found is None:
            return
        kube = self._kube()
        held = await adopt.release_warm_pod(
            kube, namespace=found.namespace, name=found.name, sandbox_uid=sandbox_uid
        )
        if held is not None and await adopt.delete_warm_pod(
            kube, namespace=found.namespace, name=found.name, uid=held.metadata.uid or ""
        ):
            self._metrics.released_total.labels(how="stray_claim").inc()
            _log.info("claim of a vanished sandbox released", extra={"warm_pod": found.name})
        self.queue.remove((found.namespace, found.name))

    async def remove_stray_cold_pod(self, snapshot: plan.Snapshot) -> None:
        """Delete a cold pod of a sandbox that started warm on another replica's pass.

        Two passes of one new sandbox may run on two replicas: one warm, one cold. The warm
        status wins or loses the status write; when it wins, the cold pod (our labels, our
        name) would otherwise serve beside the warm one.
        """
        obj = snapshot.sandbox
        status = sandbox_model.status_of(obj)
        if status.warm_pod_ref is None or obj.metadata.deletion_timestamp:
            return
        try:
            owner = owner_module.owner_of(obj, settings=self._settings.sandbox)
        except merge.SpecConflict:
            return
        cold_name = names.pod_name(owner.name)
        if status.pod_name == cold_name:
            return  # the warm pod died and the cold one replaced it: it is the sandbox's pod
        warm = snapshot.children.pod
        if warm is None or (warm.get("metadata") or {}).get("deletionTimestamp"):
            # The warm pod is gone or going: the cold pod is (about to be) its replacement,
            # whose status write may have lost a race with another replica's pass that still
            # names the warm pod. Deleting it made the sandbox wait another pod cycle.
            return
        kube = self._kube()
        if snapshot.cold_pod_read:
            stray = snapshot.cold_pod  # observe read it with the Sandbox
        else:
            stray = await adopt.get_pod(kube, namespace=owner.child_namespace, name=cold_name)
        if stray is None or not owner_module.is_owned_by(stray, owner=owner):
            return
        if not await self._still_served_warm(kube, obj, cold_name=cold_name):
            return
        with contextlib.suppress(errors.NotFoundError, errors.ConflictError):
            await writes.delete_if_present(
                kube,
                resource=objects.POD,
                namespace=owner.child_namespace,
                name=cold_name,
                uid=(stray.get("metadata") or {}).get("uid"),
            )
        _log.info("stray cold pod deleted", extra={"pod": cold_name})

    async def _still_served_warm(
        self, kube: client_module.Kube, obj: sandbox_model.Sandbox, *, cold_name: str
    ) -> bool:
        """Whether the stored Sandbox (a consistent read) still runs on its warm pod. The
        pass's read may come from the watch cache: a cold pod that has just replaced a dead
        warm pod (another replica's pass) would otherwise be taken for a stray and deleted,
        killing the sandbox's processes. Read only when a stray is found (rare)."""
        current = await _stored(kube, obj)
        if current is None:
            return False
        status = sandbox_model.status_of(current)
        return status.warm_pod_ref is not None and status.pod_name != cold_name


def _is_transient(error: BaseException) -> bool:
    """A failure that says nothing about the claim (an outage, a timeout), not one that
    says it cannot be completed (a conflict: the pod is gone or no longer the WarmPod's)."""
    return isinstance(error, errors.RetryableError) and not isinstance(error, errors.ConflictError)


async def _stored(
    kube: client_module.Kube, sandbox: sandbox_model.Sandbox
) -> sandbox_model.Sandbox | None:
    """The Sandbox as stored now (a consistent read), or None when it is gone or a namesake
    (another UID) holds its name."""
    current = await objects.get_or_none(
        kube,
        resource=objects.SANDBOX,
        namespace=sandbox.metadata.namespace or "",
        name=sandbox.metadata.name or "",
        decode=sandbox_model.decode,
    )
    if current is None or current.metadata.uid != sandbox.metadata.uid:
        return None
    return current


async def _given(pod: dict[str, Any] | None) -> dict[str, Any]:
    assert pod is not None
    return pod


class ReadyQueueFeed:
    """Keeps a :class:`ready_queue.ReadyQueue` current from ``warmpod`` hints (a component).

    ``start()`` subscribes (core NATS, no durable state: a missed hint is covered by the
    watcher's periodic resync) and then lists every WarmPod once. Each hint re-reads its
    WarmPod (one get; hints of one key are coalesced so reads never apply out of order).
    """

    def __init__(
        self,
        nats_connection: bus_connection.NatsConnection,
        kube: Callable[[], client_module.Kube],
        *,
        queue: ready_queue_module.ReadyQueue,
        settings: settings_module.SandboxReconcilerSettings,
        metrics: WarmMetrics,
    ) -> None:
        self._nats = nats_connection
        self._kube = kube
        self._queue = queue
        self._prefix = settings.nats.subject_prefix
        self._metrics = metrics
        self._limit = asyncio.Semaphore(settings.warm.feed_concurrency)
        self._subscription: nats.aio.subscription.Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[ready_queue_module.Key] = set()
        self._dirty: set[ready_queue_module.Key] = set()
        # The version the next read of a key must show at least (its latest hint's).
        self._versions: dict[ready_queue_module.Key, str] = {}
        self._ready = False

    @property
    def name(self) -> str:
        return "ready-queue"

    async def start(self) -> None:
        client = self._nats.connection.client
        self._subscription = await client.subscribe(
            subjects.events_filter(kinds.WARM_POD.singular, prefix=self._prefix),
            cb=self._on_message,
        )
        found = await objects.list_objects(
            self._kube(), resource=objects.WARM_POD, decode=warmpod_model.decode
        )
        for item in found.items:
            self._queue.offer(item)
        self._metrics.ready_queue_size.set(len(self._queue))
        self._ready = True
        _log.info("ready queue rebuilt", extra={"ready_warm_pods": len(self._queue)})

    async def stop(self) -> None:
        self._ready = False
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def is_ready(self) -> bool:
        return self._ready

    async def _on_message(self, msg: nats.aio.msg.Msg) -> None:
        try:
            key = subjects.parse_event_subject(msg.subject, prefix=self._prefix)
        except errors.InvalidMessage:
            return
        if key.namespace is None:
            return
        if not _needs_read(msg.data, written=self._kube().written):
            return
        self.refresh((key.namespace, key.name), version=_hint_version(msg.data))

    def refresh(self, key: ready_queue_module.Key, *, version: str | None = None) -> None:
        """Re-read the WarmPod ``key`` soon (coalesced with a read already running).

        ``version``: the resourceVersion the hint announced; the read is then served by the
        API server's watch cache at that version or newer instead of by etcd. Without one
        (an unreadable hint) the next read is a consistent one.
        """
        if version is None:
            self._versions.pop(key, None)
        else:
            self._versions[key] = version
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        task = asyncio.create_task(self._refresh(key), name=f"ready-queue {key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, key: ready_queue_module.Key) -> None:
        try:
            while True:
                self._dirty.discard(key)
                version = self._versions.pop(key, None)
                try:
                    async with self._limit:
                        found = await objects.get_object(
                            self._kube(),
                            resource=objects.WARM_POD,
                            namespace=key[0],
                            name=key[1],
                            not_older_than=version,
                            decode=warmpod_model.decode,
                        )
                except errors.NotFoundError:
                    self._queue.remove(key)
                except errors.LssError as error:
                    # The next hint (or the watcher's resync) reads it again.
                    _log.warning("warm pod not read", extra={"error": str(error)})
                else:
                    self._queue.offer(found)
                self._metrics.ready_queue_size.set(len(self._queue))
                if key not in self._dirty:
                    return
        finally:
            self._running.discard(key)


def _hint_version(data: bytes) -> str | None:
    """The WarmPod's resourceVersion a ``warmpod`` hint announces; None for an unreadable
    hint or one about its pod (another resource's version)."""
    try:
        event = codec.decode(data, message_type=messages.ChangeEvent)
    except errors.InvalidMessage:
        return None
    return event.resource_version if event.child is None else None


def _needs_read(data: bytes, *, written: revisions.WrittenRevisions | None) -> bool:
    """Whether a ``warmpod`` hint may change what the queue holds for its WarmPod.

    Not when it announces only a change of the WarmPod's pod: claimability is the WarmPod's
    status (Ready/Assigned), written by the pool manager after its pod changes, and a claim
    reads the pod anyway. Not when it announces this process's own write (the claim's CAS):
    the write's response was offered to the queue already (``own_writes`` rules: never a
    deletion, never a resync).
    """
    try:
        event = codec.decode(data, message_type=messages.ChangeEvent)
    except errors.InvalidMessage:
        return True  # read the WarmPod: the cheap way to be sure
    if event.child is not None and event.child.resource == "pod":
        return False
    return not own_writes.is_own_write(event, written=written)
