"""Publishing against a real nats-server.

Matrix: the same Nats-Msg-Id twice is stored once and reported (and counted) as duplicate;
trace context travels in headers; a subject no stream captures fails as RetryableError and
is counted as an error.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest
from opentelemetry.sdk import trace as sdk_trace

from lss_common import errors
from lss_common.bus import consuming, outcomes, publishing, topology
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.observability import tracing
from lss_common.testing import bus as testing_bus
from lss_common.testing import eventually

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def event(name: str) -> messages.ChangeEvent:
    return messages.ChangeEvent(
        kind="sandbox",
        namespace="ns",
        name=name,
        resource_version="1",
        event_type="ADDED",
        observed_at=NOW,
    )


async def test_same_msg_id_is_stored_once(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        stream = settings.nats.events_stream
        prefix = settings.nats.subject_prefix
        # Interest retention stores only what some consumer wants: declare one first.
        spec = topology.ConsumerSpec("c", (subjects.events_filter(prefix=prefix),))
        await topology.declare_consumer(js, spec, stream=stream, settings=settings.consumer)
        publisher = publishing.Publisher(
            js, stream=stream, metrics=bus.metrics, timeout_seconds=5.0
        )
        subject = subjects.event_subject("sandbox", namespace="ns", name="a.b", prefix=prefix)
        msg_id = subjects.message_id("sandbox", namespace="ns", name="a.b", resource_version="1")

        first = await publisher.publish(event("a.b"), subject=subject, msg_id=msg_id)
        second = await publisher.publish(event("a.b"), subject=subject, msg_id=msg_id)

        assert not first.duplicate
        assert second.duplicate
        assert second.seq == first.seq
        assert (await js.stream_info(stream)).state.messages == 1
        assert bus.sample("llmsafespace_bus_published_total", stream=stream, result="stored") == 1
        assert (
            bus.sample("llmsafespace_bus_published_total", stream=stream, result="duplicate") == 1
        )


async def test_trace_context_reaches_the_handler(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        stream = settings.nats.events_stream
        prefix = settings.nats.subject_prefix
        seen: list[str | None] = []

        async def handle(message: messages.ChangeEvent) -> outcomes.Outcome:
            seen.append(tracing.current_trace_id())
            return outcomes.DONE

        spec = topology.ConsumerSpec("c", (subjects.events_filter(prefix=prefix),))
        await topology.declare_consumer(js, spec, stream=stream, settings=settings.consumer)
        consumer = consuming.Consumer(
            js,
            spec=spec,
            stream=stream,
            message_type=messages.ChangeEvent,
            handler=handle,
            settings=settings.consumer,
            metrics=bus.metrics,
        )
        publisher = publishing.Publisher(js, stream=stream, metrics=bus.metrics, timeout_seconds=5)
        tracer = sdk_trace.TracerProvider().get_tracer("test")
        task = asyncio.create_task(consumer.run())
        try:
            with tracer.start_as_current_span("api request") as span:
                await publisher.publish(
                    event("x"),
                    subject=subjects.event_subject(
                        "sandbox", namespace="ns", name="x", prefix=prefix
                    ),
                    msg_id=None,
                )
            await eventually.eventually(lambda: seen, timeout_seconds=10, describe="handled")
        finally:
            consumer.stop()
            await task
        assert seen == [format(span.get_span_context().trace_id, "032x")]


async def test_publish_without_a_stream_is_retryable_and_counted(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        stream = settings.nats.events_stream
        publisher = publishing.Publisher(
            bus.connection.jetstream, stream=stream, metrics=bus.metrics, timeout_seconds=1.0
        )
        with pytest.raises(errors.RetryableError, match="nowhere"):
            await publisher.publish(event("x"), subject="nowhere.at.all", msg_id="m")
        assert bus.sample("llmsafespace_bus_published_total", stream=stream, result="error") == 1
