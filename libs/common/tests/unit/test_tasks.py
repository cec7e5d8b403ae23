"""TaskSupervisor and timers. Matrix: a guarded task that raises / returns / is cancelled by
someone else → logged, counted, failure recorded (first one wins); deliberate cancel and
shutdown → silent; spawning while stopping → refused. Timers: run on the fake clock's
schedule, survive a failing or timed-out run, and the Timer component starts and stops."""

from __future__ import annotations

import asyncio
import logging

import prometheus_client
import pytest

from lss_common.observability import metrics
from lss_common.runtime import clock, tasks
from lss_common.testing import eventually


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


@pytest.fixture
def runtime_metrics(registry: prometheus_client.CollectorRegistry) -> metrics.RuntimeMetrics:
    return metrics.RuntimeMetrics.register(registry)


def exits(registry: prometheus_client.CollectorRegistry, task: str, exit_reason: str) -> float:
    value = registry.get_sample_value(
        "llmsafespace_runtime_task_exits_total", {"task": task, "exit": exit_reason}
    )
    return value or 0.0


def timer_failures(registry: prometheus_client.CollectorRegistry, task: str) -> float:
    value = registry.get_sample_value("llmsafespace_runtime_timer_failures_total", {"task": task})
    return value or 0.0


async def test_task_that_raises_is_logged_counted_and_escalated(
    registry: prometheus_client.CollectorRegistry,
    runtime_metrics: metrics.RuntimeMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = tasks.TaskSupervisor(metrics=runtime_metrics)

    async def broken() -> None:
        raise RuntimeError("consumer died")

    with caplog.at_level(logging.ERROR, logger="lss_common.runtime.tasks"):
        supervisor.spawn(broken(), name="consumer")
        failure = await asyncio.wait_for(supervisor.wait_failure(), timeout=5)
    assert "consumer" in failure
    assert supervisor.failure == failure
    assert exits(registry, "consumer", "error") == 1
    [record] = [r for r in caplog.records if r.getMessage() == "background task ended unexpectedly"]
    assert record.exc_info is not None
    assert supervisor.running == 0


async def test_task_that_returns_is_an_unexpected_exit(
    registry: prometheus_client.CollectorRegistry, runtime_metrics: metrics.RuntimeMetrics
) -> None:
    supervisor = tasks.TaskSupervisor(metrics=runtime_metrics)

    async def quits() -> None:
        return None

    supervisor.spawn(quits(), name="loop")
    await asyncio.wait_for(supervisor.wait_failure(), timeout=5)
    assert exits(registry, "loop", "returned") == 1


async def test_foreign_cancel_is_an_unexpected_exit_and_first_failure_wins(
    registry: prometheus_client.CollectorRegistry, runtime_metrics: metrics.RuntimeMetrics
) -> None:
    supervisor = tasks.TaskSupervisor(metrics=runtime_metrics)
    forever = asyncio.Event()
    task = supervisor.spawn(forever.wait(), name="watch")
    task.cancel()
    failure = await asyncio.wait_for(supervisor.wait_failure(), timeout=5)
    assert "watch" in failure
    assert exits(registry, "watch", "cancelled") == 1

    async def broken() -> None:
        raise RuntimeError("second")

    supervisor.spawn(broken(), name="other")
    await eventually.eventually(
        lambda: exits(registry, "other", "error") == 1, timeout_seconds=5, describe="counted"
    )
    assert supervisor.failure == failure


async def test_deliberate_cancel_and_shutdown_are_silent(
    registry: prometheus_client.CollectorRegistry, runtime_metrics: metrics.RuntimeMetrics
) -> None:
    supervisor = tasks.TaskSupervisor(metrics=runtime_metrics)
    first = supervisor.spawn(asyncio.Event().wait(), name="a")
    supervisor.spawn(asyncio.Event().wait(), name="b")
    await supervisor.cancel(first)
    assert supervisor.running == 1
    await supervisor.stop(timeout_seconds=5)
    assert supervisor.running == 0
    assert supervisor.failure is None
    assert (
        registry.get_sample_value(
            "llmsafespace_runtime_task_exits_total", {"task": "a", "exit": "cancelled"}
        )
        is None
    )


async def test_spawn_after_stop_is_refused(runtime_metrics: metrics.RuntimeMetrics) -> None:
    supervisor = tasks.TaskSupervisor(metrics=runtime_metrics)
    await supervisor.stop(timeout_seconds=1)

    async def work() -> None:
        return None

    with pytest.raises(RuntimeError, match="stopping"):
        supervisor.spawn(work(), name="late")


async def test_stop_reports_tasks_that_ignore_cancellation(
    runtime_metrics: metrics.RuntimeMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = tasks.TaskSupervisor(metrics=runtime_metrics)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # deliberately misbehaving: swallows cancellation

    supervisor.spawn(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="lss_common.runtime.tasks"):
        await supervisor.stop(timeout_seconds=0.05)
    assert any(r.getMessage() == "background task did not stop in time" for r in caplog.records)
    release.set()
    await eventually.eventually(
        lambda: supervisor.running == 0, timeout_seconds=5, describe="released"
    )


async def test_timer_runs_on_schedule_and_survives_failures(
    registry: prometheus_client.CollectorRegistry, runtime_metrics: metrics.RuntimeMetrics
) -> None:
    fake = clock.FakeClock()
    supervisor = tasks.TaskSupervisor(metrics=runtime_metrics)
    runs: list[float] = []

    async def resync() -> None:
        runs.append(fake.monotonic())
        if len(runs) == 2:
            raise RuntimeError("apiserver hiccup")

    supervisor.spawn_timer(resync, name="resync", interval_seconds=30, clock=fake)
    await eventually.eventually(
        lambda: fake.sleepers == 1, timeout_seconds=5, describe="timer parked"
    )
    assert runs == []
    for expected_runs in (1, 2, 3):
        fake.advance(30)
        await eventually.eventually(
            lambda n=expected_runs: len(runs) == n and fake.sleepers == 1,
            timeout_seconds=5,
            describe=f"run {expected_runs} done and timer parked again",
        )
    assert runs == [1030.0, 1060.0, 1090.0]
    assert timer_failures(registry, "resync") == 1
    assert supervisor.failure is None
    await supervisor.stop(timeout_seconds=5)


async def test_timer_run_timeout_counts_as_failure(
    registry: prometheus_client.CollectorRegistry, runtime_metrics: metrics.RuntimeMetrics
) -> None:
    fake = clock.FakeClock()
    calls = 0

    async def hangs() -> None:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()

    task = asyncio.create_task(
        tasks.run_timer(
            hangs,
            name="hang",
            interval_seconds=10,
            clock=fake,
            metrics=runtime_metrics,
            run_immediately=True,
            run_timeout_seconds=0.01,
        )
    )
    await eventually.eventually(
        lambda: timer_failures(registry, "hang") == 1 and fake.sleepers == 1,
        timeout_seconds=5,
        describe="run timed out and timer parked",
    )
    assert calls == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_timer_rejects_non_positive_interval(
    runtime_metrics: metrics.RuntimeMetrics,
) -> None:
    async def run() -> None:
        return None

    with pytest.raises(ValueError, match="positive"):
        await tasks.run_timer(
            run, name="x", interval_seconds=0, clock=clock.FakeClock(), metrics=runtime_metrics
        )


async def test_timer_component_starts_and_stops(runtime_metrics: metrics.RuntimeMetrics) -> None:
    fake = clock.FakeClock()
    supervisor = tasks.TaskSupervisor(metrics=runtime_metrics)
    ran = asyncio.Event()

    async def run() -> None:
        ran.set()

    timer = tasks.Timer(
        run, name="resync", interval_seconds=5, tasks=supervisor, clock=fake, run_immediately=True
    )
    assert timer.name == "resync"
    assert not await timer.is_ready()
    await timer.start()
    await asyncio.wait_for(ran.wait(), timeout=5)
    assert await timer.is_ready()
    await timer.stop()
    assert not await timer.is_ready()
    assert supervisor.running == 0
    assert supervisor.failure is None
