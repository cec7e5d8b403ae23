"""The bus's wire schemas: ``ChangeEvent`` (LSS_EVENTS), ``StatusRecord`` v1 (LSS_STATUS),
and ``ResyncRequest`` v1 (core NATS ``<prefix>.ctl.resync``, between our own services).

Pure msgspec Structs, JSON with camelCase keys. Each carries ``v``, typed ``Literal[<n>]``, so
a decoder rejects (and the consume loop terms) a version it does not understand instead of
misreading it. Evolution rule: adding an optional field keeps ``v``; removing, renaming or
re-typing a field bumps it, and a new version is rolled out consumers first. Unknown fields
are ignored on decode, so additive changes need no coordinated rollout.

Self-contained on purpose (no import of the CRD models): the API service depends on these
schemas, not on our internal views of Kubernetes objects. No I/O, no encoding helpers here
(``bus/codec.py`` does that).
"""

from __future__ import annotations

import datetime
import typing

import msgspec

UtcTime = typing.Annotated[datetime.datetime, msgspec.Meta(tz=True)]
"""A timezone-aware timestamp (RFC 3339 on the wire); naive timestamps are rejected."""

EventType = typing.Literal["ADDED", "MODIFIED", "DELETED", "RESYNC"]
"""Why a hint was published: a watch event, or the watcher's periodic full resync."""

Launch = typing.Literal["warm", "cold"]
"""How a sandbox got its pod: claimed from a warm pool, or created from scratch."""

ConditionStatus = typing.Literal["True", "False", "Unknown"]


class ChildChange(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """The change of a child (e.g. a pod) that woke its owner's key."""

    resource: str
    """The child's resource, singular lowercase (``pod``, ``service`` ...)."""
    resource_version: str
    """The child's resourceVersion after the change (its last known one if it vanished)."""
    event_type: EventType
    """What happened to the child (``DELETED`` also when a relist found it gone)."""


class ChangeEvent(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """A hint that one object changed: the receiver re-reads it from the API server.

    Handlers must not act on anything but the key (kind, namespace, name): the event may be
    late, duplicated or reordered. ``uid`` and ``resource_version`` let a handler skip work it
    has provably done already and are useful in logs.
    """

    v: typing.Literal[1] = 1
    kind: str
    namespace: str | None
    """None for cluster-scoped kinds (e.g. ``runtimeenvironment``)."""
    name: str
    uid: str | None = None
    resource_version: str | None = None
    event_type: EventType
    observed_at: UtcTime
    child: ChildChange | None = None
    """Set when a child's change woke this key (then ``resource_version`` is None)."""


class ConditionRecord(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """One status condition, Kubernetes style."""

    type: str
    status: ConditionStatus
    reason: str | None = None
    message: str | None = None
    last_transition_time: UtcTime | None = None
    observed_generation: int | None = None


class StatusRecord(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """The committed status of one Sandbox or WarmPool, as the watcher saw it in the API server.

    LSS_STATUS keeps the latest record per subject; ``resource_version`` orders records of one
    object, and ``observed_at`` says how fresh the record is.
    """

    v: typing.Literal[1] = 1
    kind: str
    namespace: str | None
    name: str
    uid: str
    phase: str | None = None
    conditions: list[ConditionRecord] = msgspec.field(default_factory=list)
    endpoint: str | None = None
    pod_name: str | None = None
    start_time: UtcTime | None = None
    launch: Launch | None = None
    resource_version: str
    observed_generation: int | None = None
    observed_at: UtcTime
    deleted: bool = False
    """True on the last record of an object that no longer exists in the API server."""


RequestId = typing.Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,64}$")]
"""Becomes part of message ids and logs: one subject token, bounded, whoever sent it."""


class ResyncRequest(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """A service's durable consumer was just created (or re-created): please resync.

    LSS_EVENTS has interest retention, so the hints published before the consumer existed
    were never stored for it. Every watcher replica answers with a resync round named after
    ``request_id`` (so replicas publish identical message ids and JetStream keeps one copy).
    """

    v: typing.Literal[1] = 1
    consumer: typing.Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    """The durable consumer's name."""
    stream: typing.Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    """The stream it consumes; a watcher answers only for its own events stream."""
    request_id: RequestId
    requested_at: UtcTime
