"""How many WarmPods a pool should create or delete now (pure: no I/O, ``now`` explicit).

Vocabulary: *available* = Ready, *assigned* = claimed by a sandbox, *pending* = created but
not Ready yet (including creations this replica made that the observed list does not show
yet), *unassigned* = available + pending. ``minSize`` is the floor of unassigned pods (the
seed filled ``available`` up to it and ignored pending ones: INVENTORY §10.5.17).

Rules, in order:

1. WarmPods being deleted, or whose deletion this replica already asked for, are gone.
   Failed and Terminating ones are deleted (their pods died; the warmpod handler usually got
   there first). Pending and Ready ones recorded from an old pool configuration are deleted
   (a claim matches the WarmPod's own record, so they are only wasted capacity).
2. TTL: a Ready WarmPod idle for ``ttl`` seconds or more is deleted (``ttl`` 0: never).
3. Wanted unassigned = ``minSize``, or with autoscaling ``max(minSize, ceil(assigned /
   (target/100)) - assigned)`` — the seed's desired total, kept as a count of unassigned pods
   — and never more than ``maxSize - assigned``.
4. Fewer unassigned than wanted: create the difference, capped by ``maxSize`` minus every
   WarmPod that exists (the seed compared ``available``, and only when autoscaling), by the
   free slots (``names``: slot names make a second replica's identical create fail with
   AlreadyExists), and by the pool's token bucket (a drained pool refills at the configured
   rate). Whatever the bucket withholds is requeued for when tokens return. While the
   pool's preload scripts keep failing, ``max_creates`` (``preload.creation_allowance``)
   allows one WarmPod at a time, after a growing delay.
5. More unassigned than wanted: delete the surplus among Ready WarmPods, oldest first (by
   creation). With autoscaling this waits until ``scaleDownDelay`` seconds after the last
   scaling operation; ``0`` means no delay (the seed replaced 0 by 300). More WarmPods than
   ``maxSize`` (it was lowered) are removed at once, delay or not.

The expectations gate (:class:`Expectations`) remembers this replica's own in-flight creates
and deletes for a bounded time, so a view that does not show them yet (a lagging cache or
list) neither repeats a create nor counts a deleted pod as supply.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence

from lss_common.models import warmpod as warmpod_model
from lss_pool_manager import names

Phase = warmpod_model.Phase


class Operation(enum.StrEnum):
    """A scaling operation (metric label ``operation``)."""

    UP = "up"
    DOWN = "down"
    AUTOSCALE_UP = "autoscale_up"
    AUTOSCALE_DOWN = "autoscale_down"


class DeleteReason(enum.StrEnum):
    """Why a WarmPod is deleted (metric label ``reason``)."""

    SCALE_DOWN = "scale_down"
    OVER_MAX_SIZE = "over_max_size"
    EXPIRED = "expired"
    OUTDATED = "outdated"
    POD_FAILED = "pod_failed"
    POOL_DELETION = "pool_deletion"
    PRELOAD_FAILED = "preload_failed"
    LEAKED_CLAIM = "leaked_claim"
    UNVERIFIED = "unverified"
    """Its pod is not (or no longer) the pod it recorded at creation (``lifecycle``)."""


class Limit(enum.StrEnum):
    """What kept a pool from having as many unassigned pods as it wants."""

    MAX_SIZE = "max_size"
    RATE = "rate"
    SLOTS = "slots"
    PRELOAD_BACKOFF = "preload_backoff"


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """The sizing part of a WarmPool spec, with defaults applied."""

    min_size: int
    max_size: int = 0
    """0: unlimited."""
    ttl_seconds: int = 0
    """0: never expires."""
    autoscaling: bool = False
    target_utilization: int = 80
    scale_down_delay_seconds: int = 300


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """One observed WarmPod of the pool."""

    name: str
    uid: str
    phase: str
    """``status.phase``; empty (just created, no status yet) counts as Pending."""
    created_at: datetime.datetime
    idle_since: datetime.datetime | None = None
    """When it last became Ready (TTL clock); None if never."""
    deleting: bool = False
    outdated: bool = False
    refused: bool = False
    """Its pod was refused (a quota, an admission policy): it waits, podless, and is the first
    to go when the pool shrinks."""
    resource_version: str = ""
    """Deletions decided from this observation apply only to this version of the WarmPod."""
    failure: DeleteReason = DeleteReason.POD_FAILED
    """Why it is Failed, when it is (its preload, or its pod): the pool pass and the
    WarmPod's own pass, whichever deletes it first, count the same reason."""


