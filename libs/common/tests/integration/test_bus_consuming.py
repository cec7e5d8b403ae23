"""The pull-consume loop against a real nats-server.

Matrix (outcome mapping): Done → ack; unexpected exception → nak with backoff, redelivered
with a higher delivery count, never termed; RetryableError → nak(delay); RequeueAfter → nak
(delay); PermanentError → ack, not redelivered; undecodable / InvalidMessage → term, counted,
not redelivered. Concurrency: same key never concurrent and in order, different keys in
parallel, at most ``concurrency`` held, hints queued behind a pass of their key ride along
on it and the pass is told how many; in_progress heartbeats keep a long handler's message
from being redelivered. Shutdown: queued messages nak'ed, running ones finish; handlers past
the grace are cancelled and their messages nak'ed; cancelling run() naks too.
No wall-clock assertions: redelivery is observed through delivery counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.bus import codec, consuming, outcomes, publishing, topology
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.testing import bus as testing_bus
from lss_common.testing import eventually

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
DEADLINE_SECONDS = 20.0

Handler = Callable[[messages.ChangeEvent], Awaitable[outcomes.Outcome]]


@dataclasses.dataclass
class Call:
    name: str
    delivered: int
    tag: str | None


@dataclasses.dataclass
class Recorder:
    """Wraps a handler body; records (name, delivery count) of every call."""

    body: Callable[[messages.ChangeEvent, int], Awaitable[outcomes.Outcome]]
    calls: list[Call] = dataclasses.field(default_factory=list)

    async def __call__(self, message: messages.ChangeEvent) -> outcomes.Outcome:
        delivered = consuming.current_delivery().num_delivered
        self.calls.append(Call(message.name, delivered, message.resource_version))
        return await self.body(message, delivered)

    def of(self, name: str) -> list[int]:
        return [call.delivered for call in self.calls if call.name == name]


def spec_for(
    settings: settings_module.CommonSettings, durable: str = "svc"
) -> topology.ConsumerSpec:
    return topology.ConsumerSpec(
        durable, (subjects.events_filter("sandbox", prefix=settings.nats.subject_prefix),)
    )


async def send(bus: testing_bus.Bus, name: str, *, tag: str | None = None) -> None:
    """Publish a hint for sandbox ns/<name>; ``tag`` (in resourceVersion) tells copies apart."""
    settings = bus.settings
    publisher = publishing.Publisher(
        bus.connection.jetstream,
        stream=settings.nats.events_stream,
        metrics=bus.metrics,
        timeout_seconds=5.0,
    )
    await publisher.publish(
        messages.ChangeEvent(
            kind="sandbox",
            namespace="ns",
            name=name,
            resource_version=tag,
            event_type="MODIFIED",
            observed_at=NOW,
        ),
        subject=subject_of(settings, name),
        msg_id=None,
    )


def subject_of(settings: settings_module.CommonSettings, name: str) -> str:
    return subjects.event_subject(
        "sandbox", namespace="ns", name=name, prefix=settings.nats.subject_prefix
    )


@contextlib.asynccontextmanager
async def consuming_with(
    bus: testing_bus.Bus,
    handler: Handler,
    *,
    durable: str = "svc",
    settings: settings_module.ConsumerSettings | None = None,
) -> AsyncIterator[consuming.Consumer[messages.ChangeEvent]]:
    """Declare the consumer (so publishes are retained), run it, stop it gracefully after."""
    consumer = await declared_consumer(
        bus, handler, spec=spec_for(bus.settings, durable), settings=settings
    )
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.stop()
        await task


async def declared_consumer(
    bus: testing_bus.Bus,
    handler: Handler,
    *,
    spec: topology.ConsumerSpec,
    settings: settings_module.ConsumerSettings | None = None,
) -> consuming.Consumer[messages.ChangeEvent]:
    """A consumer on the bus's events stream, declared (so publishes are retained), not
    running: the caller runs it."""
    consumer_settings = settings or bus.settings.consumer
    stream = bus.settings.nats.events_stream
    await topology.declare_consumer(
        bus.connection.jetstream, spec, stream=stream, settings=consumer_settings
    )
    return consuming.Consumer(
        bus.connection.jetstream,
        spec=spec,
        stream=stream,
        message_type=messages.ChangeEvent,
        handler=handler,
        settings=consumer_settings,
        metrics=bus.metrics,
    )


async def consumer_settled(bus: testing_bus.Bus, durable: str = "svc") -> bool:
    info = await bus.connection.jetstream.consumer_info(bus.settings.nats.events_stream, durable)
    return bool(info.num_ack_pending == 0 and info.num_pending == 0)


def outcome_count(bus: testing_bus.Bus, outcome: str) -> float:
    return bus.sample(
        "llmsafespace_bus_messages_total", stream=bus.settings.nats.events_stream, outcome=outcome
    )


async def wait_for(predicate: Callable[[], object], describe: str) -> None:
    await eventually.eventually(predicate, timeout_seconds=DEADLINE_SECONDS, describe=describe)


async def done(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
    return outcomes.DONE


async def test_done_is_acked(nats_url: str) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:
        recorder = Recorder(done)
        async with consuming_with(bus, recorder):
            for name in ("a", "b.c", "d"):
                await send(bus, name)
            await wait_for(lambda: len(recorder.calls) == 3, "3 handled")
            await wait_for(lambda: consumer_settled(bus), "all acked")
        assert outcome_count(bus, "ack") == 3
        assert sorted(call.name for call in recorder.calls) == ["a", "b.c", "d"]
        stream = await bus.connection.jetstream.stream_info(bus.settings.nats.events_stream)
        assert stream.state.messages == 0  # interest retention: acked by all → removed


async def test_unexpected_exception_is_naked_and_redelivered(nats_url: str) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:

        async def fail_first(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if delivered == 1:
                raise RuntimeError("bug on first delivery")
            return outcomes.DONE

        recorder = Recorder(fail_first)
        async with consuming_with(bus, recorder):
            await send(bus, "a")
            await wait_for(lambda: recorder.of("a") == [1, 2], "redelivered once")
            await wait_for(lambda: consumer_settled(bus), "acked")
        assert outcome_count(bus, "error") == 1
        assert outcome_count(bus, "ack") == 1
        assert outcome_count(bus, "term") == 0


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(errors.RetryableError("apiserver busy"), id="retryable-backoff"),
        pytest.param(errors.RetryableError("later", delay_seconds=0.1), id="retryable-delay"),
        pytest.param(errors.ConflictError("409 on sandbox ns/a"), id="conflict"),
        pytest.param(outcomes.RequeueAfter(0.2), id="requeue-after"),
    ],
)
async def test_nak_outcomes_redeliver(nats_url: str, first: Exception | outcomes.Outcome) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if delivered > 1:
                return outcomes.DONE
            if isinstance(first, Exception):
                raise first
            return first

        recorder = Recorder(body)
        async with consuming_with(bus, recorder):
            await send(bus, "a")
            await wait_for(lambda: recorder.of("a") == [1, 2], "redelivered once")
            await wait_for(lambda: consumer_settled(bus), "acked")
        assert outcome_count(bus, "nak") == 1
        assert outcome_count(bus, "ack") == 1
        assert outcome_count(bus, "error") == 0


async def test_the_backoff_counts_failures_not_requested_re_checks(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A message re-checked four times (``RequeueAfter``: a deletion poll) then failing twice
    is retried after the schedule's first delay, then its second: JetStream's delivery count
    (5, then 6) would pick the last (an hour here)."""
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if delivered <= 4:
                return outcomes.RequeueAfter(0.01)
            if delivered <= 6:
                raise RuntimeError(f"failure on delivery {delivered}")
            return outcomes.DONE

        recorder = Recorder(body)
        settings = bus.settings.consumer.model_copy(update={"backoff_seconds": [0.05, 0.1, 3600.0]})
        with caplog.at_level(logging.ERROR, logger="lss_common.bus.consuming"):
            async with consuming_with(bus, recorder, settings=settings):
                await send(bus, "a")
                await wait_for(lambda: recorder.of("a") == [1, 2, 3, 4, 5, 6, 7], "7 deliveries")
                await wait_for(lambda: consumer_settled(bus), "acked")
        delays = [
            getattr(record, "delay_seconds", None)
            for record in caplog.records
            if record.getMessage() == "handler raised unexpectedly"
        ]
        assert delays == [0.05, 0.1]
        assert outcome_count(bus, "error") == 2
        assert outcome_count(bus, "nak") == 4


