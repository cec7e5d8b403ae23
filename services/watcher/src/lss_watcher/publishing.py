"""Publishing hints and status records until JetStream has them: retried forever, bounded, ordered.

* :class:`Window`: a resource's publishes in flight. ``submit`` blocks while the shared slots
  (``publish_concurrency``) are taken, which stops the resource's watch from reading further
  (backpressure onto the API server's stream); ``drain`` waits for all of them. A watch is
  re-opened only after a drain, so its resourceVersion never moves past a change whose hint
  is not stored.
* :class:`Announcer`: publishes one hint (``lss_common.bus.publishing``) or one status record,
  retrying with backoff until JetStream acknowledges it (stored, or a duplicate of the same
  id). A publish that finds no stream re-declares the streams first (a NATS server that came
  back without its store).
* Status records go through ``lss_common.bus.status_publishing`` (compare-and-set with
  ``Nats-Expected-Last-Subject-Sequence``, shared with the sandbox reconciler, which publishes
  the status it has just written): a record is published only if it is newer than the one
  stored, and a concurrent writer (another replica, the reconciler, or our own earlier
  publish) makes the CAS fail, so the decision is re-taken on fresh data. A lagging replica
  therefore never overwrites a newer record with an older one. What this module adds is the
  retrying, and one publish at a time per object, in submission order.

This module decides nothing about *what* to publish (``tracker``, ``status`` do).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats.errors
import nats.js
import nats.js.errors

from lss_common import errors
from lss_common.bus import metrics as bus_metrics
from lss_common.bus import publishing, status_publishing, topology
from lss_common.logic import backoff, subjects
from lss_common.models import messages
from lss_common.observability import logs
from lss_common.runtime import clock as clock_module
from lss_watcher import hints
from lss_watcher import metrics as watcher_metrics

_log = logging.getLogger(__name__)


class Window:
    """One resource's publishes in flight, sharing ``slots`` with every other resource."""

    def __init__(self, slots: asyncio.Semaphore, *, name: str) -> None:
        self._slots = slots
        self._name = name
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, job: Coroutine[Any, Any, None]) -> None:
        """Start ``job`` once a slot is free (waits, i.e. backpressure, while none is)."""
        try:
            await self._slots.acquire()
        except BaseException:
            job.close()
            raise
        task = asyncio.create_task(job, name=f"publish:{self._name}")
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    async def drain(self) -> None:
        """Wait until every submitted job has finished."""
        await self._idle.wait()

    async def aclose(self) -> None:
        """Cancel what is still in flight and wait for it to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and (error := task.exception()) is not None:
            # Jobs retry until they succeed; reaching here is a bug worth a loud log line.
            _log.error("publish job failed", extra={"task": self._name}, exc_info=error)
        if not self._tasks:
            self._idle.set()


class _Turn:
    """A FIFO lock for one object's status records, and how many publishes hold or await it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Announcer:
    """Publishes hints to LSS_EVENTS and status records to LSS_STATUS, retrying forever."""

    def __init__(
        self,
        js: nats.js.JetStreamContext,
        *,
        events_stream: str,
        status_stream: str,
        prefix: str,
        publish_timeout_seconds: float,
        deleted_ttl_seconds: float,
        backoff_seconds: list[float],
        bus: bus_metrics.BusMetrics,
        metrics: watcher_metrics.WatcherMetrics,
        clock: clock_module.Clock,
        ensure_streams: Callable[[], Awaitable[None]],
    ) -> None:
        self._js = js
        self._events = publishing.Publisher(
            js, stream=events_stream, metrics=bus, timeout_seconds=publish_timeout_seconds
        )
        # Every record is kept until its object is deleted (the deletion record's publish
        # forgets it), or until a relist or reconnect forgets them all. Unchanged records may
        # be skipped: the watch delivers every version, and publish_status takes them one at
        # a time per object, in order.
        self._status = status_publishing.StatusPublisher(
            js,
            stream=status_stream,
            prefix=prefix,
            timeout_seconds=publish_timeout_seconds,
            metrics=bus,
            results=metrics.status_records_total,
            deleted_ttl_seconds=deleted_ttl_seconds,
            skip_unchanged=True,
        )
        self._status_stream = status_stream
        self._prefix = prefix
        self._backoff_seconds = backoff_seconds
        self._metrics = metrics
        self._clock = clock
        self._ensure_streams = ensure_streams
        self._key_turns: dict[subjects.ObjectKey, _Turn] = {}

    # -- hints ------------------------------------------------------------------------------

    async def publish_hint(self, hint: hints.Hint, *, received_at: float | None) -> None:
        """Publish ``hint`` until JetStream acknowledges it. ``received_at`` (monotonic) is
        when the change arrived on a watch; None for lists and resyncs, which are not timed
        (their changes were committed at some unknown earlier moment)."""
        subject = hints.subject(hint, prefix=self._prefix)
        payload = hints.message(hint, observed_at=self._clock.now())
        attempt = 0
        while True:
            try:
                await self._events.publish(payload, subject=subject, msg_id=hint.msg_id)
            except errors.LssError as error:
                attempt += 1
                await self._after_failure(error, target=watcher_metrics.Target.EVENTS)
                await self._clock.sleep(self._delay(attempt))
                continue
            self._observe(watcher_metrics.Target.EVENTS, received_at)
            return

    # -- status -----------------------------------------------------------------------------

    async def publish_status(
        self, record: messages.StatusRecord, *, msg_id: str, received_at: float | None
    ) -> None:
        """Publish ``record`` unless the stored one is newer or says the same; retry forever.

        Records of one object are published one at a time, in submission order (a FIFO lock
        per object): "says the same" compares with the record published just before.
        """
        key = subjects.ObjectKey(record.kind, record.namespace, record.name)
        turn = self._key_turns.get(key)
        if turn is None:
            turn = self._key_turns[key] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                await self._publish_status_retrying(record, msg_id=msg_id, received_at=received_at)
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._key_turns[key]

    async def _publish_status_retrying(
        self, record: messages.StatusRecord, *, msg_id: str, received_at: float | None
    ) -> None:
        attempt = 0
        while True:
            try:
                result = await self._status.publish(record, msg_id=msg_id)
            except errors.PermanentError as error:
                if topology.is_stream_missing(error.__cause__):
                    attempt += 1
                    await self._after_failure(error, target=watcher_metrics.Target.STATUS)
                    await self._clock.sleep(self._delay(attempt))
                    continue
                # The server refuses this record as it is (too large, rejected by the
                # stream's limits): it would be refused for ever, and its retries held a
                # publish slot and the object's turn — every later record of the object
                # and, slot by slot, every hint waited behind it. Dropped, said loudly; the
                # object's next status is published as usual.
                self._metrics.status_records_dropped_total.inc()
                with logs.bind(outcome="dropped"):
                    _log.error(
                        "status record refused, dropped",
                        extra={"error": str(error), "subject_key": record.name},
                    )
                return
            except errors.LssError as error:
                attempt += 1
                await self._after_failure(error, target=watcher_metrics.Target.STATUS)
                await self._clock.sleep(self._delay(attempt))
                continue
            if result is status_publishing.StatusResult.PUBLISHED:
                self._observe(watcher_metrics.Target.STATUS, received_at)
            return

    async def read_status(self, key: subjects.ObjectKey) -> messages.StatusRecord | None:
        """The record stored for ``key`` (None if none, or if it cannot be decoded)."""
        _, record = await self._status.read_last(key)
        return record

    async def stored_status_keys(
        self, kind: str, *, namespace: str | None
    ) -> list[subjects.ObjectKey]:
        """Every key of ``kind`` with a record in LSS_STATUS (in ``namespace`` if given)."""
        filter_subject = (
            subjects.status_filter(kind, prefix=self._prefix)
            if namespace is None
            else ".".join(
                (
                    subjects.status_filter(kind, prefix=self._prefix).removesuffix(".>"),
                    subjects.encode_namespace(namespace),
                    "*",
                )
            )
        )
        try:
            stored = await topology.stream_subjects(
                self._js, self._status_stream, filter_subject=filter_subject
            )
        except (nats.errors.Error, nats.js.errors.Error) as error:
            if topology.is_stream_missing(error):
                await self._redeclare_streams()
            raise errors.RetryableError(f"listing status subjects: {error}") from error
        keys = []
        for subject in stored:
            try:
                keys.append(subjects.parse_status_subject(subject, prefix=self._prefix))
            except errors.InvalidMessage:
                _log.warning("foreign subject in the status stream", extra={"subject": subject})
        return keys

    def forget_stored_status(self) -> None:
        """Forget every stored record this process remembers (after a relist, which may have
        skipped versions, or a reconnect to a server that may have lost them); the next
        publish of each subject reads it back first."""
        self._status.forget()

    # -- shared -----------------------------------------------------------------------------

    async def _after_failure(
        self, error: errors.LssError, *, target: watcher_metrics.Target
    ) -> None:
        self._metrics.publish_retries_total.labels(target).inc()
        level = logging.ERROR if isinstance(error, errors.PermanentError) else logging.WARNING
        with logs.bind(outcome="retry"):
            _log.log(level, "publish failed, retrying", extra={"error": str(error)})
        if topology.is_stream_missing(error.__cause__):
            await self._redeclare_streams()

    async def _redeclare_streams(self) -> None:
        """A stream is gone (an operator deleted it, a server lost its store without a
        reconnect): declare it again, so that the retry can land. The status path meets it
        in a read (a subject it does not remember: new, or forgotten by a relist) or a list,
        not only in a publish; retried without this, such a job never ended, and the
        watcher's drain before its next watch waited for it for ever."""
        try:
            await self._ensure_streams()
        except errors.LssError as declare_error:
            _log.warning("re-declaring streams failed", extra={"error": str(declare_error)})

    def _delay(self, attempt: int) -> float:
        return backoff.delay_for_delivery(attempt, delays_seconds=self._backoff_seconds)

    def _observe(self, target: watcher_metrics.Target, received_at: float | None) -> None:
        if received_at is None:
            return
        self._metrics.publish_duration_seconds.labels(target).observe(
            max(self._clock.monotonic() - received_at, 0.0)
        )
