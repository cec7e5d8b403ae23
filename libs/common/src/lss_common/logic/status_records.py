"""Committed Sandbox and WarmPool status as LSS_STATUS records, and their ordering (pure).

A record says what the API server has *committed*: the status of an object as a watch event,
a list or the answer to a write returned it, never a status some service is about to write.
Two publishers build records: the watcher from the raw ``status`` JSON it watches, and the
sandbox reconciler from the object the API server answered its status write with. Both go
through :func:`record_of` (the reconciler via :func:`record_of_sandbox`), so the same object
version gives the same record, whoever builds it. The status is decoded into a lenient view
(every field optional, unknown values tolerated) and mapped onto ``messages.StatusRecord`` v1.

Ordering: LSS_STATUS keeps one record per subject, and several publishers (watcher replicas,
reconciler replicas, one process's concurrent publishes) may race. :func:`is_newer` decides
whether a record may replace the stored one: a higher resourceVersion wins; at the same
version a deletion record wins. resourceVersions are compared as integers — Kubernetes calls
them opaque, but they are the storage revision, and every apiserver backed by etcd gives
increasing integers; where one is not an integer we fall back to "a different version
replaces". ``lss_common.bus.status_publishing`` enforces the decision atomically with
``Nats-Expected-Last-Subject-Sequence``.

No I/O and no clock (``observed_at`` is an argument).
"""

from __future__ import annotations

import dataclasses
import datetime
import typing

import msgspec

from lss_common.logic import subjects
from lss_common.models import codec, kinds, messages, meta
from lss_common.models import sandbox as sandbox_model

DELETED_ROUND = "deleted"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_CONDITION_STATUSES: frozenset[str] = frozenset(typing.get_args(messages.ConditionStatus))
#: A condition message longer than this is clipped in the record. The CRDs allow 32
#: conditions of 32 KiB each: a record of them exceeded NATS's 1 MiB payload limit, could
#: never be stored, and its retries held the watcher's publish slots for good.
MAX_MESSAGE_CHARS: typing.Final = 4096
MAX_CONDITIONS: typing.Final = 32


class ConditionView(msgspec.Struct, rename="camel", gc=False):
    type: str = ""
    status: str = "Unknown"
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    observed_generation: int | None = None


class WarmPodRefView(msgspec.Struct, gc=False):
    name: str = ""


class StatusView(msgspec.Struct, rename="camel", gc=False):
    """The status fields a StatusRecord carries, for both Sandbox and WarmPool."""

    phase: str | None = None
    observed_generation: int | None = None
    conditions: list[ConditionView] | None = None
    pod_name: str | None = None
    start_time: str | None = None
    endpoint: str | None = None
    warm_pod_ref: WarmPodRefView | None = None


_status_view_decoder = msgspec.json.Decoder(StatusView)


@dataclasses.dataclass(frozen=True, slots=True)
class Stored:
    """What ordering needs to know about a record: whose, which version, deleted or not."""

    uid: str
    resource_version: str
    deleted: bool


def decode_status(raw: bytes | msgspec.Raw | None) -> StatusView:
    """The lenient view of a raw ``status`` JSON; absent, empty or ``null`` is an empty
    status (an object no one has written a status for yet). ``msgspec.DecodeError`` if it is
    not JSON of the expected shape."""
    if raw is None or len(raw) == 0 or (len(raw) == 4 and bytes(raw) == b"null"):
        return StatusView()
    return _status_view_decoder.decode(raw)


