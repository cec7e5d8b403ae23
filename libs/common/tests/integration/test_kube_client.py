"""kube.client against the real kube-apiserver: an ApiClient from an explicit kubeconfig path
and from $KUBECONFIG reaches the server; KubeConnection starts, reports ready from the
server's /readyz, serves object calls and closes; an unreachable server is not ready."""

from __future__ import annotations

import pathlib

import prometheus_client
import pytest

from lss_common import errors, settings
from lss_common.kube import client, objects
from lss_common.observability import metrics
from lss_dev import platform as platform_module

pytestmark = pytest.mark.integration


def kube_metrics() -> metrics.KubeMetrics:
    return metrics.KubeMetrics.register(prometheus_client.CollectorRegistry())


async def test_explicit_kubeconfig(platform: platform_module.Platform, namespace: str) -> None:
    api = await client.create_api_client(settings.KubeSettings(kubeconfig=str(platform.kubeconfig)))
    try:
        kube = client.Kube(api=api, request_timeout_seconds=10, metrics=kube_metrics())
        found = await objects.get_object(kube, resource=objects.NAMESPACE, name=namespace)
        assert found["metadata"]["name"] == namespace
    finally:
        await api.close()


async def test_kubeconfig_from_environment(
    platform: platform_module.Platform, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", f"{missing}:{platform.kubeconfig}")
    api = await client.create_api_client(settings.KubeSettings())
    try:
        kube = client.Kube(api=api, request_timeout_seconds=10, metrics=kube_metrics())
        assert await client.is_api_server_ready(kube)
    finally:
        await api.close()


async def test_bad_kubeconfig_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(errors.LssError, match="cannot load Kubernetes credentials"):
        await client.create_api_client(settings.KubeSettings(kubeconfig=str(broken)))


async def test_connection_component(platform: platform_module.Platform, namespace: str) -> None:
    connection = client.KubeConnection(
        settings.KubeSettings(kubeconfig=str(platform.kubeconfig)), metrics=kube_metrics()
    )
    assert connection.name == "kube"
    assert not await connection.is_ready()
    with pytest.raises(RuntimeError, match="not started"):
        _ = connection.kube
    await connection.start()
    try:
        assert await connection.is_ready()
        listed = await objects.list_objects(
            connection.kube, resource=objects.SERVICE_ACCOUNT, namespace=namespace
        )
        assert listed.resource_version
    finally:
        await connection.stop()
    assert not await connection.is_ready()


async def test_unreachable_server_is_not_ready(
    platform: platform_module.Platform, tmp_path: pathlib.Path
) -> None:
    # The platform's own credentials, pointed at a port where nothing listens.
    text = platform.kubeconfig.read_text()
    server = next(
        line.split("server:")[1].strip() for line in text.splitlines() if "server:" in line
    )
    moved = tmp_path / "kubeconfig"
    moved.write_text(text.replace(server, "https://127.0.0.1:1"))
    connection = client.KubeConnection(
        settings.KubeSettings(kubeconfig=str(moved), request_timeout_seconds=2),
        metrics=kube_metrics(),
    )
    await connection.start()
    try:
        assert not await connection.is_ready()
        with pytest.raises(errors.RetryableError):
            await objects.get_object(connection.kube, resource=objects.NAMESPACE, name="default")
    finally:
        await connection.stop()
