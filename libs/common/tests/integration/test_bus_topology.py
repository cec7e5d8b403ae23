"""Stream and consumer declaration against a real nats-server.

Matrix: declaring streams and a consumer twice is a no-op (state and config untouched);
stream drift in managed fields is updated in place while operator-owned fields survive; a
change the server refuses (storage type) is a PermanentError; consumer drift is updated in
place (ack_wait) or re-created (deliver policy); LSS_STATUS keeps one message per subject.
"""

from __future__ import annotations

import datetime

import nats
import nats.js.errors
import pytest
from nats.js import api

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.bus import codec, publishing, topology
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.testing import bus as testing_bus
from lss_common.testing import eventually
from lss_dev import natsserver

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def spec_for(settings: settings_module.CommonSettings) -> topology.ConsumerSpec:
    prefix = settings.nats.subject_prefix
    return topology.ConsumerSpec("reconciler", (subjects.events_filter("sandbox", prefix=prefix),))


async def test_declaring_streams_twice_is_a_no_op(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings, declare=False) as bus:
        js = bus.connection.jetstream
        first = await topology.declare_streams(js, settings=settings.nats)
        assert set(first.values()) == {topology.Declared.CREATED}
        await js.publish(
            subjects.status_subject(
                "sandbox", namespace="ns", name="a", prefix=settings.nats.subject_prefix
            ),
            b"{}",
        )
        before = await js.stream_info(settings.nats.status_stream)

        second = await topology.declare_streams(js, settings=settings.nats)

        assert set(second.values()) == {topology.Declared.UNCHANGED}
        after = await js.stream_info(settings.nats.status_stream)
        assert after.state.messages == before.state.messages == 1
        assert after.config == before.config
        assert after.created == before.created


