"""kube.podexec against the real kube-apiserver and kwok's exec (which runs the command on
this host, in the platform's exec directory: harmless commands only). Matrix: output and
exit code of a success; a non-zero exit is a failure with its message and stderr; argv
elements reach the program verbatim (shell metacharacters are not interpreted on our side
or the API server's); a command past its deadline is abandoned as timed out; a missing pod
is NotFoundError."""

from __future__ import annotations

from collections.abc import AsyncIterator

import prometheus_client
import pytest
from kubernetes_asyncio import client as k8s_client

from lss_common import errors
from lss_common.kube import client, objects, podexec
from lss_common.observability import metrics
from lss_common.testing import eventually
from lss_dev import fixtures_kube

pytestmark = pytest.mark.integration


@pytest.fixture
def kube(kube_api: k8s_client.ApiClient) -> client.Kube:
    return client.Kube(
        api=kube_api,
        request_timeout_seconds=10.0,
        metrics=metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
    )


@pytest.fixture
async def running_pod(kube: client.Kube, namespace: str) -> str:
    await objects.create_object(
        kube,
        resource=objects.POD,
        namespace=namespace,
        body=fixtures_kube.restricted_pod_body(
            "target", container="sandbox", image="registry.example/python:3.11"
        ),
    )

    async def running() -> bool:
        pod = await objects.get_object(
            kube, resource=objects.POD, namespace=namespace, name="target"
        )
        return (pod.get("status") or {}).get("phase") == "Running"

    await eventually.eventually(running, timeout_seconds=30, describe="pod target Running")
    return "target"


@pytest.fixture
async def executor(kube: client.Kube) -> AsyncIterator[podexec.PodExecutor]:
    found = podexec.PodExecutor(lambda: kube)
    try:
        yield found
    finally:
        await found.stop()


async def test_success_with_output(
    executor: podexec.PodExecutor, namespace: str, running_pod: str
) -> None:
    result = await executor.run(
        namespace=namespace,
        pod=running_pod,
        container="sandbox",
        argv=["/bin/sh", "-c", "echo out; echo err >&2"],
        timeout_seconds=20,
    )
    assert result.succeeded
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"out\n", b"err\n")


async def test_non_zero_exit_is_a_failure_with_message(
    executor: podexec.PodExecutor, namespace: str, running_pod: str
) -> None:
    result = await executor.run(
        namespace=namespace,
        pod=running_pod,
        container="sandbox",
        argv=["/bin/sh", "-c", "echo broken >&2; exit 3"],
        timeout_seconds=20,
    )
    assert not result.succeeded
    assert result.exit_code != 0
    assert result.stderr == b"broken\n"
    # kwok reports the code in the message only; a kubelet in details (exit_code == 3)
    assert result.exit_code == 3 or "exit status 3" in (result.message or "")


async def test_argv_elements_are_not_interpreted_by_a_shell(
    executor: podexec.PodExecutor, namespace: str, running_pod: str
) -> None:
    hostile = "$(echo pwned); `echo pwned` && echo pwned | cat; 'q' \"dq\" \\ * ? ~ # \n end"
    result = await executor.run(
        namespace=namespace,
        pod=running_pod,
        container="sandbox",
        argv=["printf", "%s", hostile],
        timeout_seconds=20,
    )
    assert result.succeeded
    assert result.stdout.decode() == hostile


async def test_deadline_abandons_the_command(
    executor: podexec.PodExecutor, namespace: str, running_pod: str
) -> None:
    result = await executor.run(
        namespace=namespace,
        pod=running_pod,
        container="sandbox",
        argv=["sleep", "30"],
        timeout_seconds=1,
    )
    assert result.timed_out
    assert not result.succeeded


async def test_missing_pod_is_not_found(executor: podexec.PodExecutor, namespace: str) -> None:
    with pytest.raises(errors.NotFoundError):
        await executor.run(
            namespace=namespace,
            pod="absent",
            container="sandbox",
            argv=["true"],
            timeout_seconds=10,
        )
