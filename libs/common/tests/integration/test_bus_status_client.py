"""status_client against a real nats-server: get_status and wait_for_phase over LSS_STATUS.

Matrix: no record → None; the latest of several records (one per subject is kept); dotted
names and cluster-scoped kinds; wait_for_phase returns at once for a late subscriber, waits
for a later record otherwise, raises TimeoutError when none comes and NotFoundError when the
object is deleted first; an undecodable record raises InvalidMessage.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from lss_common import errors
from lss_common.bus import codec, status_client
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.testing import bus as testing_bus

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def record(
    phase: str | None, version: int, *, name: str = "a.b", deleted: bool = False
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


async def test_get_and_wait(nats_url: str) -> None:
    settings = testing_bus.isolated_settings(nats_url)
    stream, prefix = settings.nats.status_stream, settings.nats.subject_prefix
    where = {"stream": stream, "prefix": prefix}
    async with testing_bus.open_bus(settings) as bus:
        js = bus.connection.jetstream

        async def put(item: messages.StatusRecord) -> None:
            subject = subjects.status_subject(
                item.kind, namespace=item.namespace, name=item.name, prefix=prefix
            )
            await js.publish(subject, codec.encode(item), stream=stream)

        assert (
            await status_client.get_status(js, kind="sandbox", namespace="ns", name="a.b", **where)
            is None
        )
        await put(record("Pending", 1))
        await put(record("Creating", 2))
        current = await status_client.get_status(
            js, kind="sandbox", namespace="ns", name="a.b", **where
        )
        assert current == record("Creating", 2)

        # Late subscriber: the current record satisfies it at once.
        assert await status_client.wait_for_phase(
            js,
            kind="sandbox",
            namespace="ns",
            name="a.b",
            phases=["Pending", "Creating"],
            timeout_seconds=5,
            **where,
        ) == record("Creating", 2)

        # Waiting for a later phase.
        waiting = asyncio.create_task(
            status_client.wait_for_phase(
                js,
                kind="sandbox",
                namespace="ns",
                name="a.b",
                phases={"Running"},
                timeout_seconds=10,
                **where,
            )
        )
        await put(record("Creating", 3))
        await put(record("Running", 4))
        assert await waiting == record("Running", 4)

        with pytest.raises(TimeoutError):
            await status_client.wait_for_phase(
                js,
                kind="sandbox",
                namespace="ns",
                name="a.b",
                phases={"Failed"},
                timeout_seconds=0.5,
                **where,
            )

        await put(record("Running", 5, deleted=True))
        with pytest.raises(errors.NotFoundError):
            await status_client.wait_for_phase(
                js,
                kind="sandbox",
                namespace="ns",
                name="a.b",
                phases={"Failed"},
                timeout_seconds=5,
                **where,
            )

        # Cluster-scoped kinds use the cluster token; nothing else is special.
        cluster = messages.StatusRecord(
            kind="warmpool",
            namespace=None,
            name="p",
            uid="u",
            resource_version="1",
            observed_at=NOW,
        )
        await put(cluster)
        assert (
            await status_client.get_status(js, kind="warmpool", namespace=None, name="p", **where)
            == cluster
        )

        await js.publish(
            subjects.status_subject("sandbox", namespace="ns", name="bad", prefix=prefix),
            b"not json",
            stream=stream,
        )
        with pytest.raises(errors.InvalidMessage):
            await status_client.get_status(js, kind="sandbox", namespace="ns", name="bad", **where)
