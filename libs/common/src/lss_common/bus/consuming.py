"""The pull-consume loop: fetch → decode → dispatch → ack / nak(delay) / term.

Outcome mapping lives here and nowhere else (STYLE convention 2):

=============================  ===========================  ===================
handler result                 acknowledgement              ``outcome`` label
=============================  ===========================  ===================
``Done``                       ack                          ack
``RequeueAfter(s)``            nak(delay=s)                 nak
``RetryableError(delay)``      nak(delay or backoff(n))     nak
``PermanentError``             ack (handler recorded it)    ack
``InvalidMessage``/undecodable term, counted, logged        term
any other exception            nak(backoff(n)), never term  error
``CancelledError``             nothing (shutdown naks)      -
=============================  ===========================  ===================

``n`` is the message's consecutive failures on this replica (``backoff.FailureCounts``), not
JetStream's delivery count, which also counts requested re-checks. Concurrency: at most
``ConsumerSettings.concurrency`` messages are held (fetched, not yet settled) at once;
messages with the same subject (= the same object) run one at a time, in order, different
subjects run in parallel (``keyed.py``). Held messages get ``in_progress()`` every third of
``ack_wait`` so long handlers (and messages queued behind them) are not redelivered
elsewhere. Shutdown (:meth:`Consumer.stop`): stop fetching, nak queued messages at once so
other replicas take them, give running handlers ``shutdown_grace_seconds``, cancel the rest
and nak them.

A fetch timeout is an idle poll, not an error. Other fetch failures are logged, counted and
retried with backoff. Handlers receive decoded Structs; :func:`current_delivery` tells them
about the delivery. This module does not declare streams or build subjects.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Coroutine

import msgspec
import nats.aio.msg
import nats.errors
import nats.js
import nats.js.errors
from nats.js import api

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.bus import codec, handover, keyed, outcomes, publishing, resync_requests, topology
from lss_common.bus import connection as bus_connection
from lss_common.bus import metrics as bus_metrics
from lss_common.logic import backoff
from lss_common.observability import logs, tracing
from lss_common.observability import metrics as shared_metrics

_log = logging.getLogger(__name__)

T = typing.TypeVar("T", bound=msgspec.Struct)

Handler = Callable[[T], Awaitable[outcomes.Outcome]]
"""Handles one decoded message; returns an outcome or raises an ``lss_common.errors`` error."""

OnDeclared = Callable[[topology.Declared], Awaitable[None]]
"""Told what each declaration of the durable consumer did (e.g. to request a resync)."""

Outcome = shared_metrics.Outcome


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """Facts about the delivery a handler is processing."""

    subject: str
    stream: str
    stream_seq: int
    num_delivered: int
    msg_id: str | None
    riders: int = 0
    """Hints of the same subject that arrived while this one was queued. They are settled
    with this message's outcome, on the promise that its pass observes what they announce:
    a handler that would skip the work for this message itself must not skip it then —
    unless each of them could be skipped too (``rider_data``)."""
    rider_data: tuple[bytes, ...] = ()
    """The riders' payloads, in arrival order."""
    rider_redelivered: bool = False
    """Whether a rider is itself a redelivery (a re-check a pass asked for, or a retry):
    then the work may not be skipped whatever the payloads say."""
    rider_seqs: tuple[int, ...] = ()
    """The riders' stream sequences: a service that keeps one message per key holding a
    re-check can tell that its holder came back riding on another message."""
    handed_over_from: tuple[int, ...] = ()
    """The stream sequences of the messages that this one and its riders are copies of
    (``handover.py``: a re-check handed over before the stream dropped its message)."""
    is_copy: bool = False
    """This message is such a copy: a re-check a pass asked for, so never a first delivery."""

    @property
    def redelivered(self) -> bool:
        """A re-check a pass asked for, or a retry (not this hint's first delivery)."""
        return self.num_delivered > 1 or self.is_copy

    @property
    def covered_seqs(self) -> tuple[int, ...]:
        """The messages this pass stands for besides this one: the riders, and the messages
        this one or a rider replaces. A service that books which message holds a key's
        re-check recognises its holder come back among them."""
        return self.rider_seqs + self.handed_over_from


