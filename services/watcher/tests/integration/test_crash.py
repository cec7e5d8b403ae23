"""kill -9 the watcher while 200 objects are being changed, restart it: nothing is missed.

The watcher runs as ``python -m lss_watcher`` (a real process, so SIGKILL loses whatever was
in flight). While it is dead, changes go on, some sandboxes are deleted and new ones created.
After the restart and more changes, every live sandbox's current resourceVersion has a hint
carrying exactly that version (a hint can only name a version after it was committed), and
every sandbox deleted while the watcher was dead has a DELETED hint (its status record, left
by the first process, told the second one it had existed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nats.aio.client
import pytest

from lss_common.testing import eventually
from lss_dev import controlplane
from lss_watcher import settings as settings_module
from lss_watcher import testing

pytestmark = pytest.mark.integration

OBJECTS = 200


class WatcherProcess:
    """``python -m lss_watcher`` with the given settings, its output in a log file."""

    def __init__(self, settings: settings_module.WatcherSettings, *, log_file: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        self.port = settings.http.port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **testing.environment(self.settings)}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lss_watcher"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self) -> None:
        async def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"watcher exited: {self.log_tail()}")
            return await testing.readyz(f"http://127.0.0.1:{self.port}")

        await eventually.eventually(ready, timeout_seconds=60, describe="watcher process ready")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-30:])


async def test_kill_9_while_changing_200_objects_misses_nothing(
    tmp_path: Path,
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    settings = settings.model_copy(
        update={"http": settings.http.model_copy(update={"port": controlplane.free_port()})}
    )
    cleanup_streams(settings)
    names = [f"sb-{index:03d}" for index in range(OBJECTS)]
    for name in names:
        await objects.create("sandboxes", testing.custom_body("sandbox", name))
    watcher = WatcherProcess(settings, log_file=tmp_path / "watcher.log")
    churn = testing.Churn(objects, names[20:])
    async with testing.hint_log(nc.jetstream(), settings.nats) as log:
        try:
            watcher.start()
            await watcher.wait_ready()
            churn.start()
            await churn.wait_changes(300)
            watcher.kill()
            killed_at = churn.changes

            # While it is dead: more changes, deletions and creations.
            for name in names[:20]:
                await objects.delete("sandboxes", name)
            born = [f"new-{index}" for index in range(10)]
            for name in born:
                await objects.create("sandboxes", testing.custom_body("sandbox", name))
            await churn.wait_changes(killed_at + 200)

            watcher.start()
            await watcher.wait_ready()
            restarted_at = churn.changes
            await churn.wait_changes(restarted_at + 300)
        finally:
            await churn.stop()
        try:
            latest = await testing.current_versions(objects)
            assert set(latest) == set(names[20:]) | set(born)

            def missing() -> list[str]:
                announced = {
                    (r.event.name, r.event.resource_version)
                    for r in log.received
                    if r.event.kind == "sandbox" and r.event.namespace == objects.namespace
                }
                deleted = {
                    r.event.name
                    for r in log.received
                    if r.event.kind == "sandbox" and r.event.event_type == "DELETED"
                }
                return [
                    name for name, version in latest.items() if (name, version) not in announced
                ] + [name for name in names[:20] if name not in deleted]

            def nothing_missing() -> bool:
                left = missing()
                assert not left, f"{len(left)} not announced, e.g. {left[:5]}"
                return True

            await eventually.eventually(
                nothing_missing,
                timeout_seconds=60,
                describe="every latest state and every deletion announced",
            )
        finally:
            watcher.stop()
    assert not log.undecodable