@dataclasses.dataclass(frozen=True, slots=True)
class Deletion:
    """Delete this WarmPod (preconditions: this UID and, when known, this resourceVersion:
    a WarmPod claimed since it was observed is never deleted for a stale reason)."""

    name: str
    uid: str
    reason: DeleteReason
    resource_version: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate_per_second``; one token per create."""

    capacity: int
    rate_per_second: float
    tokens: float
    updated_at: datetime.datetime | None = None

    @classmethod
    def full(cls, *, capacity: int, rate_per_second: float) -> TokenBucket:
        if capacity < 1 or rate_per_second <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and a positive rate")
        return cls(capacity=capacity, rate_per_second=rate_per_second, tokens=float(capacity))

    def refilled(self, now: datetime.datetime) -> TokenBucket:
        """The bucket at ``now`` (a clock going backwards adds nothing)."""
        if self.updated_at is None:
            return dataclasses.replace(self, updated_at=now)
        elapsed = max(0.0, (now - self.updated_at).total_seconds())
        tokens = min(float(self.capacity), self.tokens + elapsed * self.rate_per_second)
        return dataclasses.replace(self, tokens=tokens, updated_at=max(now, self.updated_at))

    def take(self, wanted: int, *, now: datetime.datetime) -> tuple[int, TokenBucket]:
        """``(granted, bucket after)``: at most ``wanted`` whole tokens."""
        bucket = self.refilled(now)
        granted = max(0, min(wanted, math.floor(bucket.tokens)))
        return granted, dataclasses.replace(bucket, tokens=bucket.tokens - granted)

    def seconds_until_token(self, *, now: datetime.datetime) -> float:
        """How long until at least one whole token is available."""
        bucket = self.refilled(now)
        missing = 1.0 - bucket.tokens
        return 0.0 if missing <= 0 else missing / self.rate_per_second


@dataclasses.dataclass(frozen=True, slots=True)
class Expectations:
    """This replica's creates and deletes not yet confirmed by an observation.

    ``creates`` maps a WarmPod name to the moment the expectation lapses; ``deletes`` maps a
    UID likewise. An expectation ends when the observation confirms it (the name is seen;
    the UID is no longer seen) or when it lapses: after the timeout the observation is
    trusted again, so a lost create or delete is retried rather than waited for forever.
    """

    creates: Mapping[str, datetime.datetime] = dataclasses.field(default_factory=dict)
    deletes: Mapping[str, datetime.datetime] = dataclasses.field(default_factory=dict)

    def settled(
        self, *, observed_names: Iterable[str], observed_uids: Iterable[str], now: datetime.datetime
    ) -> Expectations:
        """The expectations still open after observing these names and UIDs at ``now``."""
        seen_names = set(observed_names)
        seen_uids = set(observed_uids)
        return Expectations(
            creates={
                name: until
                for name, until in self.creates.items()
                if name not in seen_names and until > now
            },
            deletes={
                uid: until
                for uid, until in self.deletes.items()
                if uid in seen_uids and until > now
            },
        )

    def expecting(
        self,
        *,
        creates: Iterable[str] = (),
        deletes: Iterable[str] = (),
        now: datetime.datetime,
        timeout_seconds: float,
    ) -> Expectations:
        """These expectations plus new ones lapsing ``timeout_seconds`` after ``now``."""
        until = now + datetime.timedelta(seconds=timeout_seconds)
        return Expectations(
            creates={**self.creates, **dict.fromkeys(creates, until)},
            deletes={**self.deletes, **dict.fromkeys(deletes, until)},
        )

    def forgetting_delete(self, uid: str) -> Expectations:
        """These expectations without the deletion of ``uid`` (it did not happen)."""
        return dataclasses.replace(
            self, deletes={key: until for key, until in self.deletes.items() if key != uid}
        )

    def seconds_to_lapse(self, *, now: datetime.datetime) -> float | None:
        """Until the first open expectation lapses (None: none open). The pool is looked at
        again then: a create that never showed up is retried without waiting for a hint."""
        ends = [*self.creates.values(), *self.deletes.values()]
        return max(0.0, (min(ends) - now).total_seconds()) if ends else None

    @property
    def is_empty(self) -> bool:
        return not self.creates and not self.deletes


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """The pool as counted for status and metrics, after this pass's decisions."""

    available: int
    assigned: int
    pending: int

    @property
    def total(self) -> int:
        return self.available + self.assigned + self.pending

    @property
    def utilization(self) -> float | None:
        """assigned / total as a 0..1 ratio; None for an empty pool."""
        return self.assigned / self.total if self.total else None


