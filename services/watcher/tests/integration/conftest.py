"""Fixtures for the watcher's integration tests: a NATS connection, objects, a running watcher.

The platform (kube-apiserver + kwok, nats-server) comes from ``lss_dev``'s pytest plugin; every
test gets its own namespace and its own subject prefix and streams on the shared NATS server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import nats.aio.client
import pytest
from kubernetes_asyncio import client

from lss_dev import identities
from lss_dev import platform as platform_module
from lss_watcher import settings as settings_module
from lss_watcher import testing


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[nats.aio.client.Client]:
    connection = await nats.connect(nats_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def make_settings(
    platform: platform_module.Platform, nats_url: str
) -> Callable[..., settings_module.WatcherSettings]:
    """Isolated watcher settings against the session platform (options as keywords); the
    watcher runs as its own ServiceAccount with the RBAC of deploy/rbac."""
    kubeconfig = identities.kubeconfigs(platform.control_plane)["watcher"]

    def make(**options: Any) -> settings_module.WatcherSettings:
        return testing.isolated_settings(kubeconfig=kubeconfig, nats_url=nats_url, **options)

    return make


@pytest.fixture
async def cleanup_streams(
    nc: nats.aio.client.Client,
) -> AsyncIterator[Callable[[settings_module.WatcherSettings], None]]:
    """Register settings whose streams are deleted after the test (the server is shared)."""
    registered: list[settings_module.WatcherSettings] = []
    yield registered.append
    js = nc.jetstream()
    for settings in registered:
        for stream in (settings.nats.events_stream, settings.nats.status_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)


@pytest.fixture
def objects(kube_api: client.ApiClient, namespace: str) -> testing.Objects:
    return testing.Objects(kube_api, namespace)
