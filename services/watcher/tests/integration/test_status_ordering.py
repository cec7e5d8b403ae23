"""LSS_STATUS ordering against a real nats-server: a lagging replica never overwrites a newer
record, whatever the dedupe window says.

Two Announcers with separate memories stand for two watcher replicas on the same streams:
- an older version published after a newer one is refused (stale), from the other replica's
  fresh read and from a replica whose memory of the subject is out of date (the CAS fails,
  it reads again, and refuses);
- a burst of versions of one object submitted at once from one replica ends with the newest;
- at the same version a deletion record wins, and nothing older replaces it afterwards;
- a record with the content already stored is not published again (unchanged).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator

import nats
import nats.aio.client
import prometheus_client
import pytest

from lss_common import settings as common_settings
from lss_common.bus import metrics as bus_metrics
from lss_common.bus import status_client, topology
from lss_common.logic import status_records
from lss_common.models import messages
from lss_common.runtime import clock
from lss_watcher import metrics as watcher_metrics
from lss_watcher import publishing, testing

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def record(version: int, *, phase: str = "Running", deleted: bool = False) -> messages.StatusRecord:
    return messages.StatusRecord(
        kind="sandbox",
        namespace="ns",
        name="sb",
        uid="u",
        phase=phase,
        resource_version=str(version),
        observed_at=NOW,
        deleted=deleted,
    )


class Replica:
    def __init__(self, nc: nats.aio.client.Client, settings: common_settings.NatsSettings) -> None:
        registry = prometheus_client.CollectorRegistry()
        self.registry = registry

        async def ensure() -> None:
            await topology.declare_streams(nc.jetstream(), settings=settings)

        self.announcer = publishing.Announcer(
            nc.jetstream(),
            events_stream=settings.events_stream,
            status_stream=settings.status_stream,
            prefix=settings.subject_prefix,
            publish_timeout_seconds=2.0,
            deleted_ttl_seconds=60,
            backoff_seconds=[0.05],
            bus=bus_metrics.BusMetrics.register(registry),
            metrics=watcher_metrics.WatcherMetrics.register(registry),
            clock=clock.SystemClock(),
            ensure_streams=ensure,
        )

    async def publish(self, item: messages.StatusRecord) -> None:
        await self.announcer.publish_status(
            item, msg_id=status_records.msg_id(item), received_at=None
        )

    def count(self, result: str) -> float:
        value = self.registry.get_sample_value(
            "llmsafespace_watcher_status_records_total", {"result": result}
        )
        return value or 0.0


@pytest.fixture
async def streams(
    nats_url: str, nc: nats.aio.client.Client
) -> AsyncIterator[common_settings.NatsSettings]:
    settings = testing.isolated_settings(kubeconfig="unused", nats_url=nats_url).nats
    await topology.declare_streams(nc.jetstream(), settings=settings)
    try:
        yield settings
    finally:
        for stream in (settings.events_stream, settings.status_stream):
            await nc.jetstream().delete_stream(stream)


async def stored(
    nc: nats.aio.client.Client, settings: common_settings.NatsSettings
) -> messages.StatusRecord | None:
    return await status_client.get_status(
        nc.jetstream(),
        kind="sandbox",
        namespace="ns",
        name="sb",
        stream=settings.status_stream,
        prefix=settings.subject_prefix,
    )


async def test_a_lagging_replica_never_overwrites_a_newer_record(
    nc: nats.aio.client.Client, streams: common_settings.NatsSettings
) -> None:
    first, second = Replica(nc, streams), Replica(nc, streams)
    await first.publish(record(10))
    await second.publish(record(7))  # reads the subject first: stale
    assert second.count("stale") == 1
    await second.publish(record(12, phase="Failed"))
    # The first replica still believes version 10 is stored: its CAS fails, it reads again.
    await first.publish(record(11, phase="Creating"))
    assert first.count("conflict") == 1
    assert first.count("stale") == 1
    current = await stored(nc, streams)
    assert current is not None
    assert (current.resource_version, current.phase) == ("12", "Failed")


async def test_a_burst_of_versions_ends_with_the_newest(
    nc: nats.aio.client.Client, streams: common_settings.NatsSettings
) -> None:
    replica = Replica(nc, streams)
    phases = ["Creating", "Running"]
    await asyncio.gather(*(replica.publish(record(v, phase=phases[v % 2])) for v in range(20, 41)))
    current = await stored(nc, streams)
    assert current is not None
    assert (current.resource_version, current.phase) == ("40", "Creating")


async def test_deletion_wins_at_the_same_version_and_stays(
    nc: nats.aio.client.Client, streams: common_settings.NatsSettings
) -> None:
    first, second = Replica(nc, streams), Replica(nc, streams)
    await first.publish(record(5))
    await first.publish(record(5))
    assert first.count("unchanged") + first.count("stale") + first.count("duplicate") == 1
    await second.publish(status_records.deleted_copy(record(5), observed_at=NOW))
    await first.publish(record(5))
    await first.publish(record(4))
    current = await stored(nc, streams)
    assert current is not None
    assert current.deleted
    assert current.resource_version == "5"
