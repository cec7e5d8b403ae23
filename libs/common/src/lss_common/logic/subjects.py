"""NATS subjects and message ids: the only place that builds or parses them (pure).

Subjects have the shapes::

    <prefix>.evt.<kind>.<namespace>.<name>       LSS_EVENTS, work hints
    <prefix>.recycle.<namespace>.<warmpod>       LSS_EVENTS, warm pods to recycle
    <prefix>.status.<kind>.<namespace>.<name>    LSS_STATUS, last committed status
    <prefix>.ctl.resync                          core NATS (no stream), resync requests

Control subjects (``ctl``) are deliberately outside every stream's subjects: a control
message is for whoever listens now, and JetStream would store it (and answer the publish)
if a stream captured it.

Kubernetes names may contain ``.``, which NATS reads as a token separator, so every namespace
and name is encoded into exactly ONE token by :func:`encode_token`:

* ``[A-Za-z0-9-]`` stay as they are;
* ``.`` becomes ``_`` (so ``my.app`` reads ``my_app``; DNS-1123 names never contain ``_``);
* every other character (including ``_`` and ``%`` themselves, ``*``, ``>``, whitespace and
  anything non-ASCII) becomes ``%XX`` per UTF-8 byte, upper-case hex;
* the empty string becomes ``%``.

The scheme is total over ``str`` and reversible (:func:`decode_token` is its exact inverse and
rejects every token :func:`encode_token` cannot produce), and the resulting token never
contains ``.``, ``*``, ``>`` or whitespace. Cluster-scoped kinds use :data:`CLUSTER_TOKEN` in
the namespace position; it starts with ``%`` followed by a non-hex letter, so no encoded
namespace can collide with it.

This module does no I/O and knows nothing of nats-py; it must not grow publishing logic.
"""

from __future__ import annotations

import re
import typing

from lss_common import errors

DEFAULT_PREFIX = "lss"
CLUSTER_TOKEN = "%cluster"
EMPTY_TOKEN = "%"

EVENTS_TOKEN = "evt"
RECYCLE_TOKEN = "recycle"
STATUS_TOKEN = "status"
CONTROL_TOKEN = "ctl"
RESYNC_REQUEST_TOKEN = "resync"

