"""A consumer process killed with SIGKILL in the middle of its handler loses nothing: the
unacked message is redelivered to the next consumer on the same durable (real nats-server,
real process, real SIGKILL)."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import signal
import sys

import pytest

from lss_common.bus import consuming, outcomes, publishing, topology
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.testing import bus as testing_bus
from lss_common.testing import eventually

pytestmark = pytest.mark.integration

HELPER = pathlib.Path(__file__).with_name("crash_consumer.py")
NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


async def test_sigkill_mid_handler_loses_no_message(nats_url: str, tmp_path: pathlib.Path) -> None:
    # A short ack_wait so the redelivery after the crash comes soon; nothing asserts on it.
    settings = testing_bus.isolated_settings(nats_url, ack_wait_seconds=1.0)
    prefix = settings.nats.subject_prefix
    filter_subject = subjects.events_filter("sandbox", prefix=prefix)
    spec = topology.ConsumerSpec("reconciler", (filter_subject,))
    marker = tmp_path / "inside-handler"
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        await topology.declare_consumer(
            js, spec, stream=settings.nats.events_stream, settings=settings.consumer
        )
        publisher = publishing.Publisher(
            js, stream=settings.nats.events_stream, metrics=bus.metrics, timeout_seconds=5.0
        )
        await publisher.publish(
            messages.ChangeEvent(
                kind="sandbox",
                namespace="ns",
                name="precious.1",
                event_type="ADDED",
                observed_at=NOW,
            ),
            subject=subjects.event_subject(
                "sandbox", namespace="ns", name="precious.1", prefix=prefix
            ),
            msg_id="sandbox/ns/precious_1/1",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HELPER),
            settings.model_dump_json(),
            spec.durable,
            filter_subject,
            str(marker),
        )
        try:
            await eventually.eventually(
                marker.exists, timeout_seconds=30, describe="crash consumer inside its handler"
            )
        finally:
            process.send_signal(signal.SIGKILL)
            async with asyncio.timeout(30):
                await process.wait()
        assert process.returncode == -signal.SIGKILL
        assert marker.read_text() == "precious.1 1\n"

        seen: list[tuple[str, int]] = []

        async def handle(message: messages.ChangeEvent) -> outcomes.Outcome:
            seen.append((message.name, consuming.current_delivery().num_delivered))
            return outcomes.DONE

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
                lambda: seen, timeout_seconds=30, describe="message redelivered after the crash"
            )
        finally:
            consumer.stop()
            await task
        assert seen[0][0] == "precious.1"
        assert seen[0][1] >= 2
        info = await js.consumer_info(settings.nats.events_stream, spec.durable)
        assert info.num_ack_pending == 0