@pytest.mark.parametrize(
    ("raised", "outcome"),
    [
        (errors.PermanentError("runtime python:9 not found", reason="RuntimeNotFound"), "ack"),
        (errors.InvalidMessage("sandbox ns/a: hint for an unknown kind"), "term"),
    ],
)
async def test_final_failures_are_not_redelivered(
    nats_url: str, raised: Exception, outcome: str
) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if message.name == "bad":
                raise raised
            return outcomes.DONE

        recorder = Recorder(body)
        async with consuming_with(bus, recorder):
            await send(bus, "bad")
            await wait_for(lambda: recorder.of("bad") == [1], "bad handled")
            # A later message on the same key is handled after it: the key was not stuck.
            await send(bus, "bad-then-good")
            await wait_for(lambda: recorder.of("bad-then-good") == [1], "next handled")
            await wait_for(lambda: consumer_settled(bus), "nothing pending")
        assert recorder.of("bad") == [1]
        assert outcome_count(bus, outcome) == (2 if outcome == "ack" else 1)
        info = await bus.connection.jetstream.consumer_info(bus.settings.nats.events_stream, "svc")
        assert info.num_redelivered == 0


async def test_undecodable_message_is_termed_and_counted(nats_url: str) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:
        recorder = Recorder(done)
        stream = bus.settings.nats.events_stream
        async with consuming_with(bus, recorder):
            await bus.connection.jetstream.publish(subject_of(bus.settings, "x"), b"\x00garbage")
            await bus.connection.jetstream.publish(subject_of(bus.settings, "y"), b'{"v": 99}')
            await send(bus, "after")
            await wait_for(lambda: recorder.of("after") == [1], "valid message handled")
            await wait_for(lambda: consumer_settled(bus), "nothing pending")
        assert [call.name for call in recorder.calls] == ["after"]
        assert bus.sample("llmsafespace_bus_undecodable_total", stream=stream) == 2
        assert outcome_count(bus, "term") == 2
        info = await bus.connection.jetstream.consumer_info(stream, "svc")
        assert info.num_redelivered == 0
        assert (await bus.connection.jetstream.stream_info(stream)).state.messages == 0


