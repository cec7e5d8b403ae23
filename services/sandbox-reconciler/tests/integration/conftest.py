"""Fixtures for the reconciler's integration tests (helpers live in ``reconciler_harness``).

The platform (kube-apiserver + kwok, nats-server) comes from ``lss_dev``'s pytest plugin.
``private_*`` fixtures run on a second platform of this test run, for the few tests that
watch every namespace or install a cluster-wide object (see ``private_platform``).
``fake_dns`` answers egress domains under ``.lss.test`` (see ``reconciler_harness.FakeDns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import labels
from lss_common.observability import metrics
from lss_dev import fixtures_kube
from lss_dev import platform as platform_module

# --import-mode=importlib gives test modules no package: the helpers are found by path.
sys.path.insert(0, str(Path(__file__).parent))

import reconciler_harness as harness


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
    found = harness.World(platform=platform, nats_url=nats_url, namespace=namespace)
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


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> harness.FakeDns:
    """Egress domains under ``.lss.test`` resolve to what the test says (this test only)."""
    loop = asyncio.get_running_loop()
    fake = harness.FakeDns(loop.getaddrinfo)
    monkeypatch.setattr(loop, "getaddrinfo", fake.getaddrinfo)
    return fake


# -- a platform of its own ------------------------------------------------------------------


@pytest.fixture(scope="session")
def private_platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[platform_module.Platform]:
    """A second platform, started only when a test asks for it (≈ 5 s).

    For tests that must watch *every* namespace (namespace-per-sandbox isolation puts the
    children in namespaces of their own) or install a cluster-wide object (Cilium's CRD). On
    the shared ``platform`` such a watcher would hint this test's reconciler about every
    other test's sandboxes, and a CRD would switch every reconciler in ``auto`` egress mode to
    Cilium — and with ``LSS_TEST_PLATFORM_STATE`` the shared platform is a developer's running
    one. Tests on this platform still leave the cluster-wide state as they found it (their
    sandboxes deleted, their CRDs removed), so their order does not matter.
    """
    state = Path(tmp_path_factory.mktemp("private", numbered=True))
    plat = platform_module.Platform(state, nodes=1)
    try:
        plat.up()
        yield plat
    finally:
        plat.down()
        shutil.rmtree(state / "etcd", ignore_errors=True)


@pytest.fixture(scope="session")
async def private_kube_api(
    private_platform: platform_module.Platform,
) -> AsyncIterator[k8s_client.ApiClient]:
    configuration = k8s_client.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(private_platform.kubeconfig), client_configuration=configuration
    )
    api = k8s_client.ApiClient(configuration)
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
def private_kube(private_kube_api: k8s_client.ApiClient) -> client.Kube:
    return client.Kube(
        api=private_kube_api,
        request_timeout_seconds=10.0,
        metrics=metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
    )


@pytest.fixture
async def private_namespace(private_kube: client.Kube) -> AsyncIterator[str]:
    """A namespace enforcing Pod Security ``restricted`` on the private platform; deleted
    afterwards with every isolation namespace its sandboxes left behind."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await objects.create_object(
        private_kube,
        resource=objects.NAMESPACE,
        body={"metadata": {"name": name, "labels": fixtures_kube.PSS_LABELS}},
    )
    try:
        yield name
    finally:
        leftovers = await objects.list_objects(
            private_kube,
            resource=objects.NAMESPACE,
            label_selector=f"{labels.SANDBOX_NAMESPACE}={name}",
        )
        for found in (name, *(item["metadata"]["name"] for item in leftovers.items)):
            with contextlib.suppress(errors.NotFoundError):
                await objects.delete_object(private_kube, resource=objects.NAMESPACE, name=found)


@pytest.fixture
async def private_cluster(
    private_kube: client.Kube, private_namespace: str
) -> AsyncIterator[harness.Cluster]:
    found = harness.Cluster(
        private_kube, namespace=private_namespace, language=f"lang{uuid.uuid4().hex[:8]}"
    )
    try:
        yield found
    finally:
        await found.cleanup()


@pytest.fixture
async def private_world(
    private_platform: platform_module.Platform, private_cluster: harness.Cluster
) -> AsyncIterator[harness.World]:
    """Watcher and reconciler(s) on the private platform; the watcher sees every namespace
    and looks for an optional resource it is not served (Cilium's) every second.

    Before they stop, the test's sandboxes are deleted (and awaited, briefly): a sandbox left
    with its finalizer would otherwise wake the next test's reconciler on this platform.
    """
    found = harness.World(
        platform=private_platform,
        nats_url=private_platform.nats_url,
        namespace=private_cluster.namespace,
        watcher_options={"namespace": None, "optional_recheck_seconds": 1.0},
    )
    try:
        yield found
    finally:
        try:
            if found.reconcilers:
                await private_cluster.delete_every_sandbox(timeout_seconds=30)
        finally:
            await found.stop()
