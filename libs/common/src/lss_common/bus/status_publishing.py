"""Publishing one LSS_STATUS record with compare-and-set, so that the newest version wins.

LSS_STATUS keeps one record per object subject, and more than one process publishes them:
every watcher replica (the committed status it watches) and every sandbox reconciler replica
(the committed status its own write returned). :meth:`StatusPublisher.publish` makes that
safe:

1. know the stored record and its stream sequence — remembered from this process's last
   publish of the subject, otherwise read back with a direct get;
2. decide: not newer than the stored one (``status_records.is_newer``) → ``STALE``; with
   ``skip_unchanged``, newer but saying the same (``status_records.digest``) →
   ``UNCHANGED``; either way nothing is published;
3. publish with ``Nats-Expected-Last-Subject-Sequence`` = that sequence. If anyone wrote the
   subject since (``err_code`` 10071), forget what we knew, count a ``CONFLICT``, and decide
   again on a fresh read. A stale memory therefore costs one round trip, never a wrong
   overwrite: a lagging publisher never replaces a newer record with an older one, inside or
   outside the dedupe window.

Two publishers of the same object version are stored once: the second finds the first's
record (same version: stale) or, with an out-of-date memory, is refused by the CAS or by the
``Nats-Msg-Id`` dedupe (``DUPLICATE``).

``skip_unchanged`` is for a publisher that sees *every* version of an object, in order, one
at a time (the watcher: its watch, and a FIFO turn per object). Skipping is a decision
against what it remembers, not against a CAS, and is right only because such a publisher
has handled every older version first: a record with other content stored since would be
newer than the memory and older than the record at hand, so it was handled (and is
remembered) already. A publisher
that sees only some versions (the reconciler: the ones it wrote) must publish every newer
version, or an older record stored by a lagging publisher after its decision could end up
as the last word; so the default is off.

This module does not retry failures (the caller decides: the watcher retries forever, the
reconciler gives up, since the watcher publishes anyway), does not build records
(``logic/status_records.py``) and does not order publishes of one object within a process.
"""

from __future__ import annotations

import dataclasses
import enum
import logging

import nats.errors
import nats.js
import nats.js.errors
import prometheus_client
from nats.js import api

from lss_common import errors
from lss_common.bus import codec
from lss_common.bus import metrics as bus_metrics
from lss_common.logic import status_records, subjects
from lss_common.models import messages
from lss_common.observability import metrics as shared_metrics
from lss_common.observability import tracing

_log = logging.getLogger(__name__)

# nats-server errors.json: JSStreamWrongLastSequenceErrF.
ERR_WRONG_LAST_SEQUENCE = 10071


