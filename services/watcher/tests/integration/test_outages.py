"""The kube-apiserver and the nats-server are restarted while changes go on: the watcher resumes
by itself and nothing is missed.

One watcher runs in-process against a nats-server of this test's own (so it can be killed)
and the session's kube-apiserver (killed with SIGKILL and started again; the platform is left
healthy whatever happens). A churn keeps patching 40 sandboxes throughout. Afterwards, every
sandbox's current resourceVersion has a hint carrying it, the watcher never exited, it is
ready again, and its metrics show the watch restarts and the reconnect resync.

A second case brings NATS back *without its store*: the watcher re-declares the streams,
republishes the status records and keeps announcing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator

import nats
import nats.aio.client
import pytest

from lss_common.bus import status_client
from lss_common.testing import eventually
from lss_dev import natsserver, processes
from lss_dev import platform as platform_module
from lss_watcher import testing

pytestmark = pytest.mark.integration

OBJECTS = 40


@pytest.fixture
async def own_nc(nats_server: natsserver.NatsServer) -> AsyncIterator[nats.aio.client.Client]:
    connection = await nats.connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1
    )
    try:
        yield connection
    finally:
        await connection.close()


async def test_apiserver_and_nats_restarts_lose_nothing(
    platform: platform_module.Platform,
    nats_server: natsserver.NatsServer,
    own_nc: nats.aio.client.Client,
    objects: testing.Objects,
) -> None:
    settings = testing.isolated_settings(
        kubeconfig=str(platform.kubeconfig),
        nats_url=nats_server.url,
        namespace=objects.namespace,
        # Short, so that the test does not wait long for the watch to notice a dead server.
        watch_idle_timeout_seconds=10.0,
    )
    names = [f"sb-{index:02d}" for index in range(OBJECTS)]
    for name in names:
        await objects.create("sandboxes", testing.custom_body("sandbox", name))
    churn = testing.Churn(objects, names, concurrency=4)
    async with (
        testing.hint_log(own_nc.jetstream(), settings.nats, durable="check") as log,
        testing.RunningWatcher(settings) as running,
    ):
        try:
            churn.start()
            await churn.wait_changes(100)

            # The API server dies mid-stream and comes back.
            try:
                processes.kill("kube-apiserver", state_dir=platform.state_dir)
                await eventually.eventually(
                    lambda: churn.failures > 0,
                    timeout_seconds=30,
                    describe="changes fail while the API server is down",
                )
            finally:
                platform.control_plane.start_component("kube-apiserver")
                await asyncio.to_thread(platform.control_plane.wait_apiserver)
            after_apiserver = churn.changes
            await churn.wait_changes(after_apiserver + 100)

            # NATS dies while changes go on, and comes back with its store.
            nats_server.kill()
            while_down = churn.changes
            await churn.wait_changes(while_down + 100)
            await asyncio.to_thread(nats_server.start)
            await churn.wait_changes(churn.changes + 100)
        finally:
            await churn.stop()

        latest = await testing.current_versions(objects)
        assert set(latest) == set(names)

        def nothing_missing() -> bool:
            announced = {(r.event.name, r.event.resource_version) for r in log.received}
            left = [name for name, version in latest.items() if (name, version) not in announced]
            assert not left, f"{len(left)} latest versions not announced, e.g. {left[:5]}"
            return True

        await eventually.eventually(
            nothing_missing, timeout_seconds=120, describe="every latest version announced"
        )
        assert running.exit_code is None
        await eventually.eventually(
            running.is_ready, timeout_seconds=60, describe="ready again after both outages"
        )
        restarts = sum(
            running.sample("llmsafespace_watcher_watch_restarts_total", kind="sandbox", reason=r)
            for r in ("error", "gone", "idle")
        )
        assert restarts >= 1
        await eventually.eventually(
            lambda: running.sample("llmsafespace_watcher_resyncs_total", trigger="reconnect") >= 1,
            timeout_seconds=60,
            describe="a resync after the NATS reconnect",
        )
        with contextlib.suppress(Exception):
            await own_nc.jetstream().delete_stream(settings.nats.events_stream)


async def test_nats_back_without_its_store_gets_streams_status_and_hints_again(
    platform: platform_module.Platform,
    nats_server: natsserver.NatsServer,
    own_nc: nats.aio.client.Client,
    objects: testing.Objects,
) -> None:
    settings = testing.isolated_settings(
        kubeconfig=str(platform.kubeconfig),
        nats_url=nats_server.url,
        namespace=objects.namespace,
    )
    where = {"stream": settings.nats.status_stream, "prefix": settings.nats.subject_prefix}
    js = own_nc.jetstream()
    await objects.create("sandboxes", testing.custom_body("sandbox", "sb"))
    await objects.patch_status("sandboxes", "sb", {"phase": "Creating"})
    async with testing.RunningWatcher(settings) as running:
        record = await eventually.eventually(
            lambda: status_client.wait_for_phase(
                js,
                kind="sandbox",
                namespace=objects.namespace,
                name="sb",
                phases={"Creating"},
                timeout_seconds=10,
                **where,
            ),
            timeout_seconds=30,
            describe="the status before the outage",
        )
        # The server comes back empty: no streams, no records.
        nats_server.kill()
        shutil.rmtree(nats_server.store_dir / "jetstream", ignore_errors=True)
        await asyncio.to_thread(nats_server.start)

        async def restored() -> bool:
            current = await status_client.get_status(
                js, kind="sandbox", namespace=objects.namespace, name="sb", **where
            )
            return current is not None and current.phase == "Creating"

        await eventually.eventually(
            restored, timeout_seconds=60, describe="the status record is published again"
        )
        assert running.sample("llmsafespace_watcher_resyncs_total", trigger="reconnect") >= 1
        # New changes flow into the re-declared streams.
        async with testing.hint_log(js, settings.nats) as log:
            patched = await objects.patch("sandboxes", "sb", {"metadata": {"labels": {"a": "b"}}})
            await log.wait_for(
                lambda r: r.event.resource_version == patched["metadata"]["resourceVersion"],
                describe="a hint after the empty restart",
            )
        assert record.resource_version
