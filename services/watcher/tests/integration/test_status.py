"""LSS_STATUS: committed Sandbox and WarmPool status, read with ``get_status`` and awaited with
``wait_for_phase`` (``lss_common.bus.status_client``).

Matrix:
- a new Sandbox has a record (no phase yet); a status written through the status subresource
  is readable with get_status (phase, pod name, endpoint, start time, launch, conditions,
  resourceVersion) and resolves a wait_for_phase that started before it;
- a subscriber that connects late gets the latest status at once;
- a metadata-only change publishes nothing new (same content);
- deletion publishes a final record with deleted=true and a TTL; wait_for_phase on a deleted
  object raises NotFoundError;
- WarmPool status (conditions, observedGeneration) is published too;
- a stored record whose object no longer exists (deleted while no watcher ran) is marked
  deleted by the initial list;
- LSS_STATUS deleted under a running, connected watcher is declared again by the first
  status to publish, even one that reads before it publishes (a subject not remembered).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable

import nats.aio.client
import pytest
from nats.js import api

from lss_common import errors
from lss_common.bus import codec, status_client, topology
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.testing import eventually
from lss_watcher import settings as settings_module
from lss_watcher import testing

pytestmark = pytest.mark.integration

T0 = "2025-01-01T12:00:00Z"


def running_status(generation: int = 1) -> dict[str, object]:
    return {
        "phase": "Running",
        "observedGeneration": generation,
        "podName": "sb-pod",
        "podNamespace": "elsewhere",
        "startTime": T0,
        "endpoint": "sb.ns.svc.cluster.local",
        "warmPodRef": {"name": "wp-1"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PodReady",
                "message": "pod is ready",
                "lastTransitionTime": T0,
                "observedGeneration": generation,
            }
        ],
    }


async def test_status_is_readable_awaitable_and_final_on_delete(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace, status_deleted_ttl_seconds=600)
    cleanup_streams(settings)
    js = nc.jetstream()
    ns = objects.namespace
    where = {
        "stream": settings.nats.status_stream,
        "prefix": settings.nats.subject_prefix,
    }
    async with testing.RunningWatcher(settings) as running:
        created = await objects.create("sandboxes", testing.custom_body("sandbox", "sb.1"))
        first = await eventually.eventually(
            lambda: status_client.get_status(
                js, kind="sandbox", namespace=ns, name="sb.1", **where
            ),
            timeout_seconds=20,
            describe="the new sandbox's first record",
        )
        assert first is not None
        assert first.phase is None
        assert first.uid == created["metadata"]["uid"]
        assert first.resource_version == created["metadata"]["resourceVersion"]

        waiting = asyncio.create_task(
            status_client.wait_for_phase(
                js,
                kind="sandbox",
                namespace=ns,
                name="sb.1",
                phases={"Running", "Failed"},
                timeout_seconds=30,
                **where,
            )
        )
        updated = await objects.patch_status("sandboxes", "sb.1", running_status())
        record = await waiting
        assert record.phase == "Running"
        assert record.resource_version == updated["metadata"]["resourceVersion"]
        assert record.pod_name == "sb-pod"
        assert record.endpoint == "sb.ns.svc.cluster.local"
        assert record.launch == "warm"
        assert record.start_time == datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC)
        assert record.observed_generation == 1
        assert [(c.type, c.status, c.reason) for c in record.conditions] == [
            ("Ready", "True", "PodReady")
        ]
        assert not record.deleted

        # A late subscriber gets the current status at once.
        late = await status_client.wait_for_phase(
            js,
            kind="sandbox",
            namespace=ns,
            name="sb.1",
            phases={"Running"},
            timeout_seconds=10,
            **where,
        )
        assert late == record
        assert (
            await status_client.get_status(js, kind="sandbox", namespace=ns, name="sb.1", **where)
            == record
        )

        # Same status, new metadata: the record stays as it was.
        unchanged_before = running.sample(
            "llmsafespace_watcher_status_records_total", result="unchanged"
        )
        await objects.patch("sandboxes", "sb.1", {"metadata": {"labels": {"x": "y"}}})
        await eventually.eventually(
            lambda: (
                running.sample("llmsafespace_watcher_status_records_total", result="unchanged")
                > unchanged_before
            ),
            timeout_seconds=20,
            describe="the label change is recognised as no status change",
        )
        assert (
            await status_client.get_status(js, kind="sandbox", namespace=ns, name="sb.1", **where)
            == record
        )

        await objects.delete("sandboxes", "sb.1")

        async def final() -> messages.StatusRecord | None:
            current = await status_client.get_status(
                js, kind="sandbox", namespace=ns, name="sb.1", **where
            )
            return current if current is not None and current.deleted else None

        last = await eventually.eventually(
            final, timeout_seconds=20, describe="the deletion record"
        )
        assert last is not None
        assert last.phase == "Running"
        assert int(last.resource_version) > int(record.resource_version)
        raw = await js.get_last_msg(
            settings.nats.status_stream,
            subjects.status_subject("sandbox", namespace=ns, name="sb.1", prefix=where["prefix"]),
            direct=True,
        )
        assert (raw.headers or {}).get(api.Header.MSG_TTL.value) == "600"
        with pytest.raises(errors.NotFoundError):
            await status_client.wait_for_phase(
                js,
                kind="sandbox",
                namespace=ns,
                name="sb.1",
                phases={"Terminated"},
                timeout_seconds=10,
                **where,
            )


async def test_warm_pool_status_is_published(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    js = nc.jetstream()
    where = {"stream": settings.nats.status_stream, "prefix": settings.nats.subject_prefix}
    async with testing.RunningWatcher(settings):
        await objects.create("warmpools", testing.custom_body("warmpool", "pool"))
        updated = await objects.patch_status(
            "warmpools",
            "pool",
            {
                "availablePods": 2,
                "observedGeneration": 1,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "Filling",
                        "lastTransitionTime": T0,
                    }
                ],
            },
        )

        async def current() -> messages.StatusRecord | None:
            record = await status_client.get_status(
                js, kind="warmpool", namespace=objects.namespace, name="pool", **where
            )
            if record is None or record.resource_version != updated["metadata"]["resourceVersion"]:
                return None
            return record

        record = await eventually.eventually(
            current, timeout_seconds=20, describe="the pool's status record"
        )
        assert record is not None
        assert record.kind == "warmpool"
        assert record.observed_generation == 1
        assert [(c.type, c.status, c.reason) for c in record.conditions] == [
            ("Ready", "False", "Filling")
        ]
        assert record.launch is None


async def test_records_of_objects_deleted_while_unwatched_are_marked_deleted(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    js = nc.jetstream()
    ns = objects.namespace
    prefix = settings.nats.subject_prefix
    where = {"stream": settings.nats.status_stream, "prefix": prefix}
    # A record left by an earlier watcher for a sandbox that has since been deleted.
    await topology.declare_streams(js, settings=settings.nats)
    ghost = messages.StatusRecord(
        kind="sandbox",
        namespace=ns,
        name="ghost",
        uid="0000-ghost",
        phase="Running",
        resource_version="1",
        observed_at=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
    )
    await js.publish(
        subjects.status_subject("sandbox", namespace=ns, name="ghost", prefix=prefix),
        codec.encode(ghost),
        stream=settings.nats.status_stream,
    )
    await objects.create("sandboxes", testing.custom_body("sandbox", "alive"))
    async with testing.RunningWatcher(settings):
        marked = await eventually.eventually(
            lambda: status_client.get_status(
                js, kind="sandbox", namespace=ns, name="ghost", **where
            ),
            timeout_seconds=10,
            describe="the ghost's record",
        )
        assert marked is not None
        # Ready means the initial list, and with it the reconciliation, is done.
        await eventually.eventually(
            lambda: _deleted(js, ns, "ghost", where),
            timeout_seconds=20,
            describe="the ghost's record is marked deleted",
        )
        alive = await status_client.get_status(
            js, kind="sandbox", namespace=ns, name="alive", **where
        )
        assert alive is not None
        assert not alive.deleted


async def _deleted(js: object, namespace: str, name: str, where: dict[str, str]) -> bool:
    record = await status_client.get_status(
        js,
        kind="sandbox",
        namespace=namespace,
        name=name,
        **where,
    )
    return record is not None and record.deleted and record.phase == "Running"


async def test_a_status_stream_deleted_under_a_running_watcher_is_declared_again(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    """LSS_STATUS is deleted while the watcher runs and stays connected (an operator, a lost
    replica): the first status to publish is a new sandbox's, whose subject the watcher does
    not remember, so it reads before it publishes and meets no stream there. The stream is
    declared again and the record lands; hints went on meanwhile. Every other record is
    published again (they went with the stream; an unchanged status was never written
    again until a relist)."""
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    js = nc.jetstream()
    where = {"stream": settings.nats.status_stream, "prefix": settings.nats.subject_prefix}
    async with testing.RunningWatcher(settings) as running:
        await objects.create("sandboxes", testing.custom_body("sandbox", "before"))
        await eventually.eventually(
            lambda: status_client.get_status(
                js, kind="sandbox", namespace=objects.namespace, name="before", **where
            ),
            timeout_seconds=20,
            describe="a record before the deletion",
        )
        await js.delete_stream(settings.nats.status_stream)

        created = await objects.create("sandboxes", testing.custom_body("sandbox", "after"))

        async def stored() -> messages.StatusRecord | None:
            try:
                return await status_client.get_status(
                    js, kind="sandbox", namespace=objects.namespace, name="after", **where
                )
            except Exception:
                return None  # the stream is not back yet

        record = await eventually.eventually(
            stored, timeout_seconds=30, describe="the new sandbox's record in a new stream"
        )
        assert record is not None
        assert record.uid == created["metadata"]["uid"]
        assert running.exit_code is None
        info = await js.stream_info(settings.nats.status_stream)
        assert info.config.name == settings.nats.status_stream
        # The sandbox whose status never changed has its record again too: the watcher
        # remembered it as stored and would have skipped it until a relist.
        await objects.patch("sandboxes", "before", {"metadata": {"labels": {"touched": "1"}}})
        again = await eventually.eventually(
            lambda: status_client.get_status(
                js, kind="sandbox", namespace=objects.namespace, name="before", **where
            ),
            timeout_seconds=30,
            describe="the unchanged sandbox's record in the new stream",
        )
        assert again is not None
        assert not again.deleted


async def test_a_status_time_at_the_calendars_edge_neither_crashes_nor_stops_the_watcher(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    """A valid RFC 3339 time with no UTC form in Python (``0001-01-01T00:00:00+01:00``), as
    whoever may write a Sandbox's status can store: the watcher crashed on it, and again on
    every restart (the initial list met it first). Its record is published with the time
    clamped, and the changes after it are published too."""
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    js = nc.jetstream()
    ns = objects.namespace
    where = {"stream": settings.nats.status_stream, "prefix": settings.nats.subject_prefix}
    edge = running_status()
    edge["startTime"] = "0001-01-01T00:00:00+01:00"
    edge["conditions"] = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "PodReady",
            "lastTransitionTime": "9999-12-31T23:30:00-01:00",
        }
    ]
    await objects.create("sandboxes", testing.custom_body("sandbox", "edge"))
    for attempt in range(2):  # watching it change, then listing it at a restart
        async with testing.RunningWatcher(settings):
            if attempt == 0:
                await objects.patch_status("sandboxes", "edge", edge)
            record = await status_client.wait_for_phase(
                js,
                kind="sandbox",
                namespace=ns,
                name="edge",
                phases={"Running"},
                timeout_seconds=20,
                **where,
            )
            assert record.start_time == datetime.datetime(1000, 1, 1, tzinfo=datetime.UTC)
            assert record.conditions[0].last_transition_time == datetime.datetime(
                9000, 1, 1, tzinfo=datetime.UTC
            )
            # The watcher goes on: the next change is published.
            phase = "Terminated" if attempt == 0 else "Failed"
            await objects.patch_status("sandboxes", "edge", {**running_status(), "phase": phase})
            after = await status_client.wait_for_phase(
                js,
                kind="sandbox",
                namespace=ns,
                name="edge",
                phases={phase},
                timeout_seconds=20,
                **where,
            )
            assert after.start_time == datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC)
            await objects.patch_status("sandboxes", "edge", edge)  # the edge for the restart


async def test_a_record_the_server_refuses_is_dropped_not_retried_for_ever(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    """A record LSS_STATUS refuses as it is (larger than its ``max_msg_size``, as one over
    NATS's payload limit would be) was retried for ever: it held a publish slot and the
    object's turn, so the object's later records, and slot by slot every hint, waited behind
    it. Now it is dropped (counted, logged) and the object's next record is published; a
    condition message is clipped to 4,096 characters in any record."""
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    js = nc.jetstream()
    ns = objects.namespace
    where = {"stream": settings.nats.status_stream, "prefix": settings.nats.subject_prefix}
    async with testing.RunningWatcher(settings) as running:
        info = await js.stream_info(settings.nats.status_stream)
        config = info.config
        config.max_msg_size = 4096
        await js.update_stream(config)
        await objects.create("sandboxes", testing.custom_body("sandbox", "big"))
        loud = running_status()
        loud["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PodReady",
                "message": "x" * 3000,
                "lastTransitionTime": T0,
            },
            {
                "type": "PodScheduled",
                "status": "True",
                "reason": "Scheduled",
                "message": "y" * 3000,
                "lastTransitionTime": T0,
            },
        ]
        await objects.patch_status("sandboxes", "big", loud)
        await eventually.reaches(
            lambda: running.sample("llmsafespace_watcher_status_records_dropped_total"),
            1.0,
            describe="the refused record dropped",
        )
        # The object's next record is published: nothing holds its turn.
        await objects.patch_status("sandboxes", "big", {**running_status(), "phase": "Failed"})
        record = await status_client.wait_for_phase(
            js,
            kind="sandbox",
            namespace=ns,
            name="big",
            phases={"Failed"},
            timeout_seconds=20,
            **where,
        )
        assert record.conditions[0].message == "pod is ready"
        # Restore the limit; a 32 KiB message is clipped, the record stored.
        config.max_msg_size = -1
        await js.update_stream(config)
        huge = running_status()
        huge["phase"] = "Terminated"
        huge["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PodReady",
                "message": "z" * 32768,
                "lastTransitionTime": T0,
            }
        ]
        await objects.patch_status("sandboxes", "big", huge)
        clipped = await status_client.wait_for_phase(
            js,
            kind="sandbox",
            namespace=ns,
            name="big",
            phases={"Terminated"},
            timeout_seconds=20,
            **where,
        )
        assert clipped.conditions[0].message == "z" * 4095 + "…"
        assert running.sample("llmsafespace_watcher_status_records_dropped_total") == 1.0
