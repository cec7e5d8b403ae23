"""Several watchers at once, and the periodic resync.

Matrix:
- two watchers on the same streams: creates, updates and deletes of sandboxes and of a child
  are each stored once (one message per Nats-Msg-Id, and per key, version and type; each
  replica's start round is not a change and has ids of its own), and the status stream holds
  one record per object, however the two race;
- the periodic resync publishes a RESYNC hint for every live object and for an owner key that
  has only children, with the round in its id; consecutive rounds are both stored (not
  deduplicated against each other or against the original change); the start round comes
  first, before the watcher reports ready.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import nats.aio.client
import pytest

from lss_common.models import labels
from lss_common.testing import eventually
from lss_watcher import settings as settings_module
from lss_watcher import testing

pytestmark = pytest.mark.integration


async def test_two_watchers_store_each_change_once(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    names = [f"sb-{index}" for index in range(10)]
    for name in names[:5]:
        await objects.create("sandboxes", testing.custom_body("sandbox", name))
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings) as first,
        testing.RunningWatcher(settings) as second,
    ):
        expected: set[tuple[str, str]] = set()
        for name in names[5:]:
            created = await objects.create("sandboxes", testing.custom_body("sandbox", name))
            expected.add((name, created["metadata"]["resourceVersion"]))
        for name in names:
            patched = await objects.patch("sandboxes", name, {"metadata": {"labels": {"v": "2"}}})
            expected.add((name, patched["metadata"]["resourceVersion"]))
            await objects.patch_status("sandboxes", name, {"phase": "Creating"})
        for name in names[:3]:
            await objects.delete("sandboxes", name)
        await children_change(objects)

        def all_seen() -> bool:
            seen = {(r.event.name, r.event.resource_version) for r in log.received}
            deleted = {r.event.name for r in log.received if r.event.event_type == "DELETED"}
            return expected <= seen and set(names[:3]) <= deleted

        await eventually.eventually(all_seen, timeout_seconds=30, describe="every change stored")
        # Both processed everything: their event counters agree.
        await eventually.eventually(
            lambda: (
                first.sample("llmsafespace_watcher_events_total", kind="sandbox", type="DELETED")
                == second.sample(
                    "llmsafespace_watcher_events_total", kind="sandbox", type="DELETED"
                )
                == 3
            ),
            timeout_seconds=30,
            describe="both watchers saw the three deletions",
        )
    by_id = collections.Counter(r.msg_id for r in log.received)
    assert [msg_id for msg_id, count in by_id.items() if count > 1] == []
    # Each replica's start round re-announces every key with an id of its own: not a change.
    changes = [r for r in log.received if r.event.event_type != "RESYNC"]
    by_version = collections.Counter(
        (r.key, r.event.resource_version, r.event.event_type) for r in changes
    )
    assert [key for key, count in by_version.items() if count > 1] == []
    duplicates = sum(
        watcher.sample(
            "llmsafespace_bus_published_total",
            stream=settings.nats.events_stream,
            result="duplicate",
        )
        for watcher in (first, second)
    )
    # Both published the same ids; JetStream kept one copy and reported the other.
    assert duplicates >= len(changes) // 2
    status_info = await nc.jetstream().stream_info(settings.nats.status_stream)
    # One retained record per sandbox subject, whatever the race.
    assert status_info.state.messages == len(names)


async def children_change(objects: testing.Objects) -> None:
    """A labelled ServiceAccount naming a sandbox: a child change seen by both watchers."""
    await objects.core.create_namespaced_service_account(
        objects.namespace,
        {
            "metadata": {
                "name": "sa",
                "labels": {labels.APP: labels.APP_VALUE, labels.SANDBOX_NAME: "sb-9"},
            }
        },
    )


async def test_periodic_resync_announces_every_key_each_round(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace, resync_period_seconds=2.0)
    cleanup_streams(settings)
    ns = objects.namespace
    created = await objects.create("sandboxes", testing.custom_body("sandbox", "live"))
    version = created["metadata"]["resourceVersion"]
    await objects.core.create_namespaced_service_account(
        ns,
        {
            "metadata": {
                "name": "orphan-sa",
                "labels": {labels.APP: labels.APP_VALUE, labels.SANDBOX_NAME: "gone"},
            }
        },
    )
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings) as running,
    ):

        def rounds(name: str) -> set[str]:
            return {
                round_id
                for r in log.for_key("sandbox", ns, name)
                if r.event.event_type == "RESYNC"
                and (round_id := (r.msg_id or "").rsplit("/", 1)[-1]).startswith("resync-")
            }

        # A round is counted once it is over (published, statuses reconciled, drained),
        # after its hints reached the log: wait for the count too.
        await eventually.eventually(
            lambda: (
                len(rounds("live")) >= 2
                and len(rounds("gone")) >= 2
                and running.sample("llmsafespace_watcher_resyncs_total", trigger="periodic") >= 2
            ),
            timeout_seconds=30,
            describe="two periodic resync rounds for the sandbox and the orphan's owner key",
        )
        assert running.sample("llmsafespace_watcher_resyncs_total", trigger="startup") == 1
    live = [r for r in log.for_key("sandbox", ns, "live") if r.event.event_type == "RESYNC"]
    assert all(r.event.resource_version == version for r in live)
    assert all(r.msg_id and r.msg_id.startswith(f"sandbox/{ns}/live/{version}/") for r in live)
    # The first round is the start round, announced before the watcher reported ready.
    assert (live[0].msg_id or "").split("/")[-1].startswith("start-")
    assert all(int(round_id.removeprefix("resync-")) % 2 == 0 for round_id in rounds("live"))
    orphan = [r for r in log.for_key("sandbox", ns, "gone") if r.event.event_type == "RESYNC"]
    assert all(r.event.resource_version is None for r in orphan)
    # The original ADDED is still there, next to the resyncs.
    assert next(r.event.event_type for r in log.for_key("sandbox", ns, "live")) == "ADDED"
