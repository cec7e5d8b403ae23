"""Per-pool in-memory queue of Ready WarmPods: where the claim finds candidates (pure).

The claim path must never list WarmPods (DESIGN §5, §7): every replica keeps this queue,
fed with each WarmPod as read after a ``warmpod`` hint (``offer``) and rebuilt from one list
on start. A WarmPod is a candidate while its status is ``Ready`` with a pod, it carries the
``pod-spec-hash`` annotation and is not being deleted; anything else removes it. Order is
first-Ready-first (a heartbeat refreshes the resourceVersion without moving the entry), so
picks spread over the oldest pods and the TTL rotates the rest.

The queue is a *hint*, like NATS itself: the claim's CAS carries the resourceVersion held
here, and a stale entry only costs a 409 (then the entry is dropped until the next hint).
Assigned WarmPods are indexed by ``assignedTo`` so that a pass interrupted after its CAS
finds its own claim again. An offer older (by resourceVersion) than the one the queue last
took for that WarmPod is ignored: a read that started before this replica's CAS and answers
after it would otherwise put the claimed WarmPod back as a candidate and drop the claim from
the index.

No I/O, no clock: the caller reads and feeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Final

from lss_common.models import kinds
from lss_common.models import warmpod as warmpod_model

#: sha256 of the rendered pod spec without identity, set by the pool manager on each WarmPod.
POD_SPEC_HASH: Final = f"{kinds.GROUP}/pod-spec-hash"
#: The WarmPool UID label the pool manager puts on WarmPods (and on their pods).
POOL_UID: Final = f"{kinds.GROUP}/warmpool-uid"

Key = tuple[str, str]
"""(namespace, name) of a WarmPod."""


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """One Ready WarmPod as last read: enough to match it and to CAS it."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    pool: str
    """The pool's UID (label), or its name when the label is missing."""
    pod_name: str
    spec_hash: str
    record: warmpod_model.WarmPodSpec
    pod_uid: str
    """The pod as its creator recorded it (``lss_common.logic.pod_records``): its UID …"""
    stored_spec_hash: str
    """… and its stored spec's hash; the adopted pod must match both."""

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
    """A WarmPod assigned to a sandbox (by the sandbox's UID)."""

    namespace: str
    name: str
    uid: str
    pod_name: str
    pod_uid: str
    stored_spec_hash: str


def candidate_of(obj: warmpod_model.WarmPod) -> Candidate | None:
    """The candidate ``obj`` is, or None when it may not be claimed now."""
    meta = obj.metadata
    status = warmpod_model.status_of(obj)
    spec_hash = (meta.annotations or {}).get(POD_SPEC_HASH)
    if (
        status.phase != warmpod_model.Phase.READY
        or not status.pod_name
        or not spec_hash
        # The pool manager marks a WarmPod Ready only with the record of its pod; one
        # without is not a pod anyone can vouch for.
        or not status.pod_uid
        or not status.pod_spec_hash
        or meta.deletion_timestamp
        or not meta.namespace
        or not meta.name
        or not meta.uid
        or not meta.resource_version
    ):
        return None
    return Candidate(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version,
        pool=(meta.labels or {}).get(POOL_UID) or obj.spec.pool_ref.name,
        pod_name=status.pod_name,
        spec_hash=spec_hash,
        record=obj.spec,
        pod_uid=status.pod_uid,
        stored_spec_hash=status.pod_spec_hash,
    )


