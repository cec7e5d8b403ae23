"""Resync requests: a service whose durable consumer is created after the watcher announced
everything still learns about the objects that already exist, without waiting for the
periodic resync.

Matrix (real kube-apiserver and nats-server; the periodic resync an hour away and never run):
- objects exist, the watcher is running and has announced them while no consumer existed, so
  LSS_EVENTS stored none of it (interest retention) → a service starts its ConsumerComponent
  → it receives a RESYNC hint for every existing object, from a round named after its
  request (``request-<id>``), counted as trigger ``request``;
- two watcher replicas answer the same request with the same message ids: JetStream stores
  one copy of each and the service handles each object once;
- a request for another stream, and an undecodable one, run no round and are counted.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Callable

import nats.aio.client
import prometheus_client
import pytest

from lss_common.bus import codec, consuming, outcomes, topology
from lss_common.bus import connection as bus_connection
from lss_common.bus import metrics as bus_metrics
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.observability import metrics as shared_metrics
from lss_common.runtime import tasks
from lss_common.testing import eventually
from lss_watcher import rounds, testing
from lss_watcher import settings as settings_module

pytestmark = pytest.mark.integration

# Far away: a hint from a periodic round would hide a missing request round.
HOUR_SECONDS = 3600.0


@dataclasses.dataclass
class Service:
    """A service's consumer started late: what it handled, and its metrics."""

    handled: list[tuple[str, str | None]]
    """(object name, Nats-Msg-Id) per handled hint."""
    registry: prometheus_client.CollectorRegistry

    def names_from_requested_rounds(self) -> collections.Counter[str]:
        return collections.Counter(
            name for name, msg_id in self.handled if round_of(msg_id).startswith("request-")
        )

    def requests(self, result: str) -> float:
        value = self.registry.get_sample_value(
            "llmsafespace_bus_resync_requests_total", {"result": result}
        )
        return 0.0 if value is None else value


def round_of(msg_id: str | None) -> str:
    return (msg_id or "").rsplit("/", 1)[-1]


@contextlib.asynccontextmanager
async def late_service(
    settings: settings_module.WatcherSettings, *, durable: str
) -> AsyncIterator[Service]:
    """A ConsumerComponent on sandbox hints, started as a service starts it."""
    registry = prometheus_client.CollectorRegistry()
    metrics = bus_metrics.BusMetrics.register(registry)
    supervisor = tasks.TaskSupervisor(metrics=shared_metrics.RuntimeMetrics.register(registry))
    nats = bus_connection.NatsConnection(settings.nats, metrics=metrics, client_name=durable)
    handled: list[tuple[str, str | None]] = []

    async def handle(event: messages.ChangeEvent) -> outcomes.Outcome:
        handled.append((event.name, consuming.current_delivery().msg_id))
        return outcomes.DONE

    prefix = settings.nats.subject_prefix
    consumer = consuming.ConsumerComponent(
        nats,
        spec=topology.ConsumerSpec(durable, (subjects.events_filter("sandbox", prefix=prefix),)),
        stream=settings.nats.events_stream,
        message_type=messages.ChangeEvent,
        handler=handle,
        settings=settings.consumer,
        metrics=metrics,
        tasks=supervisor,
    )
    await nats.start()
    try:
        await consumer.start()
        try:
            yield Service(handled, registry)
        finally:
            supervisor.begin_stop()
            await consumer.stop()
        assert supervisor.failure is None
    finally:
        await nats.stop()


async def create_sandboxes(objects: testing.Objects, count: int) -> list[str]:
    names = [f"before-{index}.x" for index in range(count)]
    for name in names:
        await objects.create("sandboxes", testing.custom_body("sandbox", name))
    return names


async def stored_hints(
    nc: nats.aio.client.Client, settings: settings_module.WatcherSettings
) -> int:
    info = await nc.jetstream().stream_info(settings.nats.events_stream)
    return info.state.messages


