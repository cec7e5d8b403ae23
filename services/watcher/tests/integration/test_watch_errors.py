"""A watch whose position is ahead of the API server's revision.

etcd restored from a backup without a revision bump leaves the watcher's position ahead of
the store: the API server then delivers nothing on that watch, not even bookmarks, until its
revision passes the position, and the changes in between would never be announced. Here the
position is moved far ahead right after the initial list (the real API server answers as
it would after such a restore): the watch idles out, the watcher lists again, and a sandbox
created meanwhile is announced.
"""

from __future__ import annotations

from collections.abc import Callable

import nats.aio.client
import pytest

from lss_watcher import settings as settings_module
from lss_watcher import testing, watching

pytestmark = pytest.mark.integration


async def test_a_watch_silent_past_its_idle_timeout_relists_and_loses_nothing(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(namespace=objects.namespace, watch_idle_timeout_seconds=2.0)
    cleanup_streams(settings)
    real_list = watching.ResourceWatcher._list
    jumped: list[str] = []

    async def list_then_jump(self: watching.ResourceWatcher) -> None:
        await real_list(self)
        if str(self.resource.name) == "sandbox" and not jumped:
            self._position = str(int(self._position) + 10_000_000)
            jumped.append(self._position)

    monkeypatch.setattr(watching.ResourceWatcher, "_list", list_then_jump)
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings) as running,
    ):
        created = await objects.create("sandboxes", testing.custom_body("sandbox", "later"))
        version = created["metadata"]["resourceVersion"]
        await log.wait_for(
            lambda r: r.event.name == "later" and r.event.resource_version == version,
            describe="the sandbox created while the watch was silent, announced",
            timeout_seconds=60,
        )
        assert len(jumped) == 1
        assert running.sample("llmsafespace_watcher_relists_total", kind="sandbox") >= 1
        assert (
            running.sample(
                "llmsafespace_watcher_watch_restarts_total", kind="sandbox", reason="idle"
            )
            >= 1
        )
        assert running.exit_code is None
