"""The watcher works with exactly its least-privilege RBAC (deploy/rbac/watcher.yaml).

It runs with a token of the ``llmsafespace-watcher`` service account (no admin credentials):
it lists and watches every resource, reports ready (its readiness check reads the API
server's /readyz, open to every authenticated client), and announces changes. The optional
CiliumNetworkPolicy resource, not installed here, does not keep it from being ready.
"""

from __future__ import annotations

from collections.abc import Callable

import nats.aio.client
import pytest

from lss_dev import identities
from lss_dev import platform as platform_module
from lss_watcher import settings as settings_module
from lss_watcher import testing

pytestmark = pytest.mark.integration


async def test_watcher_runs_with_its_own_rbac(
    platform: platform_module.Platform,
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    # All namespaces, as deployed, as the watcher's ServiceAccount (make_settings' default;
    # asserted here so that this test keeps proving it).
    settings = make_settings()
    assert settings.kube.kubeconfig == identities.kubeconfigs(platform.control_plane)["watcher"]
    cleanup_streams(settings)
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings) as running,
    ):
        created = await objects.create("sandboxes", testing.custom_body("sandbox", "rbac"))
        await log.wait_for(
            lambda r: (
                r.key == ("sandbox", objects.namespace, "rbac")
                and r.event.resource_version == created["metadata"]["resourceVersion"]
            ),
            describe="a hint from the least-privilege watcher",
        )
        assert (
            running.sample(
                "llmsafespace_watcher_watch_restarts_total", kind="sandbox", reason="error"
            )
            == 0
        )
