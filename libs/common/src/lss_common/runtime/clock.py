"""An injectable clock: wall time (UTC), monotonic time and sleeping, with a fake for tests.

Code that decides by time takes a ``Clock`` (or a ``now`` value computed from one) instead of
calling ``datetime.now()``/``time.monotonic()``/``asyncio.sleep()`` itself, so tests can move
time explicitly. This module must not schedule anything on its own: ``FakeClock`` only wakes
sleepers when a test calls ``advance``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """What time-dependent code needs from a clock."""

    def now(self) -> datetime.datetime:
        """Wall time, timezone-aware UTC (for timestamps written to objects and logs)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for durations and deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(tz=datetime.UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


@dataclasses.dataclass(order=True)
class _Sleeper:
    deadline: float
    seq: int
    future: asyncio.Future[None] = dataclasses.field(compare=False)


class FakeClock:
    """A clock that moves only when told to; ``sleep`` returns once ``advance`` passes its end.

    Wall time and monotonic time move together. The start values are arbitrary but fixed so
    that test output is reproducible.
    """

    def __init__(
        self,
        start: datetime.datetime | None = None,
        *,
        monotonic_start: float = 1000.0,
    ) -> None:
        start = start or datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._wall_start = start.astimezone(datetime.UTC)
        self._monotonic_start = monotonic_start
        self._elapsed = 0.0
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()

    def now(self) -> datetime.datetime:
        return self._wall_start + datetime.timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._monotonic_start + self._elapsed

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (lets a test wait until code under test is parked)."""
        return sum(1 for s in self._sleepers if not s.future.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            # Still yield, as asyncio.sleep(0) does, so loops that sleep 0 stay cooperative.
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._sleepers,
            _Sleeper(deadline=self.monotonic() + seconds, seq=next(self._seq), future=future),
        )
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has been reached."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._elapsed += seconds
        now = self.monotonic()
        while self._sleepers and self._sleepers[0].deadline <= now:
            sleeper = heapq.heappop(self._sleepers)
            if not sleeper.future.done():
                sleeper.future.set_result(None)
