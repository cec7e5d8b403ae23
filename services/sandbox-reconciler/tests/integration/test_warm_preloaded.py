"""A sandbox claiming from a pool with preload scripts, against the real apiserver + kwok
(whose exec runs on this host, in the platform's exec directory: the script only creates a
file of the test's own there), nats-server, watcher, pool manager and reconciler: the sandbox
starts warm on a WarmPod whose scripts ran (``Preloaded=True``) before it was Ready, and the
claimed pod is that WarmPod's pod."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from reconciler_harness import Cluster, World
from test_warm_claim import PoolManager, create_pool, wait_ready_warm_pods

from lss_common.kube import objects
from lss_dev import platform as platform_module

pytestmark = pytest.mark.integration


@pytest.fixture
def marker_dir(platform: platform_module.Platform) -> Iterator[Path]:
    found = platform.state_dir / "exec" / f"preloaded-{uuid.uuid4().hex}"
    found.mkdir(parents=True)
    try:
        yield found
    finally:
        shutil.rmtree(found, ignore_errors=True)


async def test_sandbox_from_a_preloaded_pool_gets_a_pod_whose_scripts_ran(
    world: World, cluster: Cluster, marker_dir: Path
) -> None:
    await cluster.create_runtime()
    await world.start_reconciler()
    manager = PoolManager(world)
    await manager.start()
    try:
        await world.start_watcher()
        await create_pool(
            cluster,
            "pre",
            minSize=1,
            preloadScripts=[
                {
                    "name": "warm-cache",
                    "language": "shell",
                    # one new file per run: the count of files is the count of preloads
                    "content": f"mktemp {marker_dir.name}/run.XXXXXX",
                }
            ],
        )
        await wait_ready_warm_pods(cluster, 1)
        await cluster.create_sandbox("w")
        running = await cluster.wait_phase("w", "Running", timeout_seconds=90)
    finally:
        await manager.stop()
    ref = running["status"]["warmPodRef"]
    warm_pod = await objects.get_object(
        cluster.kube, resource=objects.WARM_POD, namespace=cluster.namespace, name=ref["name"]
    )
    assert warm_pod["status"]["assignedTo"] == running["metadata"]["uid"]
    assert running["status"]["podName"] == warm_pod["status"]["podName"]
    preloaded = next(c for c in warm_pod["status"]["conditions"] if c["type"] == "Preloaded")
    assert (preloaded["status"], preloaded["reason"]) == ("True", "Succeeded")
    assert "warm-cache" in preloaded["message"]
    runs = await asyncio.to_thread(lambda: list(marker_dir.iterdir()))
    assert runs, "the script ran in the claimed WarmPod's pod before it was Ready"