async def test_a_consumer_created_later_gets_the_existing_objects_at_once(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace, resync_period_seconds=HOUR_SECONDS)
    cleanup_streams(settings)
    names = await create_sandboxes(objects, 5)
    async with testing.RunningWatcher(settings) as watcher:
        # Lists and start round are published, and with no consumer nothing was kept: this
        # is the gap a late consumer falls into.
        assert await stored_hints(nc, settings) == 0
        async with late_service(settings, durable="late-svc") as service:
            await eventually.eventually(
                lambda: set(service.names_from_requested_rounds()) >= set(names),
                timeout_seconds=30,
                describe=f"a requested round's hint for each of {names} (got {service.handled})",
            )
            await eventually.eventually(
                lambda: (
                    watcher.sample("llmsafespace_watcher_resyncs_total", trigger="request") == 1
                ),
                timeout_seconds=30,
                describe="the requested round finished",
            )
            assert service.requests("sent") == 1
            assert (
                watcher.sample("llmsafespace_watcher_resync_requests_total", decision="queued") == 1
            )
            assert watcher.sample("llmsafespace_watcher_resyncs_total", trigger="periodic") == 0


async def test_two_replicas_answer_one_request_with_the_same_ids(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace, resync_period_seconds=HOUR_SECONDS)
    cleanup_streams(settings)
    names = await create_sandboxes(objects, 5)
    events = settings.nats.events_stream
    async with (
        testing.RunningWatcher(settings) as first,
        testing.RunningWatcher(settings) as second,
    ):
        replicas = (first, second)

        def published(result: str) -> float:
            return sum(
                watcher.sample("llmsafespace_bus_published_total", stream=events, result=result)
                for watcher in replicas
            )

        stored_before, duplicates_before = published("stored"), published("duplicate")
        async with late_service(settings, durable="late-svc") as service:
            await eventually.eventually(
                lambda: all(
                    watcher.sample("llmsafespace_watcher_resyncs_total", trigger="request") == 1
                    for watcher in replicas
                ),
                timeout_seconds=30,
                describe="both replicas finished their requested round",
            )
            await eventually.eventually(
                lambda: set(service.names_from_requested_rounds()) >= set(names),
                timeout_seconds=30,
                describe=f"a requested round's hint for each of {names} (got {service.handled})",
            )
            stored = published("stored") - stored_before
            duplicates = published("duplicate") - duplicates_before
            # Same ids from both: every hint of the round is stored once, its twin refused.
            assert stored >= len(names)
            assert duplicates == stored
            counts = service.names_from_requested_rounds()
            assert {name: counts[name] for name in names} == dict.fromkeys(names, 1)
            assert len({round_of(msg_id) for _, msg_id in service.handled}) == 1


async def test_foreign_and_undecodable_requests_run_no_round(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace, resync_period_seconds=HOUR_SECONDS)
    cleanup_streams(settings)
    subject = subjects.resync_request_subject(prefix=settings.nats.subject_prefix)
    async with testing.RunningWatcher(settings) as watcher:
        foreign = messages.ResyncRequest(
            consumer="recycler",
            stream="SOME_OTHER_STREAM",
            request_id="abc",
            requested_at=datetime.datetime.now(datetime.UTC),
        )
        await nc.publish(subject, codec.encode(foreign))
        await nc.publish(subject, b'{"v":1,"consumer":"x","requestId":"has.dots"}')

        def decided(decision: rounds.Decision) -> float:
            return watcher.sample(
                "llmsafespace_watcher_resync_requests_total", decision=decision.value
            )

        await eventually.eventually(
            lambda: decided(rounds.Decision.IGNORED) == 1 and decided(rounds.Decision.INVALID) == 1,
            timeout_seconds=30,
            describe="one request ignored, one invalid",
        )
        # Both were decided in the callback that would have queued a round.
        assert decided(rounds.Decision.QUEUED) == 0
        assert watcher.sample("llmsafespace_watcher_resyncs_total", trigger="request") == 0