async def test_same_key_serial_different_keys_parallel(nats_url: str) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:
        active: dict[str, int] = {}
        peak: dict[str, int] = {}
        order: list[str] = []
        b_running = asyncio.Event()

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            key = message.name
            active[key] = active.get(key, 0) + 1
            peak[key] = max(peak.get(key, 0), active[key])
            try:
                if key == "b":
                    b_running.set()
                elif message.resource_version == "0":
                    # Only finishes if key b runs while a's first message is still running.
                    await b_running.wait()
                for _ in range(3):
                    await asyncio.sleep(0)
                order.append(f"{key}#{message.resource_version}")
            finally:
                active[key] -= 1
            return outcomes.DONE

        recorder = Recorder(body)
        async with consuming_with(bus, recorder):
            for index in range(5):
                await send(bus, "a", tag=str(index))
            await send(bus, "b", tag="0")
            # a#0 blocks until b runs, so a#1..a#4 all arrive while one pass for "a" waits.
            await wait_for(lambda: outcome_count(bus, "ack") == 6, "all six acked")
        assert peak == {"a": 1, "b": 1}
        handled_a = [name for name in order if name.startswith("a")]
        assert handled_a[0] == "a#0"
        # Hints that arrive while a pass for their key is queued ride along with it: the
        # pass starts after they arrived, so it observes what they announce.
        assert len(handled_a) + coalesced(bus) == 5
        assert handled_a == sorted(handled_a)


async def test_hint_arriving_while_its_key_runs_gets_its_own_pass(nats_url: str) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:
        first_running = asyncio.Event()
        release = asyncio.Event()
        order: list[str] = []

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if message.resource_version == "0":
                first_running.set()
                await release.wait()
            order.append(message.resource_version or "")
            return outcomes.DONE

        async with consuming_with(bus, Recorder(body)):
            await send(bus, "a", tag="0")
            await first_running.wait()
            # Arrives while the pass for "a" runs: that pass may have read the state before
            # this change, so it must not be covered by it.
            await send(bus, "a", tag="1")
            await wait_for(lambda: bus_held(bus) == 2, "second hint fetched")
            release.set()
            await wait_for(lambda: outcome_count(bus, "ack") == 2, "both acked")
        assert order == ["0", "1"]
        assert coalesced(bus) == 0


