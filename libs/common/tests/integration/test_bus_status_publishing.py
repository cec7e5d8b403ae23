"""status_publishing against a real nats-server: compare-and-set keeps the newest record.

Several ``StatusPublisher`` instances (separate memories) stand for the publishers of one
installation: watcher replicas and reconciler replicas.

Matrix:
- a newer version replaces the stored record; an older one is refused (stale), from a fresh
  read and from a memory that is out of date (the CAS fails, a conflict is counted, the
  publisher reads again and refuses);
- the same version from a second publisher is stored once (stale, or refused by the CAS);
  with ``skip_unchanged`` a newer version saying the same is not published (unchanged),
  without it, it is;
- concurrent publishers of different versions end with the newest, and every record the
  stream stored (its full history, republished by the server) is newer than the one before;
- deletion records: a deletion wins at the same version and nothing older or equal replaces
  it; it carries the TTL; publishing one forgets the subject; a publisher without a TTL
  refuses to publish one;
- the memory is bounded (``max_remembered``) and a forgotten subject is read back;
- an undecodable stored record is replaced;
- failures: no stream → RetryableError; a request the server refuses → PermanentError, both
  counted as publish errors.
"""

from __future__ import annotations

import asyncio
import datetime
import random
from collections.abc import AsyncIterator

import nats.aio.msg
import prometheus_client
import pytest
from nats.js import api

from lss_common import errors
from lss_common.bus import codec, status_client, status_publishing
from lss_common.bus import metrics as bus_metrics
from lss_common.logic import status_records, subjects
from lss_common.models import messages
from lss_common.testing import bus as testing_bus
from lss_common.testing import eventually

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
Result = status_publishing.StatusResult


def record(
    version: int,
    *,
    phase: str = "Running",
    deleted: bool = False,
    name: str = "sb",
) -> messages.StatusRecord:
    return messages.StatusRecord(
        kind="sandbox",
        namespace="ns",
        name=name,
        uid="u",
        phase=phase,
        resource_version=str(version),
        observed_at=NOW,
        deleted=deleted,
    )


class Publisher:
    """One publisher with a memory and metrics of its own."""

    def __init__(
        self,
        bus: testing_bus.Bus,
        *,
        deleted_ttl_seconds: float | None = 60.0,
        max_remembered: int | None = None,
        stream: str | None = None,
        prefix: str | None = None,
        skip_unchanged: bool = False,
    ) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.publisher = status_publishing.StatusPublisher(
            bus.connection.jetstream,
            stream=stream or bus.settings.nats.status_stream,
            prefix=prefix or bus.settings.nats.subject_prefix,
            timeout_seconds=2.0,
            metrics=bus_metrics.BusMetrics.register(self.registry),
            results=prometheus_client.Counter(
                "status_records_total", "results", ["result"], registry=self.registry
            ),
            deleted_ttl_seconds=deleted_ttl_seconds,
            max_remembered=max_remembered,
            skip_unchanged=skip_unchanged,
        )

    async def publish(self, item: messages.StatusRecord) -> status_publishing.StatusResult:
        return await self.publisher.publish(item)

    def count(self, result: str) -> float:
        value = self.registry.get_sample_value("status_records_total", {"result": result})
        return value or 0.0

    def errors(self, stream: str, *, result: str = "error") -> float:
        value = self.registry.get_sample_value(
            "llmsafespace_bus_published_total", {"stream": stream, "result": result}
        )
        return value or 0.0


class History:
    """Every record the status stream *stored*, in order: the server republishes each stored
    message (and only those: a refused CAS or a deduplicated id is not stored) on
    ``<dest prefix>.>``, which a core subscription collects."""

    def __init__(self) -> None:
        self.records: list[tuple[int, messages.StatusRecord]] = []

    async def on_message(self, msg: nats.aio.msg.Msg) -> None:
        seq = int((msg.headers or {})["Nats-Sequence"])
        self.records.append((seq, codec.decode(msg.data, message_type=messages.StatusRecord)))


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[testing_bus.Bus]:
    async with testing_bus.open_bus(testing_bus.isolated_settings(nats_url)) as opened:
        yield opened


