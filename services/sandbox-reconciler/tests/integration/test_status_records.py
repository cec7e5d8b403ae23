"""The reconciler publishes the LSS_STATUS record of each status it writes (real platform).

- Without any watcher (the test publishes the hints a watcher would), a ``Running`` record
  appears on LSS_STATUS, and it is the record a watcher would build from the committed
  object: same resourceVersion, same content.
- With ``reconcile.publish_status`` off (and still no watcher), the sandbox runs and no
  record appears: only the watcher publishes then.
- With the watcher running too, both publish every version they see, and the stream stores
  exactly one record per resourceVersion, each newer than the one before: its full history
  (republished by the server for every message it stores, and only those) from the
  sandbox's creation to its deletion record.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator

import msgspec
import nats
import nats.aio.client
import nats.aio.msg
import pytest
from nats.js import api
from reconciler_harness import WAIT_SECONDS, Cluster, RunningReconciler, World

from lss_common.bus import codec, status_client, topology
from lss_common.logic import status_records, subjects
from lss_common.models import messages
from lss_common.testing import eventually

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[nats.aio.client.Client]:
    connection = await nats.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def stored(
    nc: nats.aio.client.Client, world: World, *, namespace: str, name: str
) -> messages.StatusRecord | None:
    return await status_client.get_status(
        nc.jetstream(),
        kind="sandbox",
        namespace=namespace,
        name=name,
        stream=world.nats.status_stream,
        prefix=world.nats.subject_prefix,
    )


async def test_running_is_published_without_a_watcher(
    world: World, cluster: Cluster, nats_url: str
) -> None:
    reconciler = await world.start_reconciler()
    await cluster.create_runtime()
    await cluster.create_sandbox("box", timeout=300)
    async with connected(nats_url) as nc:

        async def running() -> messages.StatusRecord | None:
            # Hints keep the passes coming (the pod's progress is what a watcher would hint).
            await world.hint(namespace=cluster.namespace, name="box")
            found = await stored(nc, world, namespace=cluster.namespace, name="box")
            return found if found is not None and found.phase == "Running" else None

        record: messages.StatusRecord = await eventually.eventually(
            running,
            timeout_seconds=WAIT_SECONDS,
            describe="a Running record on LSS_STATUS",
            interval_seconds=0.2,
        )
    # The record a watcher would have built from the committed object (nothing writes the
    # sandbox after Running: no new hint, and its lifetime is far away).
    obj = await cluster.sandbox("box")
    assert obj is not None
    metadata = obj["metadata"]
    assert record.resource_version == metadata["resourceVersion"]
    expected = status_records.record_of(
        "sandbox",
        namespace=metadata["namespace"],
        name=metadata["name"],
        uid=metadata["uid"],
        resource_version=metadata["resourceVersion"],
        status=msgspec.json.encode(obj["status"]),
        observed_at=record.observed_at,
    )
    assert record == expected
    assert (record.launch, record.pod_name) == ("cold", obj["status"]["podName"])
    # Creating, then Running.
    assert published(reconciler) >= 2
    assert reconciler.sample("llmsafespace_sandbox_status_publish_failures_total") == 0


async def test_nothing_is_published_when_turned_off(
    world: World, cluster: Cluster, nats_url: str
) -> None:
    reconciler = await world.start_reconciler(reconcile_options={"publish_status": False})
    await cluster.create_runtime()
    await cluster.create_sandbox("box", timeout=300)
    async with connected(nats_url) as nc:

        async def started() -> bool:
            await world.hint(namespace=cluster.namespace, name="box")
            # Observed after the pass that wrote Running has passed the point of publishing.
            return (
                reconciler.sample(
                    "llmsafespace_sandbox_startup_duration_seconds_count", launch="cold"
                )
                == 1
            )

        await eventually.eventually(
            started,
            timeout_seconds=WAIT_SECONDS,
            describe="the pass that wrote Running done",
            interval_seconds=0.2,
        )
        assert await stored(nc, world, namespace=cluster.namespace, name="box") is None
    assert published(reconciler) == 0


class History:
    """Every record the status stream stores, in order (see :func:`record_history`)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, messages.StatusRecord]] = []

    async def on_message(self, msg: nats.aio.msg.Msg) -> None:
        seq = int((msg.headers or {})["Nats-Sequence"])
        self.records.append((seq, codec.decode(msg.data, message_type=messages.StatusRecord)))


async def record_history(nc: nats.aio.client.Client, world: World) -> History:
    """Declare the streams as the services will, and have the server republish each message
    the status stream stores on ``<prefix>-history.>`` (not a managed field: the services'
    own declarations leave it in place)."""
    history = History()
    dest = f"{world.nats.subject_prefix}-history"
    await nc.subscribe(f"{dest}.>", cb=history.on_message)
    await nc.flush()
    js = nc.jetstream()
    await topology.declare_streams(js, settings=world.nats)
    config = (await js.stream_info(world.nats.status_stream)).config
    config.republish = api.RePublish(
        src=subjects.status_filter(prefix=world.nats.subject_prefix), dest=f"{dest}.>"
    )
    await js.update_stream(config)
    return history


async def test_one_record_per_version_with_the_watcher(
    world: World, cluster: Cluster, nats_url: str
) -> None:
    async with connected(nats_url) as nc:
        history = await record_history(nc, world)
        reconciler = await world.start_reconciler()
        watcher = await world.start_watcher()
        await cluster.create_runtime()
        await cluster.create_sandbox("box", timeout=300)

        async def phase(wanted: str) -> bool:
            found = await stored(nc, world, namespace=cluster.namespace, name="box")
            return found is not None and found.phase == wanted and not found.deleted

        await eventually.eventually(
            lambda: phase("Running"),
            timeout_seconds=WAIT_SECONDS,
            describe="a Running record on LSS_STATUS",
        )
        await cluster.delete_sandbox("box")
        await cluster.wait_gone("box")

        async def deleted() -> bool:
            found = await stored(nc, world, namespace=cluster.namespace, name="box")
            return found is not None and found.deleted

        await eventually.eventually(
            deleted, timeout_seconds=WAIT_SECONDS, describe="the deletion record"
        )
        # Nothing publishes any more: the watcher has published the deletion record, the
        # reconciler's last status write came before it.
        info = await nc.jetstream().stream_info(world.nats.status_stream)
        await eventually.eventually(
            lambda: len(history.records) == info.state.last_seq,
            timeout_seconds=WAIT_SECONDS,
            describe=f"{info.state.last_seq} stored records republished",
        )
    versions = [(item.resource_version, item.deleted) for _, item in sorted(history.records)]
    assert len(versions) == len(set(versions)), versions
    ordered = [status_records.stored(item) for _, item in sorted(history.records)]
    assert all(
        status_records.is_newer(later, earlier) for earlier, later in itertools.pairwise(ordered)
    ), versions
    assert "Running" in [item.phase for _, item in sorted(history.records)]
    # Every stored record was published by exactly one of the two.
    watcher_published = watcher.sample(
        "llmsafespace_watcher_status_records_total", result="published"
    )
    assert published(reconciler) + watcher_published == len(versions)
    # The reconciler announced each of its status writes (Creating, Running, Terminating);
    # whichever of the two came second found the version stored.
    attempted = sum(
        reconciler.sample("llmsafespace_sandbox_status_records_total", result=result)
        for result in ("published", "stale", "duplicate")
    )
    assert attempted >= 3


def published(reconciler: RunningReconciler) -> float:
    return reconciler.sample("llmsafespace_sandbox_status_records_total", result="published")