async def test_a_pass_is_told_how_many_hints_ride_along(nats_url: str) -> None:
    """The riders are settled with the pass's outcome: a handler that could skip a hint on
    its own (its own write) must know they are there."""
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:
        first_running = asyncio.Event()
        release = asyncio.Event()
        riders: dict[str, int] = {}
        carried: dict[str, list[str | None]] = {}
        sequences: dict[str, tuple[int, tuple[int, ...]]] = {}

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            delivery = consuming.current_delivery()
            riders[message.resource_version or ""] = delivery.riders
            sequences[message.resource_version or ""] = (
                delivery.stream_seq,
                delivery.rider_seqs,
            )
            carried[message.resource_version or ""] = [
                codec.decode(data, message_type=messages.ChangeEvent).resource_version
                for data in delivery.rider_data
            ]
            if message.resource_version == "0":
                first_running.set()
                await release.wait()
            return outcomes.DONE

        async with consuming_with(bus, Recorder(body)):
            await send(bus, "a", tag="0")
            await first_running.wait()
            for index in range(1, 5):  # "1" queues behind "0"; "2".."4" ride along on "1"
                await send(bus, "a", tag=str(index))
            await wait_for(lambda: coalesced(bus) == 3, "three hints riding along")
            release.set()
            await wait_for(lambda: outcome_count(bus, "ack") == 5, "all acked")
        assert riders == {"0": 0, "1": 3}
        assert carried == {"0": [], "1": ["2", "3", "4"]}  # the riders' payloads, in order
        # Published in order: the riders' stream sequences follow the head's.
        head, riding = sequences["1"]
        assert riding == (head + 1, head + 2, head + 3)
        assert sequences["0"] == (head - 1, ())


async def test_riders_of_a_failed_pass_come_back_with_its_retry(nats_url: str) -> None:
    """The pass the hints rode along on fails: they are nak'ed with its delay (not acked on
    the promise of its retry) and come back, and are acked only by the pass that succeeds."""
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:
        first_running = asyncio.Event()
        release = asyncio.Event()

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if message.resource_version == "0":
                first_running.set()
                await release.wait()
                return outcomes.DONE
            if message.resource_version == "1" and delivered == 1:
                raise RuntimeError("the pass fails once")
            return outcomes.DONE

        recorder = Recorder(body)
        async with consuming_with(bus, recorder):
            await send(bus, "a", tag="0")
            await first_running.wait()
            for index in range(1, 4):  # "1" queues behind "0"; "2" and "3" ride on "1"
                await send(bus, "a", tag=str(index))
            await wait_for(lambda: coalesced(bus) == 2, "two hints riding along")
            release.set()
            await wait_for(lambda: consumer_settled(bus), "all settled")
        # "0" acked; "1" failed (error), its riders nak'ed with it; then the retry (with the
        # riders back, redelivered) acked all three.
        assert outcome_count(bus, "error") == 1
        assert outcome_count(bus, "nak") == 2
        assert outcome_count(bus, "ack") == 4
        assert [c.delivered for c in recorder.calls if c.tag == "1"] == [1, 2]


def coalesced(bus: testing_bus.Bus) -> float:
    return bus.sample("llmsafespace_bus_coalesced_total", stream=bus.settings.nats.events_stream)


def bus_held(bus: testing_bus.Bus) -> float:
    return bus.sample("llmsafespace_bus_in_flight", stream=bus.settings.nats.events_stream)


async def test_at_most_concurrency_messages_are_held(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url, concurrency=2)
    async with testing_bus.open_bus(settings) as bus:
        gate = asyncio.Event()

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            await gate.wait()
            return outcomes.DONE

        recorder = Recorder(body)
        async with consuming_with(bus, recorder) as consumer:
            for index in range(5):
                await send(bus, f"k{index}")
            await wait_for(lambda: len(recorder.calls) == 2, "two running")
            info = await bus.connection.jetstream.consumer_info(settings.nats.events_stream, "svc")
            assert info.num_ack_pending == 2
            assert consumer.in_flight == 2
            gate.set()
            await wait_for(lambda: len(recorder.calls) == 5, "all handled")
        assert outcome_count(bus, "ack") == 5


