"""The bus survives a nats-server crash: SIGKILL the server, start it again on the same port
with the same store, and the running consumer carries on (streams, consumer and unacked
messages persisted in the file store; the client reconnects; metrics and callbacks report the
outage)."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from lss_common import errors
from lss_common.bus import consuming, outcomes, publishing, topology
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.testing import bus as testing_bus
from lss_common.testing import eventually
from lss_dev import natsserver

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


async def test_consumer_continues_after_server_restart(
    nats_server: natsserver.NatsServer,
) -> None:
    settings = testing_bus.isolated_settings(nats_server.url)
    prefix = settings.nats.subject_prefix
    spec = topology.ConsumerSpec("svc", (subjects.events_filter("sandbox", prefix=prefix),))
    seen: list[str] = []

    async def handle(message: messages.ChangeEvent) -> outcomes.Outcome:
        seen.append(message.name)
        return outcomes.DONE

    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        publisher = publishing.Publisher(
            js, stream=settings.nats.events_stream, metrics=bus.metrics, timeout_seconds=2.0
        )

        async def publish(name: str) -> bool:
            try:
                await publisher.publish(
                    messages.ChangeEvent(
                        kind="sandbox",
                        namespace="ns",
                        name=name,
                        event_type="ADDED",
                        observed_at=NOW,
                    ),
                    subject=subjects.event_subject(
                        "sandbox", namespace="ns", name=name, prefix=prefix
                    ),
                    msg_id=f"sandbox/ns/{name}/1",
                )
            except errors.RetryableError:
                return False  # still reconnecting; the same msg id makes the retry safe
            return True

        # Interest retention: the consumer must exist before anything is published to it.
        await topology.declare_consumer(
            js, spec, stream=settings.nats.events_stream, settings=settings.consumer
        )
        consumer = consuming.Consumer(
            js,
            spec=spec,
            stream=settings.nats.events_stream,
            message_type=messages.ChangeEvent,
            handler=handle,
            settings=settings.consumer,
            metrics=bus.metrics,
        )
        task = asyncio.create_task(consumer.run())
        try:
            await eventually.eventually(
                lambda: publish("before"), timeout_seconds=20, describe="published before"
            )
            await eventually.eventually(
                lambda: seen == ["before"], timeout_seconds=20, describe="before handled"
            )

            nats_server.kill()
            await eventually.eventually(
                lambda: not bus.connection.is_connected, timeout_seconds=20, describe="disconnected"
            )
            assert bus.sample("llmsafespace_bus_connected") == 0
            nats_server.start()

            await eventually.eventually(
                lambda: bus.connection.is_connected, timeout_seconds=30, describe="reconnected"
            )
            await eventually.eventually(
                lambda: publish("after"), timeout_seconds=30, describe="published after restart"
            )
            await eventually.eventually(
                lambda: "after" in seen, timeout_seconds=30, describe="after handled"
            )
        finally:
            consumer.stop()
            await task
        assert seen == ["before", "after"]
        assert bus.sample("llmsafespace_bus_connected") == 1
        assert bus.sample("llmsafespace_bus_connection_events_total", event="disconnected") >= 1
        assert bus.sample("llmsafespace_bus_connection_events_total", event="reconnected") >= 1