_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_HEX = "0123456789ABCDEF"
_KIND_RE = re.compile(r"^[a-z][a-z0-9]*$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class ObjectKey(typing.NamedTuple):
    """Which object a subject names; ``namespace`` is None for cluster-scoped kinds."""

    kind: str
    namespace: str | None
    name: str


def encode_token(value: str) -> str:
    """Encode any string as one NATS subject token (see the module docstring)."""
    if not value:
        return EMPTY_TOKEN
    parts: list[str] = []
    for char in value:
        if char in _LITERAL:
            parts.append(char)
        elif char == ".":
            parts.append("_")
        else:
            # surrogatepass keeps the scheme total for lone surrogates, which str allows.
            for byte in char.encode("utf-8", errors="surrogatepass"):
                parts.append(f"%{byte:02X}")
    return "".join(parts)


def decode_token(token: str) -> str:
    """Invert :func:`encode_token`; raise ``errors.InvalidMessage`` for any other token."""
    if token == EMPTY_TOKEN:
        return ""
    if not token:
        raise errors.InvalidMessage("empty subject token")
    out = bytearray()
    index = 0
    while index < len(token):
        char = token[index]
        if char in _LITERAL:
            out += char.encode("ascii")
            index += 1
        elif char == "_":
            out += b"."
            index += 1
        elif char == "%":
            hex_digits = token[index + 1 : index + 3]
            if len(hex_digits) != 2 or any(digit not in _HEX for digit in hex_digits):
                raise errors.InvalidMessage(f"subject token {token!r}: bad escape at {index}")
            byte = int(hex_digits, 16)
            # Only bytes the encoder escapes may appear escaped: keeps one spelling per string.
            if chr(byte) in _LITERAL or byte == ord("."):
                raise errors.InvalidMessage(f"subject token {token!r}: needless escape")
            out.append(byte)
            index += 3
        else:
            raise errors.InvalidMessage(f"subject token {token!r}: character {char!r} not allowed")
    try:
        return out.decode("utf-8", errors="surrogatepass")
    except UnicodeDecodeError as exc:
        raise errors.InvalidMessage(f"subject token {token!r}: not UTF-8") from exc


def encode_namespace(namespace: str | None) -> str:
    """The namespace token: :data:`CLUSTER_TOKEN` for cluster-scoped objects."""
    return CLUSTER_TOKEN if namespace is None else encode_token(namespace)


def decode_namespace(token: str) -> str | None:
    """Invert :func:`encode_namespace`."""
    return None if token == CLUSTER_TOKEN else decode_token(token)


def event_subject(
    kind: str, *, namespace: str | None, name: str, prefix: str = DEFAULT_PREFIX
) -> str:
    """``<prefix>.evt.<kind>.<ns>.<name>``: the work hint for one object."""
    return ".".join(
        (
            _checked_prefix(prefix),
            EVENTS_TOKEN,
            _checked_kind(kind),
            encode_namespace(namespace),
            encode_token(name),
        )
    )


def status_subject(
    kind: str, *, namespace: str | None, name: str, prefix: str = DEFAULT_PREFIX
) -> str:
    """``<prefix>.status.<kind>.<ns>.<name>``: the last committed status of one object."""
    return ".".join(
        (
            _checked_prefix(prefix),
            STATUS_TOKEN,
            _checked_kind(kind),
            encode_namespace(namespace),
            encode_token(name),
        )
    )


def recycle_subject(namespace: str, *, warmpod: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>.recycle.<ns>.<warmpod>``: a warm pod handed back for recycling."""
    return ".".join(
        (_checked_prefix(prefix), RECYCLE_TOKEN, encode_token(namespace), encode_token(warmpod))
    )


def resync_request_subject(*, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>.ctl.resync``: a consumer asks the watchers for a resync round (core NATS)."""
    return ".".join((_checked_prefix(prefix), CONTROL_TOKEN, RESYNC_REQUEST_TOKEN))


def events_filter(kind: str | None = None, *, prefix: str = DEFAULT_PREFIX) -> str:
    """Filter subject for the hints of one kind (or of every kind when ``kind`` is None)."""
    head = f"{_checked_prefix(prefix)}.{EVENTS_TOKEN}"
    return f"{head}.>" if kind is None else f"{head}.{_checked_kind(kind)}.>"


def status_filter(kind: str | None = None, *, prefix: str = DEFAULT_PREFIX) -> str:
    """Filter subject for the status of one kind (or of every kind)."""
    head = f"{_checked_prefix(prefix)}.{STATUS_TOKEN}"
    return f"{head}.>" if kind is None else f"{head}.{_checked_kind(kind)}.>"


def recycle_filter(*, prefix: str = DEFAULT_PREFIX) -> str:
    """Filter subject for every recycle request."""
    return f"{_checked_prefix(prefix)}.{RECYCLE_TOKEN}.>"


def parse_event_subject(subject: str, *, prefix: str = DEFAULT_PREFIX) -> ObjectKey:
    """Invert :func:`event_subject`; ``errors.InvalidMessage`` if ``subject`` is not one."""
    return _parse_object_subject(subject, prefix=prefix, section=EVENTS_TOKEN)


def parse_status_subject(subject: str, *, prefix: str = DEFAULT_PREFIX) -> ObjectKey:
    """Invert :func:`status_subject`; ``errors.InvalidMessage`` if ``subject`` is not one."""
    return _parse_object_subject(subject, prefix=prefix, section=STATUS_TOKEN)


def parse_recycle_subject(subject: str, *, prefix: str = DEFAULT_PREFIX) -> ObjectKey:
    """Invert :func:`recycle_subject` into a ``warmpod`` key."""
    tokens = subject.split(".")
    if len(tokens) != 4 or tokens[0] != prefix or tokens[1] != RECYCLE_TOKEN:
        raise errors.InvalidMessage(f"subject {subject!r} is not a {prefix}.recycle subject")
    return ObjectKey("warmpod", decode_token(tokens[2]), decode_token(tokens[3]))


def message_id(
    kind: str,
    *,
    namespace: str | None,
    name: str,
    resource_version: str,
    round_id: str | None = None,
) -> str:
    """``Nats-Msg-Id`` ``<kind>/<ns>/<name>/<resourceVersion>[/<round>]``.

    Several watchers publishing the same change produce the same id, so JetStream stores it
    once. A periodic resync passes ``round_id`` (e.g. the resync's start time): without it a
    resync hint would be deduplicated against the original change inside the dedupe window,
    and a hint that was lost (published before any consumer existed) would stay lost.
    """
    parts = [
        _checked_kind(kind),
        encode_namespace(namespace),
        encode_token(name),
        encode_token(resource_version),
    ]
    if round_id is not None:
        parts.append(encode_token(round_id))
    return "/".join(parts)


def _parse_object_subject(subject: str, *, prefix: str, section: str) -> ObjectKey:
    tokens = subject.split(".")
    if len(tokens) != 5 or tokens[0] != prefix or tokens[1] != section:
        raise errors.InvalidMessage(f"subject {subject!r} is not a {prefix}.{section} subject")
    kind = tokens[2]
    if not _KIND_RE.match(kind):
        raise errors.InvalidMessage(f"subject {subject!r}: bad kind token {kind!r}")
    return ObjectKey(kind, decode_namespace(tokens[3]), decode_token(tokens[4]))


def _checked_kind(kind: str) -> str:
    # Kinds are fixed lower-case words chosen in code, so a bad one is a programming error.
    if not _KIND_RE.match(kind):
        raise ValueError(f"kind {kind!r} must match {_KIND_RE.pattern}")
    return kind


def _checked_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"subject prefix {prefix!r} must match {_PREFIX_RE.pattern}")
    return prefix