_current_delivery: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "lss_bus_delivery", default=None
)


def current_delivery() -> Delivery:
    """The delivery being handled; only valid inside a handler called by :class:`Consumer`."""
    delivery = _current_delivery.get()
    if delivery is None:
        raise RuntimeError("current_delivery() called outside a message handler")
    return delivery


def current_stream_seq() -> int | None:
    """The stream sequence of the message being handled; None outside a consume loop."""
    delivery = _current_delivery.get()
    return None if delivery is None else delivery.stream_seq


def current_covered_seqs() -> tuple[int, ...]:
    """``Delivery.covered_seqs`` of the message being handled; () outside a consume loop."""
    delivery = _current_delivery.get()
    return () if delivery is None else delivery.covered_seqs


def is_first_delivery(*, alone: bool = False) -> bool:
    """Whether the message being handled is delivered for the first time (``alone``: with no
    hint riding along either). A handler called outside a consume loop (a test) handles a
    first delivery, alone."""
    delivery = _current_delivery.get()
    if delivery is None:
        return True
    return not delivery.redelivered and (not alone or delivery.riders == 0)


@dataclasses.dataclass(frozen=True, slots=True)
class _Verdict:
    """How to settle one message, and how to report it."""

    action: Outcome  # ACK, NAK or TERM: what is sent to the server
    outcome: Outcome  # the metric label (ERROR: unexpected exception, nak'ed)
    delay_seconds: float | None = None
    level: int = logging.DEBUG
    event: str = "message handled"
    error: BaseException | None = None
    failed: bool = False
    """A failure (retried with the backoff unless ``delay_seconds`` is given): counted in
    ``backoff.FailureCounts``; anything else clears the message's count."""
    requeue: bool = False
    """A re-check the handler asked for (``RequeueAfter``): may be handed over."""


@dataclasses.dataclass(slots=True)
class _Held:
    msg: nats.aio.msg.Msg
    running: bool = False