def record_of(
    kind: str,
    *,
    namespace: str | None,
    name: str,
    uid: str,
    resource_version: str,
    status: bytes | msgspec.Raw | None,
    observed_at: datetime.datetime,
    deleted: bool = False,
) -> messages.StatusRecord:
    """The StatusRecord of one object version (a Sandbox or WarmPool) whose raw ``status``
    JSON is ``status``; ``msgspec.DecodeError`` if that is not JSON of the expected shape."""
    view = decode_status(status)
    conditions = [
        messages.ConditionRecord(
            type=condition.type,
            status=typing.cast(
                messages.ConditionStatus,
                condition.status if condition.status in _CONDITION_STATUSES else "Unknown",
            ),
            reason=condition.reason,
            message=_clip(condition.message),
            last_transition_time=parse_time(condition.last_transition_time),
            observed_generation=condition.observed_generation,
        )
        for condition in (view.conditions or ())[:MAX_CONDITIONS]
        if condition.type
    ]
    is_sandbox = kind == kinds.SANDBOX.singular
    return messages.StatusRecord(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=uid,
        phase=view.phase,
        conditions=conditions,
        endpoint=view.endpoint if is_sandbox else None,
        pod_name=view.pod_name if is_sandbox else None,
        start_time=parse_time(view.start_time) if is_sandbox else None,
        launch=_launch(view) if is_sandbox else None,
        resource_version=resource_version,
        observed_generation=view.observed_generation,
        observed_at=observed_at,
        deleted=deleted,
    )


def record_of_sandbox(
    obj: sandbox_model.Sandbox, *, observed_at: datetime.datetime
) -> messages.StatusRecord:
    """The StatusRecord of a Sandbox as the API server returned it (e.g. the answer to a
    status write: the committed object at its new resourceVersion).

    The typed status is encoded back to the JSON the API server stored (the models round-trip
    exactly, timestamps included) and read like the watcher reads it, so both publishers
    build the same record of the same version.
    """
    meta = obj.metadata
    status = None if isinstance(obj.status, msgspec.UnsetType) else codec.encode(obj.status)
    return record_of(
        kinds.SANDBOX.singular,
        namespace=meta.namespace,
        name=meta.name or "",
        uid=meta.uid or "",
        resource_version=meta.resource_version or "",
        status=status,
        observed_at=observed_at,
    )


def deleted_copy(
    record: messages.StatusRecord, *, observed_at: datetime.datetime
) -> messages.StatusRecord:
    """``record`` marked as the last record of an object that no longer exists."""
    return msgspec.structs.replace(record, deleted=True, observed_at=observed_at)


def msg_id(record: messages.StatusRecord) -> str:
    """The ``Nats-Msg-Id`` of a status record: one per object version, and a distinct one for
    the deletion record (which, when a relist finds the object gone, has no version of its
    own and reuses the last one)."""
    return subjects.message_id(
        record.kind,
        namespace=record.namespace,
        name=record.name,
        resource_version=record.resource_version,
        round_id=DELETED_ROUND if record.deleted else None,
    )


def stored(record: messages.StatusRecord) -> Stored:
    """The ordering facts of ``record``."""
    return Stored(uid=record.uid, resource_version=record.resource_version, deleted=record.deleted)


def is_newer(candidate: Stored, current: Stored) -> bool:
    """Whether ``candidate`` may replace ``current`` (see the module docstring)."""
    mine = _as_int(candidate.resource_version)
    theirs = _as_int(current.resource_version)
    if mine is not None and theirs is not None:
        if mine != theirs:
            return mine > theirs
        return candidate.deleted and not current.deleted
    if candidate.resource_version == current.resource_version and candidate.uid == current.uid:
        return candidate.deleted and not current.deleted
    return True


def digest(record: messages.StatusRecord) -> int:
    """A fingerprint of what a record says, ignoring its version and observation time.

    Two records with the same digest tell an API client the same thing, so the second need
    not be published (a spec or label change leaves the status as it was).
    """
    return hash(
        msgspec.json.encode(
            msgspec.structs.replace(record, resource_version="", observed_at=_EPOCH)
        )
    )


def parse_time(text: str | None) -> datetime.datetime | None:
    """An RFC 3339 timestamp as aware UTC; a zone-less one is read as UTC (metav1.Time is
    always UTC); None when absent or unreadable (a status is never dropped for a timestamp)."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return meta.to_utc(moment)  # clamped: an edge of the calendar has no UTC form


def _clip(message: str | None) -> str | None:
    if message is None or len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"


def _launch(status: StatusView) -> messages.Launch | None:
    if status.warm_pod_ref is not None and status.warm_pod_ref.name:
        return "warm"
    if status.pod_name:
        return "cold"
    return None


def _as_int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None
