"""The local platform is a real cluster: real admission, RBAC, scheduling, controllers.

Matrix: nodes Ready · a restricted pod is scheduled, Running and Ready with an IP · PodSecurity
rejects a non-compliant pod · RBAC denies an unprivileged identity · the service-account
controller populates new namespaces · the garbage collector deletes dependents · exec into a
kwok pod runs the local command · ``up`` again is a no-op · the CLI reports status.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import socket
import subprocess
import sys

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from lss_common.testing import eventually
from lss_dev import controlplane, processes
from lss_dev import platform as platform_mod

pytestmark = pytest.mark.integration


def restricted_pod(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            automount_service_account_token=False,
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=1000,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[
                client.V1Container(
                    name="sandbox",
                    image="registry.example/python:3.11",
                    security_context=client.V1SecurityContext(
                        allow_privilege_escalation=False,
                        capabilities=client.V1Capabilities(drop=["ALL"]),
                    ),
                )
            ],
        ),
    )


async def test_nodes_are_ready(platform: platform_mod.Platform) -> None:
    assert platform.control_plane.ready_nodes() == platform.nodes


async def test_pod_is_scheduled_running_and_ready(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, restricted_pod("p1"))

    async def ready() -> client.V1Pod | None:
        pod = await core.read_namespaced_pod("p1", namespace)
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        if pod.status.phase == "Running" and conditions.get("Ready") == "True":
            return pod
        return None

    pod = await eventually.eventually(ready, timeout_seconds=30, describe="pod p1 Ready")
    assert pod.spec.node_name.startswith("kwok-node-")
    assert pod.status.pod_ip


async def test_pod_security_rejects_privileged_pod(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="bad"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x")]),
    )
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_pod(namespace, pod)
    assert info.value.status == 403
    assert "PodSecurity" in info.value.body


async def test_rbac_denies_unprivileged_identity(
    platform: platform_mod.Platform, namespace: str
) -> None:
    out = platform.control_plane.kubectl(
        "auth",
        "can-i",
        "list",
        "pods",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:default",
        check=False,
    )
    assert out.strip() == "no"


async def test_new_namespace_gets_default_service_account(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)

    async def has_default() -> bool:
        accounts = await core.list_namespaced_service_account(namespace)
        return any(sa.metadata.name == "default" for sa in accounts.items)

    assert await eventually.eventually(has_default, timeout_seconds=30, describe="default SA")


async def test_garbage_collector_deletes_dependents(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    owner = await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    await core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref])),
    )
    await core.delete_namespaced_config_map("owner", namespace)

    async def gone() -> bool:
        try:
            await core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    assert await eventually.eventually(gone, timeout_seconds=60, describe="dependent deleted")


async def test_exec_into_kwok_pod_runs_local_command(
    platform: platform_mod.Platform, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, restricted_pod("p2"))

    async def running() -> bool:
        pod = await core.read_namespaced_pod("p2", namespace)
        return pod.status.phase == "Running"

    await eventually.eventually(running, timeout_seconds=30, describe="pod p2 Running")
    out = await asyncio.to_thread(
        platform.control_plane.kubectl, "-n", namespace, "exec", "p2", "--", "echo", "hello-exec"
    )
    assert out.strip() == "hello-exec"


def test_up_again_is_a_noop(platform: platform_mod.Platform) -> None:
    before = platform.status()["processes"]
    platform.up()
    assert platform.status()["processes"] == before


def test_cli_status_reports_running_platform(platform: platform_mod.Platform) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lss_dev.cli",
            "dev",
            "--state-dir",
            str(platform.state_dir),
            "status",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert state["nats_url"] == platform.nats_url
    assert state["ready_nodes"] == platform.nodes
    assert all(state["processes"].values())


def test_component_restart_after_kill(platform: platform_mod.Platform) -> None:
    """A killed component is detected as not running and `up` brings it back."""
    processes.kill("kube-scheduler", state_dir=platform.state_dir)
    assert platform.control_plane.running()["kube-scheduler"] is None
    platform.up()
    assert platform.control_plane.running()["kube-scheduler"] is not None


def _waiting_reason(pod: client.V1Pod) -> str | None:
    statuses = pod.status.container_statuses or []
    if statuses and statuses[0].state and statuses[0].state.waiting:
        reason: str | None = statuses[0].state.waiting.reason
        return reason
    return None


def _is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


FATES = {
    "image-pull-backoff": lambda pod: (
        pod.status.phase == "Pending" and _waiting_reason(pod) == "ImagePullBackOff"
    ),
    "crash-loop": lambda pod: (
        pod.status.phase == "Running"
        and _waiting_reason(pod) == "CrashLoopBackOff"
        and pod.status.container_statuses[0].restart_count == 3
        and not _is_ready(pod)
    ),
    "never-ready": lambda pod: (
        pod.status.phase == "Running"
        and pod.status.container_statuses[0].state.running is not None
        and bool(pod.status.pod_ip)
        and not _is_ready(pod)
    ),
    "fail": lambda pod: (
        pod.status.phase == "Failed"
        and pod.status.container_statuses[0].state.terminated.exit_code == 1
    ),
}


def test_every_fate_image_has_a_check() -> None:
    assert set(FATES) == set(controlplane.FATE_IMAGES)


@pytest.mark.parametrize("fate", sorted(FATES))
async def test_fate_images_give_pods_their_fate(
    kube_api: client.ApiClient, namespace: str, fate: str
) -> None:
    core = client.CoreV1Api(kube_api)
    pod = restricted_pod("fated")
    pod.spec.containers[0].image = controlplane.FATE_IMAGES[fate]
    await core.create_namespaced_pod(namespace, pod)

    async def has_fate() -> client.V1Pod | None:
        observed = await core.read_namespaced_pod("fated", namespace)
        return observed if FATES[fate](observed) else None

    observed = await eventually.eventually(has_fate, timeout_seconds=30, describe=f"fate {fate}")
    assert not _is_ready(observed)


@pytest.mark.parametrize("component", ["kwok", "nats-server"])
def test_a_port_taken_before_start_up_is_replaced(tmp_path: pathlib.Path, component: str) -> None:
    """Ports are chosen free and bound later: another process can take one in between.
    ``up`` gives that component new ports and starts it again."""
    state = tmp_path / "platform"
    state.mkdir()
    names = ("etcd", "etcd_peer", "apiserver", "kwok", "nats", "nats_monitor")
    ports = {name: controlplane.free_port() for name in names}
    taken = "kwok" if component == "kwok" else "nats"
    moved = {"kwok": ("kwok",), "nats": ("nats", "nats_monitor")}[taken]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        ports[taken] = squatter.getsockname()[1]
        (state / "ports.json").write_text(json.dumps(ports))
        plat = platform_mod.Platform(state, nodes=1)
        try:
            plat.up()
            now = json.loads((state / "ports.json").read_text())
            assert now[taken] != ports[taken]
            assert {k: v for k, v in now.items() if k not in moved and k in names} == {
                k: v for k, v in ports.items() if k not in moved
            }
            ready = plat.control_plane.kubectl(
                "get",
                "nodes",
                "-o",
                'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}',
            )
            assert ready.split() == ["True"]
            assert plat.status()["nats_reachable"] is True
        finally:
            plat.down()
