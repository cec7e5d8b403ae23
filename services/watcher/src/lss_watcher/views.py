"""The watch wire format and the trimmed views the watcher decodes objects into (pure).

A watch response is a stream of JSON lines ``{"type": ..., "object": {...}}``. Each object is
decoded by msgspec into :class:`ObjectView`, which holds only what the watcher needs: the
identity (name, namespace, uid, resourceVersion), owner references, labels (for the
cross-namespace owner labels), a WarmPod's ``spec.poolRef``, and the raw ``status`` bytes
(decoded later, only for the kinds that publish status). Everything else — specs, managed
fields, container lists — is skipped without being materialised, which keeps decoding fast
and the memory of a list bounded. Unknown fields are ignored; every field has a default, so
an odd object still decodes and is then judged by :func:`is_complete`.

Decode failures surface as ``msgspec.DecodeError`` (``ValidationError`` is a subclass); the
caller logs, counts and skips them. No I/O here.
"""

from __future__ import annotations

import msgspec

from lss_common.models import labels


class OwnerRef(msgspec.Struct, rename="camel", gc=False):
    """An owner reference, as much of it as mapping needs."""

    api_version: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None


class OwnerAnnotations(msgspec.Struct, gc=False):
    """The one annotation mapping reads (every other key is skipped while decoding)."""

    sandbox_name: str | None = msgspec.field(default=None, name=labels.SANDBOX_NAME_ANNOTATION)


class Meta(msgspec.Struct, rename="camel", gc=False):
    """The metadata fields the watcher reads."""

    name: str = ""
    namespace: str | None = None
    uid: str = ""
    resource_version: str = ""
    labels: dict[str, str] | None = None
    annotations: OwnerAnnotations | None = None
    owner_references: list[OwnerRef] | None = None
    deletion_timestamp: str | None = None


class PoolRef(msgspec.Struct, rename="camel", gc=False):
    """A WarmPod's ``spec.poolRef``."""

    name: str = ""
    namespace: str | None = None


class Spec(msgspec.Struct, rename="camel", gc=False):
    """The only spec field any mapping needs (a WarmPod's pool); other kinds leave it unset."""

    pool_ref: PoolRef | None = None


# msgspec.Raw cannot be part of a union: "absent" is the empty Raw (see ``is_absent``).
_ABSENT = msgspec.Raw()


class ObjectView(msgspec.Struct, gc=False):
    """One object, trimmed. ``status`` stays raw JSON until someone needs it."""

    metadata: Meta = msgspec.field(default_factory=Meta)
    spec: Spec | None = None
    status: msgspec.Raw = _ABSENT


class WatchEvent(msgspec.Struct, gc=False):
    """One line of a watch stream; ``object`` is decoded in a second step by its type."""

    type: str = ""
    object: msgspec.Raw = _ABSENT


class ApiStatus(msgspec.Struct, gc=False):
    """The ``metav1.Status`` of an ERROR watch event or an error response."""

    code: int = 0
    reason: str = ""
    message: str = ""


class BookmarkMeta(msgspec.Struct, rename="camel", gc=False):
    resource_version: str = ""


class Bookmark(msgspec.Struct, gc=False):
    """A BOOKMARK event's object: only its resourceVersion means anything."""

    metadata: BookmarkMeta = msgspec.field(default_factory=BookmarkMeta)


_event_decoder = msgspec.json.Decoder(WatchEvent)
_object_decoder = msgspec.json.Decoder(ObjectView)
_status_decoder = msgspec.json.Decoder(ApiStatus)
_bookmark_decoder = msgspec.json.Decoder(Bookmark)


def decode_event(line: bytes) -> WatchEvent:
    """One watch line (``msgspec.DecodeError`` if it is not one)."""
    return _event_decoder.decode(line)


def decode_object(data: bytes | msgspec.Raw) -> ObjectView:
    """One object (from a watch event or a list item)."""
    return _object_decoder.decode(data)


def decode_status(data: bytes | msgspec.Raw) -> ApiStatus:
    """An API error status (ERROR events, error responses)."""
    return _status_decoder.decode(data)


def decode_bookmark_version(data: bytes | msgspec.Raw) -> str:
    """The resourceVersion a BOOKMARK event carries (empty if none)."""
    return _bookmark_decoder.decode(data).metadata.resource_version


def is_absent(raw: msgspec.Raw) -> bool:
    """Whether a raw field was missing (or JSON ``null``)."""
    size = len(raw)
    return size == 0 or (size == 4 and bytes(raw) == b"null")


def is_complete(view: ObjectView) -> bool:
    """Whether the object has the identity every hint needs (name, uid, resourceVersion)."""
    meta = view.metadata
    return bool(meta.name and meta.uid and meta.resource_version)


class LineSplitter:
    """Splits a byte stream into lines; a line may span any number of chunks.

    Cheaper than reading line by line from the socket: one ``split`` per network chunk.
    """

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The complete, non-blank lines ``chunk`` finishes (without their newline)."""
        if not chunk:
            return []
        data = self._partial + chunk if self._partial else chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return [line for line in lines if line.strip()]

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line held back."""
        return len(self._partial)