class ReadyQueue:
    """Ready WarmPods per pool, in the order they became Ready; assignments by sandbox UID."""

    def __init__(self) -> None:
        # pool key (namespace, pool) → WarmPod name → candidate; dicts keep insertion order.
        self._pools: dict[Key, dict[str, Candidate]] = {}
        self._pool_of: dict[Key, Key] = {}
        self._by_namespace: dict[str, set[Key]] = {}
        self._assigned: dict[str, Assignment] = {}
        self._assigned_key: dict[Key, str] = {}
        # The newest resourceVersion offered per WarmPod: a read that started before a newer
        # one was offered (a feed read racing this replica's CAS) must not undo it.
        self._seen: dict[Key, int] = {}

    def __len__(self) -> int:
        return len(self._pool_of)

    def offer(self, obj: warmpod_model.WarmPod) -> Candidate | None:
        """Record ``obj`` as just read; returns its candidate (None: not claimable, or older
        than what the queue already took for it)."""
        meta = obj.metadata
        key = (meta.namespace or "", meta.name or "")
        version = _revision(meta.resource_version)
        seen = self._seen.get(key)
        if version is not None and seen is not None and version < seen:
            return None  # older than what the queue holds: ignored
        if version is not None:
            self._seen[key] = version
        status = warmpod_model.status_of(obj)
        self._unassign(key)
        if (
            status.phase == warmpod_model.Phase.ASSIGNED
            and status.assigned_to
            and not meta.deletion_timestamp
        ):
            self._assigned[status.assigned_to] = Assignment(
                namespace=key[0],
                name=key[1],
                uid=meta.uid or "",
                pod_name=status.pod_name or "",
                pod_uid=status.pod_uid or "",
                stored_spec_hash=status.pod_spec_hash or "",
            )
            self._assigned_key[key] = status.assigned_to
        found = candidate_of(obj)
        if found is None:
            self.forget(key)
            return None
        self._insert(found)
        return found

    def restore(self, candidate: Candidate) -> bool:
        """Put back a candidate taken out for a claim whose write was refused (it changed
        nothing): unless the queue has heard of the WarmPod since (a newer read, taken or
        not, or an assignment). True when put back."""
        key = candidate.key
        if key in self._pool_of or key in self._assigned_key:
            return False
        seen = self._seen.get(key)
        if seen is not None and seen != _revision(candidate.resource_version):
            return False
        self._insert(candidate)
        return True

    def _insert(self, found: Candidate) -> None:
        key = found.key
        pool_key = (found.namespace, found.pool)
        previous = self._pool_of.get(key)
        if previous is not None and previous != pool_key:
            self.forget(key)
        self._pools.setdefault(pool_key, {})[found.name] = found
        self._pool_of[key] = pool_key
        self._by_namespace.setdefault(found.namespace, set()).add(pool_key)

    def forget(self, key: Key) -> None:
        """Drop the WarmPod ``key`` from the candidates (gone, not Ready, or being tried)."""
        pool_key = self._pool_of.pop(key, None)
        if pool_key is None:
            return
        members = self._pools.get(pool_key)
        if members is not None:
            members.pop(key[1], None)
            if not members:
                del self._pools[pool_key]
                pools = self._by_namespace.get(pool_key[0])
                if pools is not None:
                    pools.discard(pool_key)
                    if not pools:
                        del self._by_namespace[pool_key[0]]

    def remove(self, key: Key) -> None:
        """The WarmPod is gone: no candidate and no assignment."""
        self.forget(key)
        self._unassign(key)
        self._seen.pop(key, None)

    def candidates(
        self, namespace: str, *, matches: Callable[[Candidate], bool]
    ) -> list[Candidate]:
        """Matching candidates in ``namespace``, oldest Ready first, per pool in turn."""
        result: list[Candidate] = []
        for pool_key in sorted(self._by_namespace.get(namespace, ())):
            result.extend(c for c in self._pools[pool_key].values() if matches(c))
        return result

    def assignment(self, sandbox_uid: str) -> Assignment | None:
        """The WarmPod last seen assigned to ``sandbox_uid``."""
        return self._assigned.get(sandbox_uid)

    def __iter__(self) -> Iterator[Candidate]:
        for members in self._pools.values():
            yield from members.values()

    def _unassign(self, key: Key) -> None:
        sandbox_uid = self._assigned_key.pop(key, None)
        if sandbox_uid is not None:
            found = self._assigned.get(sandbox_uid)
            if found is not None and (found.namespace, found.name) == key:
                del self._assigned[sandbox_uid]


def _revision(resource_version: str | None) -> int | None:
    """A resourceVersion as the etcd revision it is (None: absent or not a number, then
    never compared)."""
    try:
        return int(resource_version) if resource_version else None
    except ValueError:
        return None
