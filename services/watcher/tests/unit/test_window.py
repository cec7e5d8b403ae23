"""publishing.Window: bounded in-flight jobs shared across windows, drain, close (pure asyncio,
no NATS: the jobs are plain coroutines)."""

from __future__ import annotations

import asyncio

from lss_watcher import publishing


async def test_submit_waits_for_a_free_slot_and_drain_waits_for_all() -> None:
    slots = asyncio.Semaphore(2)
    first, second = publishing.Window(slots, name="a"), publishing.Window(slots, name="b")
    gates = [asyncio.Event() for _ in range(3)]
    done: list[int] = []

    async def job(index: int) -> None:
        await gates[index].wait()
        done.append(index)

    await first.submit(job(0))
    await second.submit(job(1))
    third = asyncio.create_task(first.submit(job(2)))
    await asyncio.sleep(0)
    assert not third.done()  # both slots are taken, across the two windows
    gates[1].set()
    await third  # the second window's job finished and freed its slot
    assert first.in_flight == 2
    draining = asyncio.create_task(first.drain())
    await asyncio.sleep(0)
    assert not draining.done()
    gates[0].set()
    gates[2].set()
    await draining
    assert sorted(done) == [0, 1, 2]
    assert first.in_flight == second.in_flight == 0


async def test_close_cancels_and_frees_slots() -> None:
    slots = asyncio.Semaphore(1)
    window = publishing.Window(slots, name="a")
    await window.submit(asyncio.Event().wait())
    await window.aclose()
    await window.drain()
    assert window.in_flight == 0
    assert not slots.locked()


async def test_a_failing_job_is_logged_not_raised() -> None:
    slots = asyncio.Semaphore(1)
    window = publishing.Window(slots, name="a")

    async def boom() -> None:
        raise RuntimeError("bug")

    await window.submit(boom())
    await window.drain()
    assert not slots.locked()