async def test_riders_do_not_use_up_the_concurrency_window(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url, concurrency=3)
    async with testing_bus.open_bus(settings) as bus:
        b_handled = asyncio.Event()

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if message.name == "a" and message.resource_version == "0":
                # Holds key "a" until "b" was handled: only possible if the four riders
                # queued behind "a" leave room in the window for "b".
                await b_handled.wait()
            if message.name == "b":
                b_handled.set()
            return outcomes.DONE

        async with consuming_with(bus, Recorder(body)):
            for index in range(6):
                await send(bus, "a", tag=str(index))
            await send(bus, "b", tag="0")
            await wait_for(lambda: outcome_count(bus, "ack") == 7, "all seven acked")
        assert coalesced(bus) == 4


async def test_long_handler_heartbeats_prevent_redelivery(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url, ack_wait_seconds=1.0)
    async with testing_bus.open_bus(settings) as bus:
        release = asyncio.Event()

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if message.name == "long":
                await release.wait()
                return outcomes.DONE
            # "clock" uses the server's own timer: four requeues of half an ack_wait each
            # outlast ack_wait twice over while "long" is still running.
            if delivered < 4:
                return outcomes.RequeueAfter(0.5)
            release.set()
            return outcomes.DONE

        recorder = Recorder(body)
        async with consuming_with(bus, recorder) as consumer:
            await send(bus, "long")
            await wait_for(lambda: recorder.of("long") == [1], "long started")
            await send(bus, "clock")
            await wait_for(lambda: release.is_set(), "clock ran out")
            await wait_for(lambda: consumer_settled(bus), "all acked")
            await wait_for(lambda: consumer.in_flight == 0, "nothing held")
        assert recorder.of("long") == [1]
        assert recorder.of("clock") == [1, 2, 3, 4]


async def test_graceful_stop_finishes_running_and_naks_queued(nats_url: str) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:
        gate = asyncio.Event()

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            await gate.wait()
            return outcomes.DONE

        recorder = Recorder(body)
        consumer = await declared_consumer(bus, recorder, spec=spec_for(bus.settings))
        task = asyncio.create_task(consumer.run())
        await send(bus, "k", tag="running")
        await send(bus, "k", tag="queued")  # same key: waits behind the first
        await wait_for(lambda: len(recorder.calls) >= 1, "first running")
        await wait_for(lambda: consumer.in_flight == 2, "second held")

        consumer.stop()
        # The queued one goes back at once while the running one is still running.
        await wait_for(lambda: outcome_count(bus, "nak") == 1, "queued nak'ed")
        assert not task.done()
        gate.set()
        await task

        assert outcome_count(bus, "ack") == 1
        handled_first = [call.tag for call in recorder.calls]
        second = Recorder(done)
        async with consuming_with(bus, second):
            await wait_for(lambda: len(second.calls) == 1, "nak'ed message redelivered")
            await wait_for(lambda: consumer_settled(bus), "all acked")
        assert handled_first == ["running"]
        assert second.calls[0].tag == "queued"
        assert second.calls[0].delivered == 2