async def test_stream_drift_is_corrected_and_operator_fields_survive(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        name = settings.nats.events_stream
        info = await js.stream_info(name)
        # Someone changed a field we own (dedupe window) and one we do not (max_bytes).
        await js.update_stream(info.config.evolve(duplicate_window=5.0, max_bytes=10_000_000))

        result = await topology.declare_stream(js, topology.events_stream_config(settings.nats))

        assert result is topology.Declared.UPDATED
        config = (await js.stream_info(name)).config
        assert config.duplicate_window == settings.nats.duplicate_window_seconds
        assert config.max_bytes == 10_000_000
        assert (
            await topology.declare_stream(js, topology.events_stream_config(settings.nats))
            is topology.Declared.UNCHANGED
        )


async def test_stream_change_the_server_refuses_is_permanent(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        memory = settings.nats.model_copy(update={"file_storage": False})
        with pytest.raises(errors.PermanentError, match="storage") as caught:
            await topology.declare_stream(
                bus.connection.jetstream, topology.events_stream_config(memory)
            )
        assert caught.value.reason == "StreamConfigConflict"


async def test_declaring_a_consumer_twice_is_a_no_op(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        spec = spec_for(settings)
        stream = settings.nats.events_stream
        assert (
            await topology.declare_consumer(js, spec, stream=stream, settings=settings.consumer)
            is topology.Declared.CREATED
        )
        before = await js.consumer_info(stream, spec.durable)

        assert (
            await topology.declare_consumer(js, spec, stream=stream, settings=settings.consumer)
            is topology.Declared.UNCHANGED
        )

        after = await js.consumer_info(stream, spec.durable)
        assert after.created == before.created
        assert after.config == before.config


async def test_consumer_drift_is_updated_in_place(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        spec = spec_for(settings)
        stream = settings.nats.events_stream
        await topology.declare_consumer(js, spec, stream=stream, settings=settings.consumer)
        created = (await js.consumer_info(stream, spec.durable)).created
        wider = topology.ConsumerSpec(
            spec.durable,
            (*spec.filter_subjects, subjects.recycle_filter(prefix=settings.nats.subject_prefix)),
        )
        longer = settings.consumer.model_copy(update={"ack_wait_seconds": 45.0})

        result = await topology.declare_consumer(js, wider, stream=stream, settings=longer)

        assert result is topology.Declared.UPDATED
        info = await js.consumer_info(stream, spec.durable)
        assert info.created == created
        assert info.config.ack_wait == 45.0
        assert sorted(info.config.filter_subjects or []) == sorted(wider.filter_subjects)


async def test_consumer_drift_the_server_refuses_recreates_it(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        spec = spec_for(settings)
        stream = settings.nats.events_stream
        # An old deployment created it with another deliver policy (not updatable in place).
        await js.add_consumer(
            stream,
            topology.consumer_config(spec, settings=settings.consumer).evolve(
                deliver_policy=api.DeliverPolicy.NEW
            ),
        )

        result = await topology.declare_consumer(
            js, spec, stream=stream, settings=settings.consumer
        )

        assert result is topology.Declared.RECREATED
        info = await js.consumer_info(stream, spec.durable)
        assert info.config.deliver_policy == api.DeliverPolicy.ALL


async def test_status_stream_keeps_the_latest_record_per_subject(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream
        publisher = publishing.Publisher(
            js, stream=settings.nats.status_stream, metrics=bus.metrics, timeout_seconds=5.0
        )
        subject = subjects.status_subject(
            "sandbox", namespace="ns", name="s.1", prefix=settings.nats.subject_prefix
        )
        for rv, phase in (("1", "Pending"), ("2", "Running")):
            record = messages.StatusRecord(
                kind="sandbox",
                namespace="ns",
                name="s.1",
                uid="u",
                phase=phase,
                resource_version=rv,
                observed_at=NOW,
            )
            await publisher.publish(record, subject=subject, msg_id=f"sandbox/ns/s_1/{rv}")

        info = await js.stream_info(settings.nats.status_stream)
        last = await js.get_last_msg(settings.nats.status_stream, subject)

        assert info.state.messages == 1
        assert codec.decode(last.data or b"", message_type=messages.StatusRecord).phase == "Running"


async def test_without_declaring_only_existence_is_checked(nats_url: str) -> None:
    """``nats.declare_topology`` off (the services' NATS users may not declare): a missing
    stream or consumer is a retryable error saying how to declare it, and drift is left as
    it is (only ``--declare-topology``, under a user that may, corrects it)."""
    settings = testing_bus.isolated_settings(nats_url)
    verify = settings.nats.model_copy(update={"declare_topology": False})
    async with testing_bus.open_bus(settings, declare=False) as bus:
        js = bus.connection.jetstream
        with pytest.raises(errors.RetryableError, match="--declare-topology") as missing:
            await topology.declare_streams(js, settings=verify)
        assert settings.nats.events_stream in str(missing.value)
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info(settings.nats.events_stream)  # nothing was created

        await topology.declare_streams(js, settings=settings.nats)
        spec = spec_for(settings)
        stream = settings.nats.events_stream
        with pytest.raises(errors.RetryableError, match=spec.durable):
            await topology.declare_consumer(
                js, spec, stream=stream, settings=settings.consumer, create=False
            )
        await topology.declare_consumer(js, spec, stream=stream, settings=settings.consumer)
        longer = settings.consumer.model_copy(update={"ack_wait_seconds": 45.0})
        result = await topology.declare_consumer(
            js, spec, stream=stream, settings=longer, create=False
        )
        assert result is topology.Declared.UNCHANGED
        assert (await js.consumer_info(stream, spec.durable)).config.ack_wait != 45.0
        drifted = settings.nats.model_copy(
            update={"declare_topology": False, "duplicate_window_seconds": 30.0}
        )
        assert set((await topology.declare_streams(js, settings=drifted)).values()) == {
            topology.Declared.UNCHANGED
        }
        info = await js.stream_info(settings.nats.events_stream)
        assert info.config.duplicate_window == settings.nats.duplicate_window_seconds


async def test_stream_subjects_reads_every_page(nats_server: natsserver.NatsServer) -> None:
    """The server lists 100,000 subjects per stream-info answer: the rest come page by page
    (the watcher marks records of objects deleted while it was down from this list)."""
    count = 100_250
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(
            api.StreamConfig(
                name="MANY",
                subjects=["many.>"],
                storage=api.StorageType.MEMORY,
                max_msgs_per_subject=1,
            )
        )
        for i in range(count):
            await nc.publish(f"many.{i}", b"")
            if i % 5000 == 0:
                await nc.flush()
        await nc.flush()

        async def stored() -> bool:
            return (await js.stream_info("MANY")).state.messages == count

        await eventually.eventually(stored, timeout_seconds=60, describe="every message stored")
        first_page = (await js.stream_info("MANY", subjects_filter="many.>")).state.subjects
        assert first_page is not None
        assert len(first_page) < count

        found = await topology.stream_subjects(js, "MANY", filter_subject="many.>")

        assert len(found) == count
        assert set(found) == {f"many.{i}" for i in range(count)}
        few = await topology.stream_subjects(js, "MANY", filter_subject="many.7")
        assert few == ["many.7"]
        assert await topology.stream_subjects(js, "MANY", filter_subject="many.x") == []
        with pytest.raises(nats.js.errors.NotFoundError):
            await topology.stream_subjects(js, "GONE", filter_subject="many.>")
    finally:
        await nc.close()
