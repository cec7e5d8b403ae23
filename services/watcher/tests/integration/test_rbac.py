"""The watcher works with exactly its least-privilege RBAC (deploy/rbac/watcher.yaml).

It runs with a token of the ``llmsafespace-watcher`` service account (no admin credentials):
it lists and watches every resource, reports ready (its readiness check reads the API
server's /readyz, open to every authenticated client), and announces changes. The optional
CiliumNetworkPolicy resource, not installed here, does not keep it from being ready.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nats.aio.client
import pytest

from lss_dev import paths
from lss_dev import platform as platform_module
from lss_watcher import settings as settings_module
from lss_watcher import testing

pytestmark = pytest.mark.integration


def service_account_kubeconfig(platform: platform_module.Platform, path: Path) -> Path:
    control_plane = platform.control_plane
    rbac = paths.repo_root() / "deploy" / "rbac"
    control_plane.kubectl("apply", "--server-side", "-f", str(rbac / "namespace.yaml"))
    control_plane.kubectl("apply", "--server-side", "-f", str(rbac / "watcher.yaml"))
    token = control_plane.kubectl(
        "create", "token", "llmsafespace-watcher", "-n", "llmsafespace-system"
    ).strip()
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": control_plane.server,
                            "certificate-authority": str(control_plane.pki.ca_cert),
                        },
                    }
                ],
                "users": [{"name": "watcher", "user": {"token": token}}],
                "contexts": [
                    {"name": "watcher", "context": {"cluster": "local", "user": "watcher"}}
                ],
                "current-context": "watcher",
            }
        )
    )
    return path


async def test_watcher_runs_with_its_own_rbac(
    tmp_path: Path,
    platform: platform_module.Platform,
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    kubeconfig = service_account_kubeconfig(platform, tmp_path / "watcher.kubeconfig")
    # All namespaces, as deployed.
    settings = make_settings()
    settings = settings.model_copy(
        update={"kube": settings.kube.model_copy(update={"kubeconfig": str(kubeconfig)})}
    )
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