async def test_handlers_past_the_grace_are_cancelled_and_naked(nats_url: str) -> None:
    # ack_wait is long: a prompt redelivery can only come from the nak.
    settings = testing_bus.isolated_settings(
        nats_url, shutdown_grace_seconds=0.2, ack_wait_seconds=300.0
    )
    async with testing_bus.open_bus(settings) as bus:
        cancelled = asyncio.Event()

        async def stuck(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            raise AssertionError("unreachable")

        first = Recorder(stuck)
        async with consuming_with(bus, first):
            await send(bus, "a")
            await wait_for(lambda: first.calls, "stuck handler running")
        assert cancelled.is_set()
        assert outcome_count(bus, "nak") == 1
        second = Recorder(done)
        async with consuming_with(bus, second):
            await wait_for(
                lambda: second.of("a") == [2], f"redelivered after the nak {second.calls}"
            )


async def test_cancelling_run_naks_held_messages(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url, ack_wait_seconds=300.0)
    async with testing_bus.open_bus(settings) as bus:

        async def stuck(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        first = Recorder(stuck)
        spec = spec_for(settings)
        consumer = await declared_consumer(bus, first, spec=spec)
        task = asyncio.create_task(consumer.run())
        await send(bus, "a")
        await wait_for(lambda: first.calls, "stuck handler running")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        second = Recorder(done)
        async with consuming_with(bus, second):
            await wait_for(
                lambda: second.of("a") == [2], f"redelivered after the nak {second.calls}"
            )


async def test_a_drain_cancelled_by_the_services_deadline_still_naks(nats_url: str) -> None:
    """The service's shutdown deadline cancels the consumer while its drain waits for a
    running handler: the handler is cancelled, its message nak'ed at once (not left for
    ack_wait) and no heartbeat task is left behind."""
    settings = testing_bus.isolated_settings(
        nats_url, shutdown_grace_seconds=60.0, ack_wait_seconds=300.0
    )
    async with testing_bus.open_bus(settings) as bus:
        cancelled = asyncio.Event()

        async def stuck(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            raise AssertionError("unreachable")

        first = Recorder(stuck)
        spec = spec_for(settings)
        consumer = await declared_consumer(bus, first, spec=spec)
        task = asyncio.create_task(consumer.run())
        await send(bus, "a")
        await wait_for(lambda: first.calls, "stuck handler running")
        consumer.stop()
        # Draining: the fetch loop is done (its last fetch returned) and the handler runs.
        await asyncio.sleep(settings.consumer.fetch_timeout_seconds * 2)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled.is_set()
        assert outcome_count(bus, "nak") == 1
        assert not [t for t in asyncio.all_tasks() if t.get_name() == f"heartbeats:{spec.durable}"]
        second = Recorder(done)
        async with consuming_with(bus, second):
            await wait_for(
                lambda: second.of("a") == [2], f"redelivered after the nak {second.calls}"
            )


async def test_a_redelivered_copy_riding_on_its_own_message_keeps_the_re_check(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message queued behind a long pass of its key is redelivered (its heartbeats did
    not reach the server for ack_wait, as in a NATS disconnect), and the copy rides along on
    it. The pass asks for a re-check (a nak with a delay): the copy is not acked, since the
    server keeps one state per stream sequence and that ack cancelled the re-check."""

    async def no_heartbeats(self: consuming.Consumer[messages.ChangeEvent]) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(consuming.Consumer, "_send_heartbeats", no_heartbeats)
    settings = testing_bus.isolated_settings(nats_url, ack_wait_seconds=1.0)
    async with testing_bus.open_bus(settings) as bus:
        release = asyncio.Event()

        async def body(message: messages.ChangeEvent, delivered: int) -> outcomes.Outcome:
            if message.resource_version == "long":
                await release.wait()
                return outcomes.DONE
            if delivered == 1:
                return outcomes.RequeueAfter(0.3)  # the re-check
            return outcomes.DONE

        recorder = Recorder(body)
        async with consuming_with(bus, recorder, settings=settings.consumer) as consumer:
            await send(bus, "a", tag="long")
            await wait_for(lambda: recorder.calls, "the long pass running")
            await send(bus, "a", tag="checked")

            def copy_held() -> bool:
                # (The consumer's held messages: the queued one and, once ack_wait passed,
                # its redelivered copy, riding along on it.)
                held = [h.msg for h in consumer._held.values()]
                return any(
                    codec.decode(m.data, message_type=messages.ChangeEvent).resource_version
                    == "checked"
                    and m.metadata.num_delivered == 2
                    for m in held
                )

            await wait_for(copy_held, "a redelivered copy held")
            release.set()

            def re_checked() -> bool:
                # The pass (delivery 1), then its re-check: a later delivery of the same
                # message (3, or more had the copy been redelivered again meanwhile); the
                # copy itself is never handled on its own.
                seen = [c.delivered for c in recorder.calls if c.tag == "checked"]
                return len(seen) >= 2 and seen[0] == 1 and seen[1] >= 3

            await wait_for(re_checked, "the pass, then its re-check")


def test_current_delivery_outside_a_handler() -> None:
    with pytest.raises(RuntimeError, match="outside a message handler"):
        consuming.current_delivery()


async def test_deleted_consumer_is_redeclared(nats_url: str) -> None:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as bus:
        recorder = Recorder(done)
        stream = bus.settings.nats.events_stream
        async with consuming_with(bus, recorder):
            await send(bus, "before")
            await wait_for(lambda: recorder.of("before") == [1], "before handled")
            await bus.connection.jetstream.delete_consumer(stream, "svc")
            attempts = 0

            async def handled_after_deletion() -> bool:
                # Until it is re-declared nothing is retained (interest retention): keep
                # publishing fresh hints until one gets through.
                nonlocal attempts
                attempts += 1
                await send(bus, "after", tag=str(attempts))
                return bool(recorder.of("after"))

            await wait_for(handled_after_deletion, "consumer re-declared")
        assert bus.sample("llmsafespace_bus_fetch_errors_total", stream=stream, error="server") >= 1


def short_lived(nats_url: str, **consumer_overrides: object) -> settings_module.CommonSettings:
    """Settings whose events stream keeps a message 3 s (its margin: a quarter of that)."""
    settings = testing_bus.isolated_settings(nats_url, **consumer_overrides)
    return settings.model_copy(
        update={
            "nats": settings.nats.model_copy(
                update={"events_max_age_seconds": 3.0, "duplicate_window_seconds": 1.0}
            )
        }
    )


@dataclasses.dataclass
class Seen:
    """Per call of a re-checking handler: the message's stream sequence, what it replaces,
    and whether the handler was told it is a first delivery."""

    stream_seq: int
    handed_over_from: tuple[int, ...]
    first: bool


async def test_a_re_check_outlives_the_streams_max_age(nats_url: str) -> None:
    """A message that holds a key's re-checks one after another (a heartbeat) ages across
    them; the stream drops it at its max age, pending nak or not. Before that, the re-check is
    handed over to a copy: the handler keeps being called, from new messages, each naming
    the one it replaces and never presented as a first delivery."""
    async with testing_bus.open_bus(short_lived(nats_url)) as bus:
        seen: list[Seen] = []

        async def heartbeat(message: messages.ChangeEvent) -> outcomes.Outcome:
            delivery = consuming.current_delivery()
            seen.append(
                Seen(
                    delivery.stream_seq,
                    delivery.handed_over_from,
                    consuming.is_first_delivery(),
                )
            )
            return outcomes.RequeueAfter(0.5)

        async with consuming_with(bus, heartbeat) as consumer:
            await send(bus, "a")
            # Two hand-overs: the key's re-checks went on past twice the max age.
            await wait_for(lambda: len({call.stream_seq for call in seen}) >= 3, "two copies")
            consumer.stop()
        sequences = list(dict.fromkeys(call.stream_seq for call in seen))
        replaces = {call.stream_seq: call.handed_over_from for call in seen}
        # Each copy names the message it replaces: the key's previous one.
        assert [replaces[seq] for seq in sequences[:3]] == [(), (sequences[0],), (sequences[1],)]
        # Only the published hint's first delivery is a first delivery.
        assert [call.first for call in seen] == [True] + [False] * (len(seen) - 1)
        assert (
            bus.sample(
                "llmsafespace_bus_handovers_total",
                stream=bus.settings.nats.events_stream,
                result="handed_over",
            )
            >= 2
        )


async def test_a_re_check_outlives_max_deliver(nats_url: str) -> None:
    """With a finite ``max_deliver`` each re-check is a delivery: on its last but one, the
    re-check goes on from a copy instead of ending there."""
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url, max_deliver=4)) as bus:
        sequences: list[int] = []

        async def heartbeat(message: messages.ChangeEvent) -> outcomes.Outcome:
            sequences.append(consuming.current_delivery().stream_seq)
            return outcomes.RequeueAfter(0.05)

        async with consuming_with(bus, heartbeat):
            await send(bus, "a")
            await wait_for(lambda: len(set(sequences)) >= 3, "two copies")
        # Each message was delivered at most max_deliver - 1 times.
        assert max(sequences.count(seq) for seq in set(sequences)) <= 3
