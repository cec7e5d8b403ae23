"""What the watcher announces on LSS_EVENTS, and the message ids that make it idempotent (pure).

A :class:`Hint` says "key X may need work". Its ``Nats-Msg-Id`` is a pure function of the
change it reports (``subjects.message_id``: ``<kind>/<ns>/<name>/<resourceVersion>[/<round>]``),
so every watcher replica — and a restarted watcher re-listing — produces the same id for the
same change, and JetStream stores it once within its dedupe window. The round part keeps apart
what must not be deduplicated against each other:

==========================================  ==================================================
change                                      id
==========================================  ==================================================
the object itself changed (watch or list)   ``<kind>/<ns>/<name>/<rv>``
the object vanished while unwatched (list)  ``<kind>/<ns>/<name>/<last rv>/gone``
a child changed → its owner's key           ``<owner key>/<child rv>/<child resource>``
a child vanished while unwatched → owner    ``<owner key>/<child last rv>/<child resource>-gone``
periodic resync (one per key and period)    ``<kind>/<ns>/<name>/<rv or ->/resync-<epoch>``
re-announce after a NATS reconnect          ``<kind>/<ns>/<name>/<rv or ->/<reconnect round>``
round asked for by a new consumer           ``<kind>/<ns>/<name>/<rv or ->/request-<request id>``
==========================================  ==================================================

A resourceVersion is unique per object revision within a resource (it is the storage
revision), so ``key + rv`` names one revision of one object, and ``owner key + child rv +
child resource`` one revision of one child as seen by one owner. No I/O here.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Final

from lss_common.logic import subjects
from lss_common.models import messages

ObjectKey = subjects.ObjectKey
EventType = messages.EventType

ADDED: Final[EventType] = "ADDED"
MODIFIED: Final[EventType] = "MODIFIED"
DELETED: Final[EventType] = "DELETED"
RESYNC: Final[EventType] = "RESYNC"

GONE_ROUND: Final = "gone"
NO_VERSION: Final = "-"


@dataclasses.dataclass(frozen=True, slots=True)
class Hint:
    """One hint to publish: the key, why, and its message id."""

    key: ObjectKey
    event_type: EventType
    uid: str | None
    resource_version: str | None
    """The key's own object's resourceVersion; None when a child's change woke the key."""
    msg_id: str
    child: messages.ChildChange | None = None
    """The child's change that woke the key (so a service can tell its own writes apart)."""


def own_change(key: ObjectKey, *, event_type: EventType, uid: str, resource_version: str) -> Hint:
    """The object ``key`` itself changed to ``resource_version`` (seen by a watch or a list)."""
    return Hint(
        key=key,
        event_type=event_type,
        uid=uid,
        resource_version=resource_version,
        msg_id=_id(key, resource_version=resource_version, round_id=None),
    )


def own_vanished(key: ObjectKey, *, uid: str, last_resource_version: str) -> Hint:
    """The object ``key`` was deleted while no watch saw it (found missing by a relist)."""
    return Hint(
        key=key,
        event_type=DELETED,
        uid=uid,
        resource_version=last_resource_version,
        msg_id=_id(key, resource_version=last_resource_version, round_id=GONE_ROUND),
    )


def owner_woken(
    key: ObjectKey,
    *,
    source: str,
    child_resource_version: str,
    child_event_type: EventType,
    vanished: bool = False,
) -> Hint:
    """A child of ``key`` (of resource ``source``, e.g. ``pod``) changed or vanished."""
    return Hint(
        key=key,
        event_type=MODIFIED,
        uid=None,
        resource_version=None,
        msg_id=_id(
            key,
            resource_version=child_resource_version,
            round_id=f"{source}-{GONE_ROUND}" if vanished else source,
        ),
        child=messages.ChildChange(
            resource=source,
            resource_version=child_resource_version,
            event_type=DELETED if vanished else child_event_type,
        ),
    )


def resync(key: ObjectKey, *, uid: str | None, resource_version: str | None, round_id: str) -> Hint:
    """A periodic (or reconnect) re-announcement of ``key``; ``round_id`` names the round."""
    return Hint(
        key=key,
        event_type=RESYNC,
        uid=uid,
        resource_version=resource_version,
        msg_id=_id(key, resource_version=resource_version or NO_VERSION, round_id=round_id),
    )


def next_round_boundary(now_seconds: float, *, period_seconds: float) -> float:
    """The next wall-clock multiple of ``period_seconds`` strictly after ``now_seconds``.

    Replicas that resync at these boundaries (and name the round after the boundary, not
    after when they woke) publish the same ids, so their resyncs deduplicate.
    """
    return (math.floor(now_seconds / period_seconds) + 1) * period_seconds


def resync_round(epoch_seconds: int) -> str:
    """The round id of the periodic resync that ran at the wall-clock boundary ``epoch``."""
    return f"resync-{epoch_seconds}"


def subject(hint: Hint, *, prefix: str) -> str:
    """The hint's subject, ``<prefix>.evt.<kind>.<ns>.<name>``."""
    return subjects.event_subject(
        hint.key.kind, namespace=hint.key.namespace, name=hint.key.name, prefix=prefix
    )


def message(hint: Hint, *, observed_at: datetime.datetime) -> messages.ChangeEvent:
    """The ChangeEvent payload of ``hint``."""
    return messages.ChangeEvent(
        kind=hint.key.kind,
        namespace=hint.key.namespace,
        name=hint.key.name,
        uid=hint.uid,
        resource_version=hint.resource_version,
        event_type=hint.event_type,
        observed_at=observed_at,
        child=hint.child,
    )


def _id(key: ObjectKey, *, resource_version: str, round_id: str | None) -> str:
    return subjects.message_id(
        key.kind,
        namespace=key.namespace,
        name=key.name,
        resource_version=resource_version,
        round_id=round_id,
    )