@dataclasses.dataclass(frozen=True, slots=True)
class SizingPlan:
    """What to do to one pool now."""

    create: tuple[str, ...]
    delete: tuple[Deletion, ...]
    operation: Operation | None
    counts: Counts
    wanted_unassigned: int
    limited_by: Limit | None
    bucket: TokenBucket
    expectations: Expectations
    """Open expectations *before* this plan's writes (the handler adds them as it writes)."""
    requeue_after_seconds: float | None


def wanted_unassigned(shape: Shape, *, assigned: int, capped: bool = True) -> int:
    """How many unassigned (Ready or pending) WarmPods the pool wants (rule 3).

    ``capped=False`` leaves ``maxSize`` out: what the pool would want without it.
    """
    wanted = shape.min_size
    if shape.autoscaling and shape.target_utilization > 0:
        # ceil(assigned / (target / 100)) with integers: no float rounding at the boundary.
        desired_total = -(-assigned * 100 // shape.target_utilization)
        wanted = max(wanted, desired_total - assigned)
    if capped and shape.max_size > 0:
        wanted = min(wanted, shape.max_size - assigned)
    return max(0, wanted)


def free_slots(pool_name: str, *, occupied: Iterable[str], max_size: int) -> Iterable[str]:
    """Free slot names, lowest index first (all replicas agree on the order)."""
    taken = set(occupied)
    indices: Iterable[int] = range(max_size) if max_size > 0 else itertools.count()
    return (
        name
        for name in (names.warm_pod_name(pool_name, slot=index) for index in indices)
        if name not in taken
    )


def _seconds(delta: datetime.timedelta) -> float:
    return max(0.0, delta.total_seconds())


def plan_sizing(
    shape: Shape,
    *,
    pool_name: str,
    members: Sequence[Member],
    expectations: Expectations,
    bucket: TokenBucket,
    last_scale_time: datetime.datetime | None,
    now: datetime.datetime,
    max_creates: int | None = None,
) -> SizingPlan:
    """The creates and deletes that move the pool toward its wanted size (module docstring).

    ``max_creates`` caps this pass's creates (the preload failure backoff); None: no cap.
    """
    observed_names = {member.name for member in members}
    open_expectations = expectations.settled(
        observed_names=observed_names, observed_uids={m.uid for m in members}, now=now
    )
    deletions: list[Deletion] = []
    ready: list[Member] = []
    refused: list[Member] = []
    assigned = pending = 0
    next_deadline: list[float] = []
    for member in members:
        if member.deleting or member.uid in open_expectations.deletes:
            continue
        phase = member.phase or Phase.PENDING
        if phase in (Phase.FAILED, Phase.TERMINATING):
            deletions.append(_deletion(member, member.failure))
        elif phase == Phase.ASSIGNED:
            assigned += 1
        elif member.outdated:
            deletions.append(_deletion(member, DeleteReason.OUTDATED))
        elif phase == Phase.READY:
            ready.append(member)
        else:
            # Pending, or a phase added after this code was written: not claimable, counted
            # as supply on its way (it becomes Ready or Failed).
            pending += 1
            if member.refused:
                refused.append(member)
    # Rule 2: TTL.
    if shape.ttl_seconds > 0:
        ttl = datetime.timedelta(seconds=shape.ttl_seconds)
        kept: list[Member] = []
        for member in ready:
            since = member.idle_since or member.created_at
            if now - since >= ttl:
                deletions.append(_deletion(member, DeleteReason.EXPIRED))
            else:
                kept.append(member)
                next_deadline.append(_seconds(since + ttl - now))
        ready = kept
    pending += sum(1 for name in open_expectations.creates if name not in observed_names)
    occupied = observed_names | set(open_expectations.creates)
    wanted = wanted_unassigned(shape, assigned=assigned)
    unassigned = len(ready) + pending
    create: list[str] = []
    operation: Operation | None = None
    limited_by: Limit | None = None
    if wanted < wanted_unassigned(shape, assigned=assigned, capped=False):
        limited_by = Limit.MAX_SIZE
    autoscaled_up = shape.autoscaling and wanted > shape.min_size
    if unassigned < wanted:
        deficit = wanted - unassigned
        room = shape.max_size - len(occupied) if shape.max_size > 0 else deficit
        possible = min(deficit, max(0, room))
        if possible < deficit:
            limited_by = Limit.MAX_SIZE
        if max_creates is not None and max_creates < possible:
            possible = max(0, max_creates)
            limited_by = Limit.PRELOAD_BACKOFF
        granted, bucket = bucket.take(possible, now=now)
        if granted < possible:
            limited_by = Limit.RATE
            next_deadline.append(bucket.seconds_until_token(now=now))
        create = list(
            itertools.islice(
                free_slots(pool_name, occupied=occupied, max_size=shape.max_size), granted
            )
        )
        if len(create) < granted:
            # Every slot below maxSize is taken by a WarmPod on its way out: the deletion
            # hint wakes the pool when one frees up.
            limited_by = Limit.SLOTS
        if create:
            operation = Operation.AUTOSCALE_UP if autoscaled_up else Operation.UP
    else:
        surplus = unassigned - wanted
        over_max = 0
        if shape.max_size > 0:
            live = len(ready) + assigned + pending
            over_max = max(0, live - shape.max_size)
        # Podless ones whose pod was refused go first: they would only get pods (above the
        # new size) once the refusal lifts, retrying their create meanwhile; then the oldest
        # Ready ones.
        removable = [
            *sorted(refused, key=lambda m: (m.created_at, m.name)),
            *sorted(ready, key=lambda m: (m.created_at, m.name)),
        ]
        delay = datetime.timedelta(seconds=shape.scale_down_delay_seconds)
        waiting = (
            shape.autoscaling
            and shape.scale_down_delay_seconds > 0
            and last_scale_time is not None
            and now - last_scale_time < delay
        )
        count = over_max
        if surplus > over_max:
            if waiting:
                assert last_scale_time is not None
                next_deadline.append(_seconds(last_scale_time + delay - now))
            else:
                count = surplus
        chosen = removable[: min(count, len(removable))]
        reason = DeleteReason.OVER_MAX_SIZE if count == over_max else DeleteReason.SCALE_DOWN
        deletions.extend(_deletion(m, reason) for m in chosen)
        if chosen:
            operation = Operation.AUTOSCALE_DOWN if shape.autoscaling else Operation.DOWN
            removed = {m.uid for m in chosen}
            ready = [m for m in ready if m.uid not in removed]
            pending -= sum(1 for m in refused if m.uid in removed)
    counts = Counts(available=len(ready), assigned=assigned, pending=pending + len(create))
    return SizingPlan(
        create=tuple(create),
        delete=tuple(deletions),
        operation=operation,
        counts=counts,
        wanted_unassigned=wanted,
        limited_by=limited_by,
        bucket=bucket,
        expectations=open_expectations,
        requeue_after_seconds=min(next_deadline) if next_deadline else None,
    )


def _deletion(member: Member, reason: DeleteReason) -> Deletion:
    return Deletion(member.name, member.uid, reason, resource_version=member.resource_version)
