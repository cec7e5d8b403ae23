"""Owned background tasks: every one is guarded, and periodic timers run through the same guard.

A task started here is expected to run until shutdown. If it ends early (it raised, returned,
or something else cancelled it) the supervisor logs it, counts it and records the failure;
``Service`` watches ``wait_failure()`` and stops the process with a non-zero exit, so a
half-dead service restarts instead of idling with a dead consumer loop. A periodic timer is
different: one failed run is logged and counted, and the timer carries on.

This module must not know what the tasks do, and must not swallow ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from lss_common.observability import metrics as metrics_module
from lss_common.runtime import clock as clock_module

logger = logging.getLogger(__name__)


class TaskSupervisor:
    """Starts guarded tasks, notices unexpected exits, and cancels them all on shutdown."""

    def __init__(self, *, metrics: metrics_module.RuntimeMetrics) -> None:
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancelling: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._failure: str | None = None
        self._failed = asyncio.Event()

    @property
    def failure(self) -> str | None:
        """A description of the first unexpected exit, or ``None`` while all is well."""
        return self._failure

    @property
    def running(self) -> int:
        """How many guarded tasks are still running."""
        return len(self._tasks)

    async def wait_failure(self) -> str:
        """Return once a guarded task has ended unexpectedly; the description of the first."""
        await self._failed.wait()
        assert self._failure is not None  # set together with the event
        return self._failure

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a guarded task; ``name`` labels its logs and metrics (fixed in code)."""
        if self._stopping:
            coro.close()
            raise RuntimeError(f"task supervisor is stopping; not starting {name!r}")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._on_done)
        return task

    def spawn_timer(
        self,
        run: Callable[[], Awaitable[None]],
        *,
        name: str,
        interval_seconds: float,
        clock: clock_module.Clock,
        run_immediately: bool = False,
        run_timeout_seconds: float | None = None,
    ) -> asyncio.Task[None]:
        """Start a guarded periodic timer (see ``run_timer``)."""
        return self.spawn(
            run_timer(
                run,
                name=name,
                interval_seconds=interval_seconds,
                clock=clock,
                metrics=self._metrics,
                run_immediately=run_immediately,
                run_timeout_seconds=run_timeout_seconds,
            ),
            name=name,
        )

    async def cancel(self, task: asyncio.Task[None]) -> None:
        """Cancel one guarded task on purpose (not an unexpected exit) and wait for it."""
        self._cancelling.add(task)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        name = task.get_name()
        error = None if task.cancelled() else task.exception()
        if task in self._cancelling:
            self._cancelling.discard(task)
            if error is not None:
                logger.warning(
                    "background task failed while cancelled", extra={"task": name}, exc_info=error
                )
            return
        if self._stopping:
            if error is not None:
                # Winding down: an error now is worth a log line, not an alarm.
                logger.warning(
                    "background task failed during shutdown", extra={"task": name}, exc_info=error
                )
            return
        if task.cancelled():
            exit_reason = metrics_module.TaskExit.CANCELLED
        elif error is not None:
            exit_reason = metrics_module.TaskExit.ERROR
        else:
            exit_reason = metrics_module.TaskExit.RETURNED
        self._metrics.task_exits_total.labels(task=name, exit=exit_reason).inc()
        logger.error(
            "background task ended unexpectedly",
            extra={"task": name, "exit": str(exit_reason)},
            exc_info=error,
        )
        if self._failure is None:
            self._failure = f"background task {name!r} ended unexpectedly ({exit_reason})"
            self._failed.set()

    def begin_stop(self) -> None:
        """From now on task exits are expected (shutdown has begun); nothing is cancelled yet."""
        self._stopping = True

    async def stop(self, *, timeout_seconds: float) -> None:
        """Cancel every task and wait up to ``timeout_seconds`` for them to finish.

        Tasks still running at the deadline are logged by name and abandoned: the process is
        about to exit, and waiting longer would only overrun the pod's grace period.
        """
        self._stopping = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(timeout_seconds, 0.0))
        for task in pending:
            logger.error("background task did not stop in time", extra={"task": task.get_name()})


class Timer:
    """A periodic timer as a service component, so it starts and stops in the service's order.

    Put it last in the component list: it is then stopped first, before the connections its
    runs use are closed.
    """

    def __init__(
        self,
        run: Callable[[], Awaitable[None]],
        *,
        name: str,
        interval_seconds: float,
        tasks: TaskSupervisor,
        clock: clock_module.Clock,
        run_immediately: bool = False,
        run_timeout_seconds: float | None = None,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"timer {name!r}: interval_seconds must be positive")
        self._run = run
        self._name = name
        self._interval_seconds = interval_seconds
        self._tasks = tasks
        self._clock = clock
        self._run_immediately = run_immediately
        self._run_timeout_seconds = run_timeout_seconds
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        self._task = self._tasks.spawn_timer(
            self._run,
            name=self._name,
            interval_seconds=self._interval_seconds,
            clock=self._clock,
            run_immediately=self._run_immediately,
            run_timeout_seconds=self._run_timeout_seconds,
        )

    async def stop(self) -> None:
        if self._task is not None:
            await self._tasks.cancel(self._task)
            self._task = None

    async def is_ready(self) -> bool:
        return self._task is not None and not self._task.done()


async def run_timer(
    run: Callable[[], Awaitable[None]],
    *,
    name: str,
    interval_seconds: float,
    clock: clock_module.Clock,
    metrics: metrics_module.RuntimeMetrics,
    run_immediately: bool = False,
    run_timeout_seconds: float | None = None,
) -> None:
    """Call ``run()`` forever, ``interval_seconds`` after the end of the previous run.

    Measuring the pause from the end of a run means runs never overlap and a slow run delays
    the next instead of piling up. A run that raises, or exceeds ``run_timeout_seconds``, is
    logged and counted in ``timer_failures_total``; the timer keeps going. Cancellation ends
    the timer.
    """
    if interval_seconds <= 0:
        raise ValueError(f"timer {name!r}: interval_seconds must be positive")
    if not run_immediately:
        await clock.sleep(interval_seconds)
    while True:
        deadline = asyncio.timeout(run_timeout_seconds)
        try:
            async with deadline:
                await run()
        except Exception as error:
            metrics.timer_failures_total.labels(task=name).inc()
            if isinstance(error, TimeoutError) and deadline.expired():
                logger.warning(
                    "timer run timed out",
                    extra={"task": name, "timeout_seconds": run_timeout_seconds},
                )
            else:
                logger.warning("timer run failed", extra={"task": name}, exc_info=True)
        await clock.sleep(interval_seconds)
