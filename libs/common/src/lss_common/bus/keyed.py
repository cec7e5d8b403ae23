"""Per-key serial execution: jobs with the same key run one after another, in submission order;
jobs with different keys run in parallel, at most ``concurrency`` at a time.

One short-lived worker task per busy key (it exits when its queue is empty, so idle keys cost
nothing), owned by the executor and cancelled by :meth:`KeyedExecutor.aclose`. Pure asyncio:
no NATS, no clocks. Jobs are expected to handle their own errors; one that raises anyway is
logged and does not stop its key's queue.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Hashable

_log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class KeyedExecutor:
    """Serial per key, parallel across keys, bounded overall. Use as an async context manager
    (or call :meth:`aclose`) so that no worker outlives its owner."""

    def __init__(self, *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {concurrency}")
        self._slots = asyncio.Semaphore(concurrency)
        self._queues: dict[Hashable, collections.deque[Job]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet finished (queued or running)."""
        return self._pending

    def submit(self, key: Hashable, job: Job) -> None:
        """Queue ``job`` behind any earlier job with the same ``key``; never blocks."""
        if self._closed:
            raise RuntimeError("submit on a closed KeyedExecutor")
        self._pending += 1
        self._idle.clear()
        queue = self._queues.setdefault(key, collections.deque())
        queue.append(job)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(
                self._work(key, queue), name=f"keyed-worker:{key}"
            )

    async def join(self) -> None:
        """Wait until every submitted job has finished."""
        await self._idle.wait()

    async def aclose(self) -> None:
        """Cancel running jobs, drop queued ones, and wait for the workers to end."""
        self._closed = True
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._queues.clear()
        self._workers.clear()
        self._pending = 0
        self._idle.set()

    async def __aenter__(self) -> KeyedExecutor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _work(self, key: Hashable, queue: collections.deque[Job]) -> None:
        try:
            while queue:
                job = queue[0]
                try:
                    async with self._slots:
                        await job()
                except Exception:
                    _log.exception("keyed job failed", extra={"key": str(key)})
                finally:
                    queue.popleft()
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()
        finally:
            # Removing the key only here keeps "one worker per key" true: submit() sees the
            # worker until its queue is drained and then starts a new one.
            if self._workers.get(key) is asyncio.current_task():
                del self._workers[key]
                self._queues.pop(key, None)
