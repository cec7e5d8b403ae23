"""No over-creation: two pool managers racing on every hint of one pool create exactly
minSize WarmPods between them; a pool manager killed with SIGKILL in the middle of a
rate-paced scale-up that maxSize cuts short is restarted and the pool converges to exactly
maxSize, never more."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

import pytest

from lss_common.kube import client
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.testing import eventually
from lss_pool_manager import names

from .conftest import (
    Stack,
    by_phase,
    claim,
    create_pool,
    environment,
    get_pool,
    pods,
    wait_consumer,
    warm_pods,
)

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
    """minSize 6, maxSize 8, three WarmPods claimed early: the pool wants 6 unassigned beside
    the 3 assigned, 9 in all, so it must stop at maxSize (8) — and not at minSize, which it
    passes. The pool manager is killed mid-scale-up; no count ever seen exceeds 8."""
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
    most = 0
    watching = True

    async def watch_the_count() -> None:
        nonlocal most
        while watching:
            items = await warm_pods(kube, namespace=namespace)
            most = max(most, len(items))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_the_count())
    try:
        # The consumer must exist before the watcher publishes (interest retention).
        await wait_consumer(stack, settings.pool.consumer_name)
        await stack.start_watcher()
        await create_pool(
            kube, namespace=namespace, name="py", runtime=runtime_name, minSize=6, maxSize=8
        )

        async def three_ready() -> list[warmpod_model.WarmPod] | None:
            ready = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
            return ready[:3] if len(ready) >= 3 else None

        claimed = await eventually.eventually(
            three_ready, timeout_seconds=60, describe="three Ready WarmPods"
        )
        for warm_pod in claimed:
            await claim(kube, warm_pod, sandbox_uid=str(uuid.uuid4()))

        async def partly() -> bool:
            count = len(await warm_pods(kube, namespace=namespace))
            return 4 <= count < 8

        await eventually.eventually(partly, timeout_seconds=60, describe="scale-up under way")
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
        assert len(await warm_pods(kube, namespace=namespace)) < 8, "killed before the end"
        # Restart (same durable consumer): the unacked hints are redelivered.
        await stack.start_manager_with(settings)

        async def converged() -> bool:
            items = await warm_pods(kube, namespace=namespace)
            return (len(by_phase(items, "Ready")), len(by_phase(items, "Assigned"))) == (5, 3)

        await eventually.eventually(
            converged, timeout_seconds=90, describe="5 Ready beside 3 Assigned after restart"
        )

        # Capped: the pool says so, and stays at 8 (a pass that would over-create had time).
        async def capped() -> bool:
            status = warmpool_model.status_of(await get_pool(kube, namespace=namespace, name="py"))
            return any(c.reason == "MaxSizeReached" for c in status.conditions or ())

        await eventually.eventually(capped, timeout_seconds=30, describe="MaxSizeReached")
    finally:
        watching = False
        await watcher
        if process.returncode is None:
            process.kill()
            await process.wait()
    items = await warm_pods(kube, namespace=namespace)
    assert len(items) == 8
    assert sorted(wp.metadata.name for wp in items) == sorted(
        names.warm_pod_name("py", slot=i) for i in range(8)
    )
    # At most maxSize ever (the poll may miss the last one landing: the end state has 8).
    assert most <= 8, f"{most} WarmPods seen at once (maxSize 8)"
    found = await pods(kube, namespace=namespace)
    pods_found = [p for p in found if not p["metadata"].get("deletionTimestamp")]
    assert len(pods_found) == 8, "one pod per WarmPod, none twice"
