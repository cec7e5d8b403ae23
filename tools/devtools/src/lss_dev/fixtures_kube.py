"""pytest fixtures for the real local platform: one per test run, one namespace per test.

``platform`` starts a private platform in a temporary state dir (kube-apiserver + kwok and
nats-server, CRDs installed) and stops it at the end of the run. Set
``LSS_TEST_PLATFORM_STATE`` to the state dir of a running ``llmsafespace dev up`` to reuse
that one instead (it is left running).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from kubernetes_asyncio import client, config

from lss_common.kube import client as kube_client
from lss_common.observability import metrics as shared_metrics
from lss_dev import platform as platform_mod

__all__ = ["kube", "kube_api", "namespace", "platform"]

#: A tenant namespace as a platform team sets one up: Pod Security ``restricted`` enforced,
#: and enabled for sandboxes (the controllers write only there: deploy/rbac/scope.yaml).
PSS_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "llmsafespace.dev/sandboxes": "enabled",
}


def restricted_pod_body(
    name: str,
    *,
    container: str = "c",
    image: str = "probe:1",
    service_account: str | None = None,
) -> dict[str, Any]:
    """A minimal pod admissible under Pod Security ``restricted``, without a token (a probe
    or an exec target of a test's own)."""
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": container,
                "image": image,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[platform_mod.Platform]:
    reuse = os.environ.get("LSS_TEST_PLATFORM_STATE")
    if reuse:
        plat = platform_mod.Platform(Path(reuse))
        plat.up()
        yield plat
        return
    # Short path: unix socket paths (etcd, nats) are limited to ~100 bytes.
    state = Path(tmp_path_factory.mktemp("platform", numbered=True))
    plat = platform_mod.Platform(state)
    try:
        plat.up()
        yield plat
    finally:
        plat.down()
        shutil.rmtree(state / "etcd", ignore_errors=True)


@pytest.fixture(scope="session")
async def kube_api(platform: platform_mod.Platform) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(platform.kubeconfig), client_configuration=configuration
    )
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
def kube(kube_api: client.ApiClient) -> kube_client.Kube:
    """The product's Kubernetes access (``lss_common.kube``) as the platform's administrator,
    with metrics of its own."""
    return kube_client.Kube(
        api=kube_api,
        request_timeout_seconds=10.0,
        metrics=shared_metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
    )


@pytest.fixture
async def namespace(kube_api: client.ApiClient) -> AsyncIterator[str]:
    """A fresh namespace enforcing Pod Security ``restricted``; deleted after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    await core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=PSS_LABELS))
    )
    try:
        yield name
    finally:
        await core.delete_namespace(name)