class StatusResult(enum.StrEnum):
    """What happened to one LSS_STATUS record (a closed set: a metric label)."""

    PUBLISHED = "published"
    UNCHANGED = "unchanged"
    """Same content as the record already stored: not published."""
    STALE = "stale"
    """The stored record is newer (or the same version): not published."""
    DUPLICATE = "duplicate"
    """Another publisher published the same version first (the msg id was deduplicated)."""
    CONFLICT = "conflict"
    """Another publisher wrote the subject in between: re-read and decided again (counted
    once per conflict; the publish then ends with one of the other results)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Last:
    """The last status record this process knows to be stored on a subject."""

    seq: int
    stored: status_records.Stored
    digest: int


_EMPTY = _Last(
    seq=0, stored=status_records.Stored(uid="", resource_version="", deleted=True), digest=0
)


class StatusPublisher:
    """Publishes status records to one status stream with compare-and-set (see the module
    docstring), remembering the last stored sequence of each subject it wrote."""

    def __init__(
        self,
        js: nats.js.JetStreamContext,
        *,
        stream: str,
        prefix: str,
        timeout_seconds: float,
        metrics: bus_metrics.BusMetrics,
        results: prometheus_client.Counter | None = None,
        deleted_ttl_seconds: float | None = None,
        max_remembered: int | None = None,
        skip_unchanged: bool = False,
    ) -> None:
        """``results``: a counter with one label, ``result`` (:class:`StatusResult`).
        ``deleted_ttl_seconds``: the TTL of deletion records (a publisher without one may not
        publish them). ``max_remembered``: how many subjects' last sequences to keep (None:
        all; the owner forgets them, e.g. on deletion records). The oldest memory goes first;
        forgetting costs one direct get on that subject's next publish. ``skip_unchanged``:
        see the module docstring."""
        self._js = js
        self._stream = stream
        self._prefix = prefix
        self._timeout_seconds = timeout_seconds
        self._metrics = metrics
        self._results = results
        self._deleted_ttl_seconds = deleted_ttl_seconds
        self._max_remembered = max_remembered
        self._skip_unchanged = skip_unchanged
        self._last: dict[subjects.ObjectKey, _Last] = {}

    async def publish(
        self, record: messages.StatusRecord, *, msg_id: str | None = None
    ) -> StatusResult:
        """Publish ``record`` unless the stored record is as new, or (``skip_unchanged``)
        older but saying the same.

        ``msg_id`` defaults to ``status_records.msg_id(record)``. Raises ``RetryableError``
        (timeouts, no stream, a lost connection) or ``PermanentError`` (the server refused
        the request); a CAS conflict is not an error (decided again).
        """
        if record.deleted and self._deleted_ttl_seconds is None:
            raise ValueError("this publisher has no TTL for deletion records")
        result = await self._publish(
            record, msg_id=status_records.msg_id(record) if msg_id is None else msg_id
        )
        self._count_result(result)
        return result

    async def read_last(self, key: subjects.ObjectKey) -> tuple[int, messages.StatusRecord | None]:
        """The stream sequence and record stored for ``key``: ``(0, None)`` if none, and
        ``(seq, None)`` if it cannot be decoded (it is then replaced, never trusted)."""
        subject = self._subject(key)
        try:
            raw = await self._js.get_last_msg(self._stream, subject, direct=True)
        except nats.js.errors.NotFoundError:
            return 0, None
        except (nats.errors.Error, nats.js.errors.Error) as error:
            raise errors.RetryableError(f"reading {subject}: {error}") from error
        try:
            record = codec.decode(raw.data or b"", message_type=messages.StatusRecord)
        except errors.InvalidMessage:
            # Another schema version? A record we cannot read is replaced, never trusted.
            _log.warning("undecodable status record replaced", extra={"subject": subject})
            record = None
        return raw.seq or 0, record

    def forget(self) -> None:
        """Forget every stored sequence this process remembers (its memory may be out of
        date: a relist skipped versions, or the server lost its store); the next publish of
        each subject reads it back first."""
        self._last.clear()

    @property
    def remembered(self) -> int:
        """How many subjects' last sequences are remembered."""
        return len(self._last)

    async def _publish(self, record: messages.StatusRecord, *, msg_id: str) -> StatusResult:
        key = subjects.ObjectKey(record.kind, record.namespace, record.name)
        subject = self._subject(key)
        mine = status_records.stored(record)
        fingerprint = status_records.digest(record)
        payload = codec.encode(record)
        conflicted = False
        while True:
            last = self._last.get(key)
            if last is None:
                last = await self._read(key)
            if last.seq:
                if not status_records.is_newer(mine, last.stored):
                    return StatusResult.STALE
                if self._skip_unchanged and last.digest == fingerprint:
                    return StatusResult.UNCHANGED
            try:
                ack = await self._publish_cas(
                    subject, payload, msg_id=msg_id, expected_seq=last.seq, record=record
                )
            except nats.js.errors.APIError as error:
                if error.err_code != ERR_WRONG_LAST_SEQUENCE:
                    raise _translate(subject, error) from error
                # Someone wrote the subject since we looked: look again and decide again.
                self._last.pop(key, None)
                self._count_result(StatusResult.CONFLICT)
                conflicted = True
                continue
            if ack.duplicate:
                self._last.pop(key, None)
                return StatusResult.DUPLICATE
            if record.deleted:
                # The subject expires with the record's TTL; remembering it would only leak.
                self._last.pop(key, None)
            else:
                self._remember(key, _Last(seq=ack.seq, stored=mine, digest=fingerprint))
            if conflicted:
                _log.debug("status published after a conflict", extra={"subject": subject})
            return StatusResult.PUBLISHED

    async def _read(self, key: subjects.ObjectKey) -> _Last:
        seq, current = await self.read_last(key)
        if seq == 0:
            return _EMPTY
        last = _Last(
            seq=seq,
            stored=status_records.stored(current)
            if current is not None
            # An unreadable record: any version replaces it, a deletion included.
            else status_records.Stored(uid="", resource_version="", deleted=False),
            digest=status_records.digest(current) if current is not None else 0,
        )
        self._remember(key, last)
        return last

    def _remember(self, key: subjects.ObjectKey, last: _Last) -> None:
        self._last.pop(key, None)
        self._last[key] = last
        if self._max_remembered is not None and len(self._last) > self._max_remembered:
            del self._last[next(iter(self._last))]

    async def _publish_cas(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str,
        expected_seq: int,
        record: messages.StatusRecord,
    ) -> api.PubAck:
        with tracing.producer_span(subject, stream=self._stream, msg_id=msg_id):
            headers = tracing.inject_headers({})
            headers[api.Header.MSG_ID.value] = msg_id
            headers[api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value] = str(expected_seq)
            try:
                ack = await self._js.publish(
                    subject,
                    payload,
                    timeout=self._timeout_seconds,
                    stream=self._stream,
                    headers=headers,
                    msg_ttl=self._deleted_ttl_seconds if record.deleted else None,
                )
            except nats.js.errors.APIError as error:
                self._count_publish(
                    shared_metrics.PublishResult.CONFLICT
                    if error.err_code == ERR_WRONG_LAST_SEQUENCE
                    else shared_metrics.PublishResult.ERROR
                )
                raise
            except (nats.errors.Error, nats.js.errors.Error) as error:
                self._count_publish(shared_metrics.PublishResult.ERROR)
                raise _translate(subject, error) from error
        self._count_publish(
            shared_metrics.PublishResult.DUPLICATE
            if ack.duplicate
            else shared_metrics.PublishResult.STORED
        )
        return ack

    def _subject(self, key: subjects.ObjectKey) -> str:
        return subjects.status_subject(
            key.kind, namespace=key.namespace, name=key.name, prefix=self._prefix
        )

    def _count_publish(self, result: shared_metrics.PublishResult) -> None:
        self._metrics.published_total.labels(self._stream, result).inc()

    def _count_result(self, result: StatusResult) -> None:
        if self._results is not None:
            self._results.labels(result).inc()


def _translate(subject: str, error: Exception) -> errors.LssError:
    if isinstance(error, nats.js.errors.BadRequestError):
        return errors.PermanentError(f"publish to {subject} rejected: {error}", reason="Rejected")
    if isinstance(error, nats.errors.MaxPayloadError):
        # The same record is as large on every retry.
        return errors.PermanentError(f"publish to {subject}: {error}", reason="TooLarge")
    return errors.RetryableError(f"publish to {subject} failed: {error}")
