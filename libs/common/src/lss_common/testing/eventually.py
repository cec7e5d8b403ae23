"""Wait for a condition in tests: poll a predicate until it returns something truthy.

The timeout is a failure deadline, not a timing assertion: on expiry the error names what
was awaited and shows the last value (or exception) the predicate produced.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")


class EventuallyTimeout(AssertionError):
    """The awaited condition did not hold before the deadline."""


async def eventually(
    predicate: Callable[[], Awaitable[T] | T],
    *,
    timeout_seconds: float,
    describe: str,
    interval_seconds: float = 0.05,
) -> T:
    """Return the first truthy result of ``predicate``; raise EventuallyTimeout otherwise.

    Exceptions raised by the predicate count as "not yet" and are reported on timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    last: object = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return cast(T, value)
            last = value
        except AssertionError as exc:
            last = exc
        except Exception as exc:
            last = exc
        if loop.time() >= deadline:
            raise EventuallyTimeout(
                f"not true after {timeout_seconds}s: {describe}; last observed: {last!r}"
            )
        await asyncio.sleep(interval_seconds)


async def reaches(
    read: Callable[[], T],
    expected: T,
    *,
    describe: str,
    timeout_seconds: float = 10.0,
) -> None:
    """Until ``read()`` equals ``expected``; on expiry the error shows the last value read.

    For a service's own counters: one moves once the write it counts has returned, and the
    API server (or a watch) can show that write a moment before.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while True:
        value = read()
        if value == expected:
            return
        if loop.time() >= deadline:
            raise EventuallyTimeout(
                f"not reached after {timeout_seconds}s: {describe} == {expected!r}; "
                f"last read: {value!r}"
            )
        await asyncio.sleep(0.02)