@pytest.fixture
async def history(bus: testing_bus.Bus) -> History:
    """The status stream's full history from now on (see :class:`History`)."""
    found = History()
    js = bus.connection.jetstream
    settings = bus.settings.nats
    dest = f"{settings.subject_prefix}-history"
    await bus.connection.client.subscribe(f"{dest}.>", cb=found.on_message)
    await bus.connection.client.flush()
    config = (await js.stream_info(settings.status_stream)).config
    config.republish = api.RePublish(
        src=subjects.status_filter(prefix=settings.subject_prefix), dest=f"{dest}.>"
    )
    await js.update_stream(config)
    return found


async def stored(bus: testing_bus.Bus, *, name: str = "sb") -> messages.StatusRecord | None:
    return await status_client.get_status(
        bus.connection.jetstream,
        kind="sandbox",
        namespace="ns",
        name=name,
        stream=bus.settings.nats.status_stream,
        prefix=bus.settings.nats.subject_prefix,
    )


async def last_seq(bus: testing_bus.Bus) -> int:
    info = await bus.connection.jetstream.stream_info(bus.settings.nats.status_stream)
    return info.state.last_seq


async def test_newer_wins_and_older_is_refused(bus: testing_bus.Bus) -> None:
    first, second = Publisher(bus), Publisher(bus)
    assert await first.publish(record(10)) is Result.PUBLISHED
    assert await second.publish(record(7)) is Result.STALE  # a fresh read: 10 is stored
    assert await second.publish(record(12, phase="Failed")) is Result.PUBLISHED
    # The first still remembers version 10 as stored: its CAS fails, it reads again, refuses.
    assert await first.publish(record(11, phase="Creating")) is Result.STALE
    assert first.count("conflict") == 1
    current = await stored(bus)
    assert current is not None
    assert (current.resource_version, current.phase) == ("12", "Failed")
    # A newer version is published over an out-of-date memory too (after a conflict).
    assert await second.publish(record(13)) is Result.PUBLISHED
    assert await first.publish(record(14, phase="Terminated")) is Result.PUBLISHED
    assert first.count("conflict") == 2
    # The refused CAS is the design at work, not a failed publish.
    stream = bus.settings.nats.status_stream
    assert first.errors(stream, result="conflict") == 2
    assert first.errors(stream) == 0
    current = await stored(bus)
    assert current is not None
    assert current.resource_version == "14"


async def test_a_version_is_stored_once_whoever_publishes_it(bus: testing_bus.Bus) -> None:
    reconciler, watcher, lagging = Publisher(bus), Publisher(bus), Publisher(bus)
    await lagging.publish(record(3, phase="Creating"))  # remembers version 3's sequence
    assert await reconciler.publish(record(5)) is Result.PUBLISHED
    before = await last_seq(bus)
    assert await watcher.publish(record(5)) is Result.STALE
    # With an out-of-date memory the CAS refuses it (or the msg id is deduplicated).
    assert await lagging.publish(record(5)) in (Result.STALE, Result.DUPLICATE)
    assert await last_seq(bus) == before


async def test_same_content_at_a_newer_version_is_unchanged(bus: testing_bus.Bus) -> None:
    publisher = Publisher(bus, skip_unchanged=True)
    assert await publisher.publish(record(5)) is Result.PUBLISHED
    assert await publisher.publish(record(6)) is Result.UNCHANGED
    fresh = Publisher(bus, skip_unchanged=True)
    assert await fresh.publish(record(7)) is Result.UNCHANGED  # from a fresh read
    current = await stored(bus)
    assert current is not None
    assert current.resource_version == "5"
    # Without skip_unchanged (a publisher that does not see every version) it is published.
    assert await Publisher(bus).publish(record(8)) is Result.PUBLISHED
    current = await stored(bus)
    assert current is not None
    assert current.resource_version == "8"


async def test_concurrent_publishers_end_with_the_newest(
    bus: testing_bus.Bus, history: History
) -> None:
    publishers = [Publisher(bus) for _ in range(4)]
    versions = list(range(100, 140))
    random.Random(7).shuffle(versions)
    phases = ["Creating", "Running", "Failed"]
    results = await asyncio.gather(
        *(
            publishers[index % len(publishers)].publish(record(version, phase=phases[version % 3]))
            for index, version in enumerate(versions)
        )
    )
    current = await stored(bus)
    assert current is not None
    assert current.resource_version == "139"
    published = results.count(Result.PUBLISHED)
    assert published >= 1
    stored_seq = await last_seq(bus)
    await eventually.eventually(
        lambda: len(history.records) == stored_seq,
        timeout_seconds=10,
        describe=f"{stored_seq} stored records republished",
    )
    # Every stored record replaced an older one: no version twice, never backwards.
    order = [int(item.resource_version) for _, item in sorted(history.records)]
    assert order == sorted(set(order))
    assert len(order) == published