class Consumer(typing.Generic[T]):
    """A durable pull consumer bound to ``handler``. :meth:`run` until :meth:`stop`."""

    def __init__(
        self,
        js: nats.js.JetStreamContext,
        *,
        spec: topology.ConsumerSpec,
        stream: str,
        message_type: type[T],
        handler: Handler[T],
        settings: settings_module.ConsumerSettings,
        metrics: bus_metrics.BusMetrics,
        on_declared: OnDeclared | None = None,
        publish_timeout_seconds: float = 5.0,
        declare: bool = True,
    ) -> None:
        """``publish_timeout_seconds``: for the copy of a handed-over re-check; ``declare``
        False: the consumer is only checked, never created or changed
        (``nats.declare_topology``)."""
        self._declare_topology = declare
        self._js = js
        self._spec = spec
        self._stream = stream
        self._message_type = message_type
        self._handler = handler
        self._settings = settings
        self._metrics = metrics
        self._on_declared = on_declared
        self._copies = publishing.Publisher(
            js, stream=stream, metrics=metrics, timeout_seconds=publish_timeout_seconds
        )
        # The stream's max age (None: unlimited), read from the server at each declaration.
        self._max_age_seconds: float | None = None
        self._held: dict[int, _Held] = {}
        # A message failing again comes back within the schedule's longest delay (and may
        # then wait a while behind others, up to ack_wait when redelivered).
        self._failures = backoff.FailureCounts(
            ttl_seconds=2 * max(settings.backoff_seconds) + settings.ack_wait_seconds
        )
        # Per subject, the messages waiting for a pass that has not started yet: a handler
        # reads the current state when it starts, so that one pass covers all of them.
        self._coalescing: dict[str, list[nats.aio.msg.Msg]] = {}
        # Riders cost no pass, so they do not use up the concurrency window (else a burst
        # of hints for busy keys would stop fetching hints for idle ones).
        self._riders: set[int] = set()
        self._stopping = asyncio.Event()
        self._stop_asked_at: float | None = None
        # Set whenever a held slot frees up or a stop is requested: wakes the fetch loop.
        self._wakeup = asyncio.Event()
        self._started = False

    @property
    def in_flight(self) -> int:
        """Messages fetched and not yet settled."""
        return len(self._held)

    def stop(self) -> None:
        """Ask :meth:`run` to stop fetching and drain; it returns when the drain is done."""
        if self._stop_asked_at is None:
            self._stop_asked_at = asyncio.get_running_loop().time()
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Declare the consumer, then fetch and handle messages until :meth:`stop`.

        Returns after a graceful drain. If cancelled instead, running handlers are cancelled
        and every held message is nak'ed before the CancelledError propagates.
        Raises ``nats.errors.ConnectionClosedError`` if the connection is closed under it.
        """
        if self._started:
            raise RuntimeError(f"consumer {self._spec.durable} already ran")
        self._started = True
        await self._declare()
        psub = await self._js.pull_subscribe_bind(durable=self._spec.durable, stream=self._stream)
        executor = keyed.KeyedExecutor(concurrency=self._settings.concurrency)
        heartbeats = asyncio.create_task(
            self._send_heartbeats(), name=f"heartbeats:{self._spec.durable}"
        )
        graceful = False
        _log.info(
            "consumer started", extra={"stream": self._stream, "consumer": self._spec.durable}
        )
        try:
            await self._fetch_loop(psub, executor)
            graceful = True
        finally:
            # Unsubscribe before any nak: a pull request cancelled mid-fetch lingers on the
            # server until it expires, and a nak'ed message handed to it would wait ack_wait
            # in a dead inbox. Without interest in its inbox the server skips that request.
            try:
                try:
                    await psub.unsubscribe()
                except (nats.errors.Error, OSError) as exc:
                    _log.debug("unsubscribe failed", extra={"error": repr(exc)})
                await self._drain(executor, graceful=graceful)
            finally:
                # Also when the drain itself is cancelled: no in_progress for a message
                # that was nak'ed, or for a task that is gone.
                heartbeats.cancel()
                await asyncio.gather(heartbeats, return_exceptions=True)
            _log.info(
                "consumer stopped", extra={"stream": self._stream, "consumer": self._spec.durable}
            )

    async def _fetch_loop(
        self, psub: nats.js.JetStreamContext.PullSubscription, executor: keyed.KeyedExecutor
    ) -> None:
        failures_in_row = 0
        while await self._wait_for_capacity():
            batch = min(self._settings.fetch_batch, self._settings.concurrency - self._passes())
            try:
                msgs = await psub.fetch(batch, timeout=self._settings.fetch_timeout_seconds)
            except TimeoutError:
                # Idle poll (nats.errors.TimeoutError is a TimeoutError); also what a fetch
                # does while the connection is down, which the connection callbacks report.
                continue
            except nats.errors.ConnectionClosedError:
                raise
            except Exception as exc:
                failures_in_row += 1
                await self._after_fetch_error(exc, failures_in_row=failures_in_row)
                continue
            failures_in_row = 0
            for msg in msgs:
                await self._accept(msg, executor)

    async def _after_fetch_error(self, exc: Exception, *, failures_in_row: int) -> None:
        kind = _classify_fetch_error(exc)
        self._metrics.fetch_errors_total.labels(self._stream, kind).inc()
        delay = backoff.delay_for_delivery(
            failures_in_row, delays_seconds=self._settings.backoff_seconds
        )
        _log.warning(
            "fetch failed",
            extra={
                "stream": self._stream,
                "consumer": self._spec.durable,
                "error": repr(exc),
                "failures_in_row": failures_in_row,
                "retry_in_seconds": delay,
            },
        )
        if kind is bus_metrics.FetchError.SERVER:
            # The consumer may have been deleted (or the server restarted without its
            # store); declaring is idempotent, so re-assert it before polling again.
            try:
                await self._declare()
            except errors.LssError as declare_exc:
                _log.warning("consumer re-declare failed", extra={"error": repr(declare_exc)})
        await self._sleep_unless_stopping(delay)

    async def _declare(self) -> None:
        declared = await topology.declare_consumer(
            self._js,
            self._spec,
            stream=self._stream,
            settings=self._settings,
            create=self._declare_topology,
        )
        try:
            self._max_age_seconds = await topology.stream_max_age(self._js, self._stream)
        except errors.LssError as exc:
            # Kept from the last declaration: only when re-checks are handed over depends on it.
            _log.warning("stream max age not read", extra={"error": repr(exc)})
        if self._on_declared is not None:
            await self._on_declared(declared)

    async def _wait_for_capacity(self) -> bool:
        """Wait for a free held slot; False once a stop is requested."""
        while not self._stopping.is_set() and self._passes() >= self._settings.concurrency:
            self._wakeup.clear()
            await self._wakeup.wait()
        return not self._stopping.is_set()

    def _passes(self) -> int:
        """Held messages that each need a pass of their own (running or queued)."""
        return len(self._held) - len(self._riders)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    async def _accept(self, msg: nats.aio.msg.Msg, executor: keyed.KeyedExecutor) -> None:
        if self._stopping.is_set():
            # Fetched while a stop was requested: hand it straight to another replica.
            await self._settle(msg, _Verdict(Outcome.NAK, Outcome.NAK, event="nak on shutdown"))
            return
        self._held[id(msg)] = _Held(msg)
        self._metrics.in_flight.labels(self._stream).set(len(self._held))
        waiting = self._coalescing.get(msg.subject)
        if waiting is not None:
            # A pass for this object is queued and has not started: it will observe the
            # state this hint announces, so the hint rides along instead of costing a pass.
            waiting.append(msg)
            self._riders.add(id(msg))
            self._metrics.coalesced_total.labels(self._stream).inc()
            return
        self._coalescing[msg.subject] = []
        # The subject names one object: serialising per subject serialises per object.
        executor.submit(msg.subject, lambda: self._process(msg))

    async def _process(self, msg: nats.aio.msg.Msg) -> None:
        # From here on, a new hint for this subject needs a pass of its own.
        riders = self._coalescing.pop(msg.subject, [])
        held = self._held.get(id(msg))
        if held is None or held.msg is not msg:
            return  # already nak'ed by the shutdown drain, riders with it
        held.running = True
        started = time.monotonic()
        delivery = _delivery_of(msg, stream=self._stream, riders=riders)
        with (
            logs.bind(
                subject=delivery.subject,
                stream_seq=delivery.stream_seq,
                delivered=delivery.num_delivered,
                msg_id=delivery.msg_id,
            ),
            tracing.consumer_span(
                delivery.subject,
                stream=self._stream,
                headers=msg.headers,
                delivered=delivery.num_delivered,
                msg_id=delivery.msg_id,
            ) as span,
        ):
            token = _current_delivery.set(delivery)
            try:
                verdict = await self._decide(msg, delivery)
            finally:
                _current_delivery.reset(token)
            if verdict.requeue:
                verdict = await self._requeue(msg, delivery, verdict)
            if verdict.outcome in (Outcome.TERM, Outcome.ERROR) and verdict.error is not None:
                span.record_exception(verdict.error)
            await self._settle(msg, verdict)
            await self._settle_riders(riders, verdict, head_seq=delivery.stream_seq)
            duration = time.monotonic() - started
            self._metrics.handle_duration_seconds.labels(self._stream, verdict.outcome).observe(
                duration
            )
            _log.log(
                verdict.level,
                verdict.event,
                exc_info=verdict.error if verdict.outcome is Outcome.ERROR else None,
                extra={
                    "outcome": verdict.outcome.value,
                    "error": None if verdict.error is None else repr(verdict.error),
                    "delay_seconds": verdict.delay_seconds,
                    "duration_seconds": round(duration, 6),
                },
            )

    async def _decide(self, msg: nats.aio.msg.Msg, delivery: Delivery) -> _Verdict:
        """Decode, run the handler, and map the result: the one outcome mapping."""
        try:
            message = codec.decode(msg.data, message_type=self._message_type)
        except errors.InvalidMessage as exc:
            self._metrics.undecodable_total.labels(self._stream).inc()
            return _Verdict(
                Outcome.TERM,
                Outcome.TERM,
                level=logging.ERROR,
                event="message undecodable",
                error=exc,
            )
        verdict = await self._run(message)
        if verdict.failed:
            failures = self._failures.failed(delivery.stream_seq)
            if verdict.delay_seconds is None:
                verdict = dataclasses.replace(
                    verdict,
                    delay_seconds=backoff.delay_for_delivery(
                        failures, delays_seconds=self._settings.backoff_seconds
                    ),
                )
        else:
            self._failures.settled(delivery.stream_seq)
        return verdict

    async def _run(self, message: T) -> _Verdict:
        """The handler's result or error as a verdict (a failure's delay left to the backoff
        unless the error names one)."""
        try:
            # Typed as object: untyped handler code can return anything, and that is a bug
            # to report, not to ack.
            result: object = await self._handler(message)
        except errors.InvalidMessage as exc:
            return _Verdict(
                Outcome.TERM,
                Outcome.TERM,
                level=logging.ERROR,
                event="message invalid",
                error=exc,
            )
        except errors.PermanentError as exc:
            return _Verdict(
                Outcome.ACK,
                Outcome.ACK,
                level=logging.ERROR,
                event="message failed permanently",
                error=exc,
            )
        except errors.RetryableError as exc:
            return _Verdict(
                Outcome.NAK,
                Outcome.NAK,
                delay_seconds=exc.delay_seconds,
                level=logging.WARNING,
                event="message will be retried",
                error=exc,
                failed=True,
            )
        except Exception as exc:
            # A bug or an untranslated library error: retry (never term, never lose work).
            return _Verdict(
                Outcome.NAK,
                Outcome.ERROR,
                level=logging.ERROR,
                failed=True,
                event="handler raised unexpectedly",
                error=exc,
            )
        if isinstance(result, outcomes.Done):
            return _Verdict(Outcome.ACK, Outcome.ACK)
        if isinstance(result, outcomes.RequeueAfter):
            return _Verdict(
                Outcome.NAK,
                Outcome.NAK,
                delay_seconds=result.seconds,
                event="message requeued",
                requeue=True,
            )
        return _Verdict(
            Outcome.NAK,
            Outcome.ERROR,
            level=logging.ERROR,
            failed=True,
            event="handler returned no outcome",
            error=TypeError(f"handler returned {type(result).__name__}, not an Outcome"),
        )

    async def _requeue(
        self, msg: nats.aio.msg.Msg, delivery: Delivery, verdict: _Verdict
    ) -> _Verdict:
        """The re-check's nak, shortened to the message's life or handed over to a copy
        (``handover.py``)."""
        plan = handover.plan(
            delay_seconds=verdict.delay_seconds or 0.0,
            age_seconds=_age_seconds(msg),
            num_delivered=delivery.num_delivered,
            max_age_seconds=self._max_age_seconds,
            max_deliver=self._settings.max_deliver,
            ack_wait_seconds=self._settings.ack_wait_seconds,
        )
        if not plan.hand_over:
            return dataclasses.replace(verdict, delay_seconds=plan.delay_seconds)
        headers = {
            key: value
            for key, value in (msg.headers or {}).items()
            if key not in (api.Header.MSG_ID.value, handover.HEADER)
        }
        headers[handover.HEADER] = str(delivery.stream_seq)
        try:
            await self._copies.publish_bytes(
                msg.data,
                subject=msg.subject,
                msg_id=handover.copy_msg_id(stream=self._stream, stream_seq=delivery.stream_seq),
                headers=headers,
            )
        except errors.LssError as exc:
            # Kept on the original, back soon (the schedule's longest retry, never later than
            # asked): its re-check as asked would come after the stream dropped it, so the
            # hand-over is tried again while the message still exists.
            self._metrics.handovers_total.labels(self._stream, "failed").inc()
            _log.warning("re-check not handed over", extra={"error": repr(exc)})
            retry = min(plan.delay_seconds, self._settings.backoff_seconds[-1])
            return dataclasses.replace(verdict, delay_seconds=retry)
        self._metrics.handovers_total.labels(self._stream, "handed_over").inc()
        return _Verdict(Outcome.ACK, Outcome.ACK, level=logging.INFO, event="re-check handed over")

    def _release(self, msg: nats.aio.msg.Msg) -> None:
        """Free the message's held slot (it is settled, or needs no settling)."""
        self._riders.discard(id(msg))
        if self._held.pop(id(msg), None) is not None:
            self._metrics.in_flight.labels(self._stream).set(len(self._held))
            self._wakeup.set()

    async def _settle(self, msg: nats.aio.msg.Msg, verdict: _Verdict) -> None:
        # Release the slot before the ack is sent: the heartbeat loop must not touch it again.
        self._release(msg)
        self._metrics.messages_total.labels(self._stream, verdict.outcome).inc()
        try:
            if verdict.action is Outcome.ACK:
                await msg.ack()
            elif verdict.action is Outcome.TERM:
                await msg.term()
            else:
                await msg.nak(delay=verdict.delay_seconds)
        except (nats.errors.Error, OSError) as exc:
            # Not lost: JetStream redelivers an unsettled message after ack_wait.
            self._metrics.settle_errors_total.labels(self._stream).inc()
            _log.warning(
                "acknowledgement not sent",
                extra={"subject": msg.subject, "outcome": verdict.action.value, "error": repr(exc)},
            )

    async def _settle_riders(
        self, riders: list[nats.aio.msg.Msg], verdict: _Verdict, *, head_seq: int
    ) -> None:
        """Settle the hints a pass covered.

        - The pass succeeded (an ack, or a re-check it asked for): it started after they
          arrived, so they are acked.
        - It failed: they are nak'ed with its delay, and come back with its retry. Acked on
          the promise of that retry, they were lost if it never came (a copy of the head
          acked elsewhere after a redelivery).
        - It was termed: nothing comes back, so they are nak'ed to be handled on their own.

        A rider that is another delivery of the head itself (the same stream sequence,
        redelivered after ack_wait while queued behind it) is not settled at all: the server
        keeps one state per stream sequence, and acking that copy would cancel the nak just
        sent for the head (its retry or its re-check)."""
        for rider in riders:
            if self._held.get(id(rider)) is None:
                continue  # settled by the shutdown drain already
            if _stream_seq(rider) == head_seq:
                self._release(rider)
                continue
            if verdict.action is Outcome.TERM:
                await self._settle(rider, _Verdict(Outcome.NAK, Outcome.NAK))
            elif verdict.failed:
                await self._settle(
                    rider,
                    _Verdict(
                        Outcome.NAK, Outcome.NAK, delay_seconds=verdict.delay_seconds, failed=True
                    ),
                )
            else:
                await self._settle(
                    rider, _Verdict(Outcome.ACK, Outcome.ACK, event="hint covered by a pass")
                )

    async def _send_heartbeats(self) -> None:
        interval = self._settings.ack_wait_seconds / 3
        while True:
            await asyncio.sleep(interval)
            for held in list(self._held.values()):
                if self._held.get(id(held.msg)) is not held:
                    # Settled while earlier heartbeats were sent: an in_progress after its
                    # nak would bring it back at ack_wait instead of the nak's delay.
                    continue
                try:
                    await held.msg.in_progress()
                except (nats.errors.Error, OSError) as exc:
                    self._metrics.settle_errors_total.labels(self._stream).inc()
                    _log.debug("in-progress not sent", extra={"error": repr(exc)})

    async def _drain(self, executor: keyed.KeyedExecutor, *, graceful: bool) -> None:
        """Nak what is queued, give running handlers the grace, then cancel them and nak
        their messages — also when the drain itself is cancelled (the service's own
        shutdown deadline): every held message goes back at once, none waits ack_wait."""
        try:
            # Queued messages go back at once, so other replicas can take them meanwhile.
            for held in [held for held in self._held.values() if not held.running]:
                await self._settle(held.msg, _Verdict(Outcome.NAK, Outcome.NAK))
            if graceful and self._held:
                _log.info("draining in-flight messages", extra={"in_flight": len(self._held)})
                try:
                    async with asyncio.timeout_at(self._drain_deadline()):
                        await executor.join()
                except TimeoutError:
                    _log.warning(
                        "shutdown grace expired, cancelling handlers",
                        extra={"in_flight": len(self._held)},
                    )
        finally:
            await executor.aclose()
            for held in list(self._held.values()):
                await self._settle(held.msg, _Verdict(Outcome.NAK, Outcome.NAK))

    def _drain_deadline(self) -> float:
        """When running handlers are cancelled: ``shutdown_grace_seconds`` after the stop
        was asked for, less a margin for the cancel and the naks, so that the drain ends
        before the service's shutdown deadline (counted from about the same moment) would
        cancel it. Time spent finishing the last fetch counts against the grace."""
        grace = self._settings.shutdown_grace_seconds
        margin = min(1.0, grace / 10)
        asked = self._stop_asked_at
        loop_time = asyncio.get_running_loop().time()
        start = loop_time if asked is None else asked
        return start + grace - margin


