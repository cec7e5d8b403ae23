"""Resync requests on core NATS (``bus/resync_requests.py``) against a real nats-server.

Matrix: ConsumerComponent.start creating its durable → one request on ``<prefix>.ctl.resync``
naming the consumer and the stream, counted ``sent``; starting on the existing durable
unchanged → none; an in-place config change → one; the durable deleted under the running
loop and re-created by it → one more. Failure paths: the request cannot be published (the
core connection is closed) → start succeeds anyway, the loop consumes, counted ``error`` and
logged; an undecodable request reaches ``on_invalid``; subscribing on a closed connection →
RetryableError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
from collections.abc import AsyncIterator

import prometheus_client
import pytest

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.bus import connection as bus_connection
from lss_common.bus import consuming, outcomes, publishing, resync_requests, topology
from lss_common.bus import metrics as bus_metrics
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.observability import metrics as shared_metrics
from lss_common.runtime import tasks
from lss_common.testing import bus as testing_bus
from lss_common.testing import eventually

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 20.0


class Requests:
    """Every resync request of one installation, as a watcher would receive them."""

    def __init__(self) -> None:
        self.received: list[messages.ResyncRequest] = []
        self.invalid: list[errors.InvalidMessage] = []

    async def wait_for(self, count: int, describe: str) -> None:
        await eventually.eventually(
            lambda: len(self.received) >= count,
            timeout_seconds=DEADLINE_SECONDS,
            describe=f"{describe} ({len(self.received)} received)",
        )


@contextlib.asynccontextmanager
async def listening(bus: testing_bus.Bus) -> AsyncIterator[Requests]:
    requests = Requests()
    subscription = await resync_requests.subscribe(
        bus.connection.client,
        prefix=bus.settings.nats.subject_prefix,
        on_request=requests.received.append,
        on_invalid=requests.invalid.append,
    )
    try:
        yield requests
    finally:
        await subscription.unsubscribe()


@dataclasses.dataclass
class Component:
    """A ConsumerComponent as a service runs it, with metrics of its own."""

    consumer: consuming.ConsumerComponent[messages.ChangeEvent]
    registry: prometheus_client.CollectorRegistry
    supervisor: tasks.TaskSupervisor
    handled: list[str]

    def requests(self, result: str) -> float:
        value = self.registry.get_sample_value(
            "llmsafespace_bus_resync_requests_total", {"result": result}
        )
        return 0.0 if value is None else value


def build_component(
    nats: consuming.ConnectionSource,
    *,
    settings: settings_module.CommonSettings,
    metrics: bus_metrics.BusMetrics,
    registry: prometheus_client.CollectorRegistry,
    consumer_settings: settings_module.ConsumerSettings | None = None,
) -> Component:
    supervisor = tasks.TaskSupervisor(metrics=shared_metrics.RuntimeMetrics.register(registry))
    handled: list[str] = []

    async def handle(message: messages.ChangeEvent) -> outcomes.Outcome:
        handled.append(message.name)
        return outcomes.DONE

    prefix = settings.nats.subject_prefix
    consumer = consuming.ConsumerComponent(
        nats,
        spec=topology.ConsumerSpec("svc", (subjects.events_filter("sandbox", prefix=prefix),)),
        stream=settings.nats.events_stream,
        message_type=messages.ChangeEvent,
        handler=handle,
        settings=consumer_settings or settings.consumer,
        metrics=metrics,
        tasks=supervisor,
    )
    return Component(consumer, registry, supervisor, handled)


@contextlib.asynccontextmanager
async def running(
    settings: settings_module.CommonSettings,
    *,
    consumer_settings: settings_module.ConsumerSettings | None = None,
) -> AsyncIterator[Component]:
    """NatsConnection and ConsumerComponent started as a service starts them."""
    registry = prometheus_client.CollectorRegistry()
    metrics = bus_metrics.BusMetrics.register(registry)
    nats = bus_connection.NatsConnection(settings.nats, metrics=metrics, client_name="resync-test")
    component = build_component(
        nats,
        settings=settings,
        metrics=metrics,
        registry=registry,
        consumer_settings=consumer_settings,
    )
    await nats.start()
    try:
        await component.consumer.start()
        yield component
        component.supervisor.begin_stop()
        await component.consumer.stop()
        assert component.supervisor.failure is None
    finally:
        await nats.stop()


async def send(bus: testing_bus.Bus, name: str) -> None:
    prefix = bus.settings.nats.subject_prefix
    publisher = publishing.Publisher(
        bus.connection.jetstream,
        stream=bus.settings.nats.events_stream,
        metrics=bus.metrics,
        timeout_seconds=5.0,
    )
    await publisher.publish(
        messages.ChangeEvent(
            kind="sandbox",
            namespace="ns",
            name=name,
            event_type="ADDED",
            observed_at=datetime.datetime.now(datetime.UTC),
        ),
        subject=subjects.event_subject("sandbox", namespace="ns", name=name, prefix=prefix),
        msg_id=None,
    )


async def test_a_new_or_changed_durable_requests_a_resync_an_unchanged_one_does_not(
    nats_url: str,
) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus, listening(bus) as requests:
        async with running(settings) as first:
            await requests.wait_for(1, "the creating start asked for a resync")
            request = requests.received[0]
            assert (request.consumer, request.stream) == ("svc", settings.nats.events_stream)
            assert first.requests("sent") == 1
        async with running(settings) as again:
            # Nothing was missed: the durable kept the hints while the service was away.
            assert again.requests("sent") == 0
            assert again.requests("error") == 0
        changed = settings.consumer.model_copy(update={"ack_wait_seconds": 45.0})
        async with running(settings, consumer_settings=changed) as updated:
            await requests.wait_for(2, "the updating start asked for a resync")
            assert updated.requests("sent") == 1
        assert len({r.request_id for r in requests.received}) == 2
        assert requests.invalid == []


async def test_a_durable_recreated_under_the_running_loop_requests_a_resync(
    nats_url: str,
) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with (
        testing_bus.open_bus(settings) as bus,
        listening(bus) as requests,
        running(settings) as component,
    ):
        await requests.wait_for(1, "the creating start asked for a resync")
        await bus.connection.jetstream.delete_consumer(settings.nats.events_stream, "svc")
        # The next pull fails, the loop re-declares (creates) the durable and asks again.
        await requests.wait_for(2, "the re-creating loop asked for a resync")
        assert component.requests("sent") == 2
        assert requests.received[1].consumer == "svc"


async def test_a_request_that_cannot_be_sent_never_fails_the_start(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    registry = prometheus_client.CollectorRegistry()
    metrics = bus_metrics.BusMetrics.register(registry)
    async with testing_bus.open_bus(settings) as bus:
        closed = await bus_connection.connect(settings.nats, metrics=metrics, client_name="closed")
        await closed.close()
        # JetStream through an open connection, core NATS through a closed one (both real):
        # the declaration succeeds and the request's publish raises ConnectionClosedError.
        split = bus_connection.Connection(closed.client, metrics=metrics)
        split.jetstream = bus.connection.jetstream
        source = _Source(split, settings.nats)
        component = build_component(source, settings=settings, metrics=metrics, registry=registry)
        with caplog.at_level(logging.WARNING, logger="lss_common.bus.resync_requests"):
            await component.consumer.start()
        try:
            assert await component.consumer.is_ready()
            assert component.requests("error") == 1
            assert component.requests("sent") == 0
            assert any(
                record.getMessage().startswith("resync request not sent")
                and "ConnectionClosedError" in str(getattr(record, "error", ""))
                for record in caplog.records
            )
            await send(bus, "after")
            await eventually.eventually(
                lambda: component.handled == ["after"],
                timeout_seconds=DEADLINE_SECONDS,
                describe="the consumer runs without its resync request",
            )
        finally:
            component.supervisor.begin_stop()
            await component.consumer.stop()
        assert component.supervisor.failure is None


class _Source:
    """A ConnectionSource over a given connection (``NatsConnection`` opens its own)."""

    def __init__(
        self, conn: bus_connection.Connection, settings: settings_module.NatsSettings
    ) -> None:
        self._connection = conn
        self._settings = settings

    @property
    def connection(self) -> bus_connection.Connection:
        return self._connection

    @property
    def settings(self) -> settings_module.NatsSettings:
        return self._settings


async def test_undecodable_requests_reach_on_invalid(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus, listening(bus) as requests:
        subject = subjects.resync_request_subject(prefix=settings.nats.subject_prefix)
        await bus.connection.client.publish(subject, b'{"v":1,"consumer":"svc"}')
        await bus.connection.client.publish(subject, b"not json")
        await eventually.eventually(
            lambda: len(requests.invalid) == 2,
            timeout_seconds=DEADLINE_SECONDS,
            describe="both payloads reported invalid",
        )
        assert requests.received == []


async def test_subscribing_on_a_closed_connection_is_retryable(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    metrics = bus_metrics.BusMetrics.register(prometheus_client.CollectorRegistry())
    closed = await bus_connection.connect(settings.nats, metrics=metrics, client_name="closed")
    await closed.close()
    with pytest.raises(errors.RetryableError, match=r"ctl\.resync"):
        await resync_requests.subscribe(
            closed.client,
            prefix=settings.nats.subject_prefix,
            on_request=lambda request: None,
            on_invalid=lambda error: None,
        )
