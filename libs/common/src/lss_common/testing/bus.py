"""Test helpers for the bus: isolated settings on a shared server, and an open connection.

Tests that share one nats-server (the session's ``nats_url``) must not see each other's
streams: :func:`isolated_settings` gives every call its own subject prefix and stream names
(JetStream refuses two streams with overlapping subjects, so a shared prefix would collide).
Timings are shortened so redeliveries happen quickly; they are never asserted on.

No fixtures here (they live in ``lss_dev``); nothing here fakes NATS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator

import prometheus_client

from lss_common import settings as settings_module
from lss_common.bus import connection as bus_connection
from lss_common.bus import consuming, topology
from lss_common.bus import metrics as bus_metrics


def isolated_settings(url: str, **consumer_overrides: object) -> settings_module.CommonSettings:
    """Settings with a unique prefix and stream names, and test-friendly consumer timings."""
    tag = uuid.uuid4().hex[:10]
    consumer_values: dict[str, object] = {
        "concurrency": 8,
        "ack_wait_seconds": 30.0,
        "fetch_batch": 8,
        "fetch_timeout_seconds": 0.5,
        "backoff_seconds": [0.05, 0.1, 0.2],
        "shutdown_grace_seconds": 5.0,
    }
    consumer_values.update(consumer_overrides)
    return settings_module.CommonSettings(
        service_name=f"test-{tag}",
        nats=settings_module.NatsSettings(
            url=url,
            subject_prefix=f"t{tag}",
            events_stream=f"T{tag}_EVENTS",
            status_stream=f"T{tag}_STATUS",
            reconnect_wait_seconds=0.1,
            connect_timeout_seconds=2.0,
            drain_timeout_seconds=5.0,
        ),
        consumer=settings_module.ConsumerSettings.model_validate(consumer_values),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Bus:
    """What a bus test needs: settings, an open connection, and metrics on a fresh registry."""

    settings: settings_module.CommonSettings
    connection: bus_connection.Connection
    metrics: bus_metrics.BusMetrics
    registry: prometheus_client.CollectorRegistry

    def sample(self, name: str, **labels: str) -> float:
        """The current value of metric sample ``name`` (0.0 when it was never set)."""
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@contextlib.asynccontextmanager
async def open_bus(
    settings: settings_module.CommonSettings, *, declare: bool = True
) -> AsyncIterator[Bus]:
    """Connect (and by default declare both streams); close and delete the streams after."""
    registry = prometheus_client.CollectorRegistry()
    metrics = bus_metrics.BusMetrics.register(registry)
    connection = await bus_connection.connect(
        settings.nats, metrics=metrics, client_name=settings.service_name
    )
    try:
        if declare:
            await topology.declare_streams(connection.jetstream, settings=settings.nats)
        yield Bus(settings=settings, connection=connection, metrics=metrics, registry=registry)
    finally:
        if connection.is_connected:
            for stream in (settings.nats.events_stream, settings.nats.status_stream):
                # The server is shared by the session: leave nothing behind.
                with contextlib.suppress(Exception):
                    await connection.jetstream.delete_stream(stream)
        await connection.close()


@contextlib.contextmanager
def delivering(
    *,
    num_delivered: int = 1,
    riders: int = 0,
    rider_data: tuple[bytes, ...] = (),
    rider_redelivered: bool = False,
    handed_over_from: int | None = None,
    subject: str = "lss.evt.test.ns.name",
) -> Iterator[consuming.Delivery]:
    """Run a handler's pure helpers as if the consume loop delivered a message this way
    (``consuming.current_delivery`` and ``is_first_delivery`` answer from it). ``rider_data``
    are the riders' payloads; ``riders`` defaults to their number; ``handed_over_from``
    makes it a copy of that message (``bus.handover``)."""
    delivery = consuming.Delivery(
        subject=subject,
        stream="LSS_EVENTS",
        stream_seq=1,
        num_delivered=num_delivered,
        msg_id=None,
        riders=riders or len(rider_data),
        rider_data=rider_data,
        rider_redelivered=rider_redelivered,
        handed_over_from=() if handed_over_from is None else (handed_over_from,),
        is_copy=handed_over_from is not None,
    )
    token = consuming._current_delivery.set(delivery)
    try:
        yield delivery
    finally:
        consuming._current_delivery.reset(token)
