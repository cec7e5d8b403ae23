"""KeyedExecutor (pure asyncio): serial per key in submission order, parallel across keys,
bounded overall, failures isolated, join and aclose."""

from __future__ import annotations

import asyncio
import collections

import pytest

from lss_common.bus import keyed
from lss_common.testing import eventually


async def test_same_key_runs_serially_in_order() -> None:
    running: collections.Counter[str] = collections.Counter()
    peak = 0
    order: list[int] = []

    def job(index: int) -> keyed.Job:
        async def run() -> None:
            nonlocal peak
            running["k"] += 1
            peak = max(peak, running["k"])
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append(index)
            running["k"] -= 1

        return run

    async with keyed.KeyedExecutor(concurrency=8) as executor:
        for index in range(20):
            executor.submit("k", job(index))
        await executor.join()
    assert peak == 1
    assert order == list(range(20))


async def test_different_keys_run_in_parallel() -> None:
    # Each job waits for all three to have started: only possible when they run at once.
    started = 0
    all_started = asyncio.Event()

    async def job() -> None:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        await all_started.wait()

    async with keyed.KeyedExecutor(concurrency=3) as executor:
        for key in ("a", "b", "c"):
            executor.submit(key, job)
        async with asyncio.timeout(10):
            await executor.join()
    assert started == 3


async def test_concurrency_is_bounded() -> None:
    active = 0
    peak = 0
    gate = asyncio.Event()

    async def job() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1

    async with keyed.KeyedExecutor(concurrency=2) as executor:
        for key in range(6):
            executor.submit(key, job)
        await eventually.eventually(lambda: active == 2, timeout_seconds=10, describe="2 active")
        for _ in range(5):
            await asyncio.sleep(0)
        assert active == 2
        gate.set()
        await executor.join()
    assert peak == 2
    assert executor.pending == 0


async def test_a_failing_job_does_not_stop_its_key(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    async def boom() -> None:
        raise RuntimeError("boom")

    async def ok() -> None:
        done.append("ok")

    async with keyed.KeyedExecutor(concurrency=1) as executor:
        executor.submit("k", boom)
        executor.submit("k", ok)
        await executor.join()
    assert done == ["ok"]
    assert "keyed job failed" in caplog.text


async def test_aclose_cancels_running_and_drops_queued() -> None:
    started = asyncio.Event()
    cancelled = False
    ran_second = False

    async def blocker() -> None:
        nonlocal cancelled
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    async def second() -> None:
        nonlocal ran_second
        ran_second = True

    executor = keyed.KeyedExecutor(concurrency=4)
    executor.submit("k", blocker)
    executor.submit("k", second)
    await started.wait()
    assert executor.pending == 2
    await executor.aclose()
    assert cancelled
    assert not ran_second
    assert executor.pending == 0
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit("k", second)


async def test_idle_keys_leave_no_worker() -> None:
    async def job() -> None:
        await asyncio.sleep(0)

    async with keyed.KeyedExecutor(concurrency=4) as executor:
        for key in range(10):
            executor.submit(key, job)
        await executor.join()
        await asyncio.sleep(0)
        tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("keyed-worker:")]
        assert tasks == []


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        keyed.KeyedExecutor(concurrency=0)