def _delivery_of(msg: nats.aio.msg.Msg, *, stream: str, riders: list[nats.aio.msg.Msg]) -> Delivery:
    metadata = msg.metadata
    copy_of = handover.handed_over_from(msg.headers)
    rider_copies_of = [seq for rider in riders if (seq := handover.handed_over_from(rider.headers))]
    return Delivery(
        subject=msg.subject,
        stream=stream,
        stream_seq=metadata.sequence.stream,
        num_delivered=metadata.num_delivered,
        msg_id=(msg.headers or {}).get(api.Header.MSG_ID.value),
        riders=len(riders),
        rider_data=tuple(rider.data for rider in riders),
        rider_redelivered=bool(rider_copies_of)
        or any(_num_delivered(rider) > 1 for rider in riders),
        rider_seqs=tuple(seq for rider in riders if (seq := _stream_seq(rider)) is not None),
        handed_over_from=(() if copy_of is None else (copy_of,)) + tuple(rider_copies_of),
        is_copy=copy_of is not None,
    )


def _age_seconds(msg: nats.aio.msg.Msg) -> float:
    """How long ago the stream stored the message (0 when unknown)."""
    try:
        stored = msg.metadata.timestamp
    except Exception:  # not a JetStream message
        return 0.0
    return max(0.0, time.time() - stored.timestamp())


