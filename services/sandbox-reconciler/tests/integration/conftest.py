"""Fixtures for the reconciler's integration tests (helpers live in ``reconciler_harness``).

The platform (kube-apiserver + kwok, nats-server) comes from ``lss_dev``'s pytest plugin.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from kubernetes_asyncio import client as k8s_client

from lss_common.kube import client
from lss_common.observability import metrics
from lss_dev import platform as platform_module

# --import-mode=importlib gives test modules no package: the helpers are found by path.
sys.path.insert(0, str(Path(__file__).parent))

import reconciler_harness as harness


@pytest.fixture
def kube(kube_api: k8s_client.ApiClient) -> client.Kube:
    return client.Kube(
        api=kube_api,
        request_timeout_seconds=10.0,
        metrics=metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
    )


@pytest.fixture
async def cluster(kube: client.Kube, namespace: str) -> AsyncIterator[harness.Cluster]:
    language = f"lang{uuid.uuid4().hex[:8]}"
    found = harness.Cluster(kube, namespace=namespace, language=language)
    try:
        yield found
    finally:
        await found.cleanup()


@pytest.fixture
async def world(
    platform: platform_module.Platform, nats_url: str, namespace: str
) -> AsyncIterator[harness.World]:
    found = harness.World(
        kubeconfig=str(platform.kubeconfig), nats_url=nats_url, namespace=namespace
    )
    try:
        yield found
    finally:
        await found.stop()


@pytest.fixture
def running(world: harness.World) -> Callable[..., Awaitable[harness.World]]:
    """``await running(**sandbox_options)``: one reconciler, then the watcher."""

    async def start(**sandbox_options: Any) -> harness.World:
        await world.start_reconciler(**sandbox_options)
        await world.start_watcher()
        return world

    return start
