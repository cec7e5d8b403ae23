"""No over-creation: two pool managers racing on every hint of one pool create exactly
minSize WarmPods between them; a pool manager killed with SIGKILL in the middle of a
rate-paced scale-up is restarted and the pool converges to exactly maxSize."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import nats
import pytest

from lss_common.kube import client
from lss_common.testing import eventually
from lss_pool_manager import names

from .conftest import Stack, by_phase, create_pool, environment, pods, warm_pods

pytestmark = pytest.mark.integration


async def test_two_replicas_each_seeing_every_hint_do_not_over_create(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    # Different durable consumers: both replicas handle every hint (worse than sharing one
    # durable, where each hint goes to one replica).
    first = await stack.start_manager(consumer_name="pm-a")
    second = await stack.start_manager(consumer_name="pm-b")
    await stack.start_watcher()
    await create_pool(kube, namespace=namespace, name="py", runtime=runtime_name, minSize=10)

    async def filled() -> bool:
        items = await warm_pods(kube, namespace=namespace)
        return len(by_phase(items, "Ready")) == 10

    await eventually.eventually(filled, timeout_seconds=90, describe="10 Ready WarmPods")
    items = await warm_pods(kube, namespace=namespace)
    assert sorted(wp.metadata.name for wp in items) == sorted(
        names.warm_pod_name("py", slot=i) for i in range(10)
    )
    created = sum(m.sample("llmsafespace_warmpool_pods_created_total") for m in (first, second))
    assert created == 10, "a create that lost the race is AlreadyExists, never a second pod"


async def test_kill_9_during_scale_up_then_converges_without_over_creation(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    settings = stack.settings(create_rate_per_second=2.0, create_burst=1)
    env = {**os.environ, **environment(settings)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lss_pool_manager",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # The consumer must exist before the watcher publishes (interest retention).
        await _wait_consumer(stack, settings.pool.consumer_name)
        await stack.start_watcher()
        await create_pool(
            kube, namespace=namespace, name="py", runtime=runtime_name, minSize=8, maxSize=8
        )

        async def partly() -> bool:
            count = len(await warm_pods(kube, namespace=namespace))
            return 2 <= count < 8

        await eventually.eventually(partly, timeout_seconds=60, describe="scale-up under way")
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # Restart (same durable consumer): the unacked hints are redelivered.
    await stack.start_manager_with(settings)

    async def converged() -> bool:
        items = await warm_pods(kube, namespace=namespace)
        return len(by_phase(items, "Ready")) == 8

    await eventually.eventually(converged, timeout_seconds=90, describe="8 Ready after restart")
    items = await warm_pods(kube, namespace=namespace)
    assert sorted(wp.metadata.name for wp in items) == sorted(
        names.warm_pod_name("py", slot=i) for i in range(8)
    )
    found = await pods(kube, namespace=namespace)
    pods_found = [p for p in found if not p["metadata"].get("deletionTimestamp")]
    assert len(pods_found) == 8, "one pod per WarmPod, none twice"


async def _wait_consumer(stack: Stack, durable: str) -> None:
    settings = stack.watcher_settings.nats
    nc = await nats.connect(settings.url)
    try:
        js = nc.jetstream()

        async def declared() -> bool:
            try:
                await js.consumer_info(settings.events_stream, durable)
            except Exception:
                return False
            return True

        await eventually.eventually(
            declared, timeout_seconds=60, describe="the subprocess declared its consumer"
        )
    finally:
        await nc.close()