def _stream_seq(msg: nats.aio.msg.Msg) -> int | None:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:  # not a JetStream message
        return None


def _num_delivered(msg: nats.aio.msg.Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # not a JetStream message: never counted as a redelivery
        return 1


def _classify_fetch_error(exc: Exception) -> bus_metrics.FetchError:
    if isinstance(exc, nats.js.errors.APIError):
        return bus_metrics.FetchError.SERVER
    if isinstance(exc, nats.errors.Error | OSError):
        return bus_metrics.FetchError.CONNECTION
    return bus_metrics.FetchError.OTHER


class Spawner(typing.Protocol):
    """Starts an owned, guarded task (``lss_common.runtime.tasks.TaskSupervisor`` is one)."""

    def spawn(
        self, coro: Coroutine[typing.Any, typing.Any, None], *, name: str
    ) -> asyncio.Task[None]: ...


class ConnectionSource(typing.Protocol):
    """Whatever holds the open connection once started (``connection.NatsConnection``)."""

    @property
    def connection(self) -> bus_connection.Connection: ...

    @property
    def settings(self) -> settings_module.NatsSettings: ...


class ConsumerComponent(typing.Generic[T]):
    """A :class:`Consumer` as a service component (``lss_common.runtime.service.Component``).

    ``start()`` declares the durable consumer (so a configuration error fails the start, and
    hints published from then on are retained for us) and runs the loop as a guarded task;
    ``stop()`` drains it. If the service's shutdown deadline cancels ``stop()``, the loop is
    cancelled too and naks what it holds.

    Whenever a declaration (at start, or after the consumer vanished under the running loop)
    creates, re-creates or updates the consumer, it asks the watchers for a resync round
    (``resync_requests``): the hints published before the consumer existed were never stored
    for it. Best effort; a failed request never fails the start.
    """

    def __init__(
        self,
        nats: ConnectionSource,
        *,
        spec: topology.ConsumerSpec,
        stream: str,
        message_type: type[T],
        handler: Handler[T],
        settings: settings_module.ConsumerSettings,
        metrics: bus_metrics.BusMetrics,
        tasks: Spawner,
    ) -> None:
        self._nats = nats
        self._spec = spec
        self._stream = stream
        self._message_type = message_type
        self._handler = handler
        self._settings = settings
        self._metrics = metrics
        self._tasks = tasks
        self._consumer: Consumer[T] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"consumer:{self._spec.durable}"

    async def declare_topology(self) -> None:
        """Create (or correct) this consumer, whatever ``nats.declare_topology`` says: what
        ``--declare-topology`` runs, under a NATS user that may."""
        await topology.declare_consumer(
            self._nats.connection.jetstream,
            self._spec,
            stream=self._stream,
            settings=self._settings,
        )

    async def start(self) -> None:
        js = self._nats.connection.jetstream
        declare = self._nats.settings.declare_topology
        declared = await topology.declare_consumer(
            js, self._spec, stream=self._stream, settings=self._settings, create=declare
        )
        await self._request_resync_if_needed(declared)
        self._consumer = Consumer(
            js,
            spec=self._spec,
            stream=self._stream,
            message_type=self._message_type,
            handler=self._handler,
            settings=self._settings,
            metrics=self._metrics,
            on_declared=self._request_resync_if_needed,
            publish_timeout_seconds=self._nats.settings.publish_timeout_seconds,
            declare=declare,
        )
        self._task = self._tasks.spawn(self._consumer.run(), name=self.name)

    async def stop(self) -> None:
        if self._consumer is None or self._task is None:
            return
        self._consumer.stop()
        # Awaiting the task (not shielding it): a cancelled stop() cancels the loop as well.
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def is_ready(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _request_resync_if_needed(self, declared: topology.Declared) -> None:
        if not resync_requests.is_needed(declared):
            return
        nats_settings = self._nats.settings
        await resync_requests.request_resync(
            self._nats.connection.client,
            consumer=self._spec.durable,
            stream=self._stream,
            prefix=nats_settings.subject_prefix,
            timeout_seconds=nats_settings.publish_timeout_seconds,
            metrics=self._metrics,
        )
