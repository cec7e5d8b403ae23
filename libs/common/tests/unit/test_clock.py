"""Clock: the system clock is UTC-aware and monotonic; the fake moves only when advanced and
wakes exactly the sleepers whose deadline has passed, in deadline order."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from lss_common.runtime import clock
from lss_common.testing import eventually


def test_system_clock_is_utc_and_monotonic() -> None:
    system = clock.SystemClock()
    assert system.now().tzinfo is datetime.UTC
    first = system.monotonic()
    assert system.monotonic() >= first


async def test_system_clock_sleep_accepts_negative() -> None:
    await clock.SystemClock().sleep(-1.0)


def test_fake_clock_moves_only_when_advanced() -> None:
    start = datetime.datetime(2030, 5, 1, 12, 0, tzinfo=datetime.UTC)
    fake = clock.FakeClock(start, monotonic_start=50.0)
    assert fake.now() == start
    assert fake.monotonic() == 50.0
    fake.advance(2.5)
    assert fake.now() == start + datetime.timedelta(seconds=2.5)
    assert fake.monotonic() == 52.5


def test_fake_clock_rejects_naive_start_and_going_back() -> None:
    with pytest.raises(ValueError, match="timezone"):
        clock.FakeClock(datetime.datetime(2030, 1, 1))  # naive on purpose
    with pytest.raises(ValueError, match="forward"):
        clock.FakeClock().advance(-1)


async def test_fake_sleep_wakes_in_deadline_order() -> None:
    fake = clock.FakeClock()
    woke: list[str] = []

    async def sleeper(label: str, seconds: float) -> None:
        await fake.sleep(seconds)
        woke.append(label)

    tasks = [
        asyncio.create_task(sleeper("late", 10)),
        asyncio.create_task(sleeper("early", 1)),
        asyncio.create_task(sleeper("middle", 5)),
    ]
    await eventually.eventually(
        lambda: fake.sleepers == 3, timeout_seconds=5, describe="3 sleepers parked"
    )
    fake.advance(0.5)
    await asyncio.sleep(0)
    assert woke == []
    fake.advance(5)
    await eventually.eventually(
        lambda: len(woke) == 2, timeout_seconds=5, describe="two sleepers woke"
    )
    assert woke == ["early", "middle"]
    assert fake.sleepers == 1
    fake.advance(100)
    await asyncio.gather(*tasks)
    assert woke == ["early", "middle", "late"]


async def test_fake_sleep_of_zero_returns_without_advance() -> None:
    fake = clock.FakeClock()
    await fake.sleep(0)
    assert fake.sleepers == 0