async def test_deletion_records(bus: testing_bus.Bus) -> None:
    first, second = Publisher(bus), Publisher(bus)
    assert await first.publish(record(5)) is Result.PUBLISHED
    assert first.publisher.remembered == 1
    final = status_records.deleted_copy(record(5), observed_at=NOW)
    assert await second.publish(final) is Result.PUBLISHED
    assert second.publisher.remembered == 0  # the subject expires: nothing to remember
    assert await first.publish(record(5)) is Result.STALE  # after a conflict: same version
    assert await first.publish(record(4)) is Result.STALE
    assert await second.publish(final) is Result.STALE
    current = await stored(bus)
    assert current is not None
    assert current.deleted
    assert current.resource_version == "5"
    raw = await bus.connection.jetstream.get_last_msg(
        bus.settings.nats.status_stream,
        subjects.status_subject(
            "sandbox", namespace="ns", name="sb", prefix=bus.settings.nats.subject_prefix
        ),
        direct=True,
    )
    assert (raw.headers or {}).get(api.Header.MSG_TTL.value) == "60"
    # A re-created object of the same name has newer versions: they replace the deletion.
    assert await first.publish(record(9, phase="Pending")) is Result.PUBLISHED
    with pytest.raises(ValueError, match="TTL"):
        await Publisher(bus, deleted_ttl_seconds=None).publish(final)


async def test_memory_is_bounded_and_read_back(bus: testing_bus.Bus) -> None:
    publisher = Publisher(bus, max_remembered=2)
    for name in ("a", "b", "c"):
        assert await publisher.publish(record(5, name=name)) is Result.PUBLISHED
    assert publisher.publisher.remembered == 2
    # "a" was forgotten first: its stored record is read back, and still orders publishes.
    assert await publisher.publish(record(4, name="a")) is Result.STALE
    assert await publisher.publish(record(6, name="a", phase="Failed")) is Result.PUBLISHED
    assert publisher.count("conflict") == 0
    publisher.publisher.forget()
    assert publisher.publisher.remembered == 0
    assert await publisher.publish(record(7, name="b", phase="Failed")) is Result.PUBLISHED


async def test_an_undecodable_record_is_replaced(bus: testing_bus.Bus) -> None:
    settings = bus.settings.nats
    subject = subjects.status_subject(
        "sandbox", namespace="ns", name="sb", prefix=settings.subject_prefix
    )
    await bus.connection.jetstream.publish(subject, b"not a record", stream=settings.status_stream)
    publisher = Publisher(bus)
    seq, found = await publisher.publisher.read_last(subjects.ObjectKey("sandbox", "ns", "sb"))
    assert (seq > 0, found) == (True, None)
    assert await publisher.publish(record(1)) is Result.PUBLISHED
    current = await stored(bus)
    assert current is not None
    assert current.resource_version == "1"


async def test_no_stream_is_retryable(bus: testing_bus.Bus) -> None:
    publisher = Publisher(bus, stream="NO_SUCH_STREAM", prefix="nosuchprefix")
    with pytest.raises(errors.RetryableError):
        await publisher.publish(record(1))


async def test_a_refused_publish_is_permanent(bus: testing_bus.Bus) -> None:
    # A stream without per-message TTLs refuses a deletion record's TTL (a 400).
    prefix = f"{bus.settings.nats.subject_prefix}x"
    stream = f"{bus.settings.nats.status_stream}_NOTTL"
    js = bus.connection.jetstream
    await js.add_stream(
        api.StreamConfig(
            name=stream,
            subjects=[subjects.status_filter(prefix=prefix)],
            max_msgs_per_subject=1,
            allow_direct=True,
        )
    )
    try:
        publisher = Publisher(bus, stream=stream, prefix=prefix)
        with pytest.raises(errors.PermanentError):
            await publisher.publish(status_records.deleted_copy(record(1), observed_at=NOW))
        assert publisher.errors(stream) == 1
    finally:
        await js.delete_stream(stream)
