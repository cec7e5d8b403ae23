"""NatsConnection and ConsumerComponent as service components, with the runtime's real
TaskSupervisor: start declares streams and the consumer, messages flow, readiness follows
the lifecycle, stop drains, and the supervisor sees no unexpected task exit."""

from __future__ import annotations

import datetime

import prometheus_client
import pytest

from lss_common.bus import connection, consuming, outcomes, publishing, topology
from lss_common.bus import metrics as bus_metrics
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.observability import metrics as shared_metrics
from lss_common.runtime import tasks
from lss_common.testing import bus as testing_bus
from lss_common.testing import eventually

pytestmark = pytest.mark.integration


async def test_components_start_consume_and_stop(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    registry = prometheus_client.CollectorRegistry()
    metrics = bus_metrics.BusMetrics.register(registry)
    supervisor = tasks.TaskSupervisor(metrics=shared_metrics.RuntimeMetrics.register(registry))
    prefix = settings.nats.subject_prefix
    seen: list[str] = []

    async def handle(message: messages.ChangeEvent) -> outcomes.Outcome:
        seen.append(message.name)
        return outcomes.DONE

    nats = connection.NatsConnection(settings.nats, metrics=metrics, client_name="components")
    consumer = consuming.ConsumerComponent(
        nats,
        spec=topology.ConsumerSpec("svc", (subjects.events_filter("sandbox", prefix=prefix),)),
        stream=settings.nats.events_stream,
        message_type=messages.ChangeEvent,
        handler=handle,
        settings=settings.consumer,
        metrics=metrics,
        tasks=supervisor,
    )
    assert not await nats.is_ready()
    await nats.start()
    try:
        await consumer.start()
        assert await nats.is_ready()
        assert await consumer.is_ready()
        publisher = publishing.Publisher(
            nats.connection.jetstream,
            stream=settings.nats.events_stream,
            metrics=metrics,
            timeout_seconds=5.0,
        )
        await publisher.publish(
            messages.ChangeEvent(
                kind="sandbox",
                namespace="ns",
                name="s.1",
                event_type="ADDED",
                observed_at=datetime.datetime.now(datetime.UTC),
            ),
            subject=subjects.event_subject("sandbox", namespace="ns", name="s.1", prefix=prefix),
            msg_id="sandbox/ns/s_1/1",
        )
        await eventually.eventually(lambda: seen == ["s.1"], timeout_seconds=20, describe="handled")

        supervisor.begin_stop()
        await consumer.stop()
        assert not await consumer.is_ready()
        assert supervisor.failure is None
    finally:
        for stream in (settings.nats.events_stream, settings.nats.status_stream):
            await nats.connection.jetstream.delete_stream(stream)
        await nats.stop()
    assert not await nats.is_ready()
    assert registry.get_sample_value("llmsafespace_bus_connected") == 0
