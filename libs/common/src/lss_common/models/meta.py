"""The Kubernetes metadata every kind shares: ObjectMeta, OwnerReference, Condition, ListMeta.

Also the base classes that fix how all our models map to JSON, and the value vocabularies
shared by several kinds (security levels, condition statuses). Pure data: no I/O.

Mapping rules, chosen so that ``encode(decode(x))`` gives back exactly what the API server
stored (see ``docs/decisions-crds.md``):

- field names are snake_case in Python and camelCase on the wire (``rename="camel"``);
- every optional field defaults to ``None`` and is omitted when ``None`` (``omit_defaults``):
  the API server never stores ``null`` for our fields, so "absent" and "None" are the same;
  a falsy value that *was* stored (``false``, ``0``, ``""``, ``[]``) is kept and re-encoded;
- unknown fields are ignored on decode, so an object written by a newer schema still decodes;
- enumerations are plain ``str`` fields with ``StrEnum`` constants, not ``Literal`` types, for
  the same reason: a value added later must not make older services fail to decode;
- timestamps stay RFC 3339 strings as the API server returns them (exact round trip, no time
  zone surprises); :func:`format_timestamp` and :func:`parse_timestamp` convert.
"""

from __future__ import annotations

import datetime
import enum
from typing import Final

import msgspec


class Model(
    msgspec.Struct,
    rename="camel",
    omit_defaults=True,
    kw_only=True,
    forbid_unknown_fields=False,
    # Decoded objects are trees of scalars, lists and structs, never cycles; leaving them out
    # of the cyclic GC saves memory and GC passes when a service holds thousands of them.
    gc=False,
):
    """Base of every nested model: camelCase on the wire, unset (None) fields omitted."""


class TopLevel(
    msgspec.Struct,
    rename="camel",
    kw_only=True,
    forbid_unknown_fields=False,
    gc=False,
):
    """Base of the top-level objects.

    Not ``omit_defaults``: ``apiVersion`` and ``kind`` have defaults yet must always be
    encoded. Their ``status`` is ``msgspec.UNSET`` (always omitted) when the API server has
    none, which it never has right after a create. Subclasses repeat ``kw_only=True``
    because mypy does not inherit it from a base class's keywords.
    """


class SecurityLevel(enum.StrEnum):
    """Isolation level of a sandbox, pool, profile or runtime (ordered: standard < high)."""

    STANDARD = "standard"
    HIGH = "high"
    CUSTOM = "custom"


class ConditionStatus(enum.StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class OwnerReference(Model):
    """Points at the object that owns this one; deleting the owner garbage-collects it."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Model):
    """The subset of metadata we read or write. Other fields (managedFields, ...) are dropped."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    owner_references: list[OwnerReference] | None = None


class ListMeta(Model):
    """Metadata of a list response: the resourceVersion to watch from, and the page token."""

    resource_version: str | None = None
    continue_: str | None = msgspec.field(default=None, name="continue")
    remaining_item_count: int | None = None


class Condition(Model):
    """One observation of one aspect of an object's state (Kubernetes API conventions).

    ``last_transition_time`` changes only when ``status`` changes.
    """

    type: str
    status: str
    reason: str
    last_transition_time: str
    message: str | None = None
    observed_generation: int | None = None


def format_timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with second precision and a ``Z``, as the API server writes metav1.Time.

    A naive datetime is rejected: guessing its zone is how timestamps drift by hours.
    """
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Timestamps are clamped into this range: a status is written by others, and a valid RFC
#: 3339 value at the edge of the calendar (``0001-01-01T00:00:00+01:00``) has no UTC form in
#: Python (OverflowError), nor has ``9999-12-31T23:59:59Z`` plus a lifetime. Inside it, any
#: duration a controller adds or subtracts stays representable.
EARLIEST: Final = datetime.datetime(1000, 1, 1, tzinfo=datetime.UTC)
LATEST: Final = datetime.datetime(9000, 1, 1, tzinfo=datetime.UTC)


def parse_timestamp(text: str) -> datetime.datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset, optional fraction) into aware UTC,
    clamped to [:data:`EARLIEST`, :data:`LATEST`]."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return to_utc(moment)


def to_utc(moment: datetime.datetime) -> datetime.datetime:
    """An aware datetime in UTC, clamped to [:data:`EARLIEST`, :data:`LATEST`]."""
    try:
        utc = moment.astimezone(datetime.UTC)
    except OverflowError:  # within a day of the calendar's ends
        return EARLIEST if moment.year < LATEST.year else LATEST
    return min(max(utc, EARLIEST), LATEST)
