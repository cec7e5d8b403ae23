"""Refill batching: which WarmPod-woken pool passes wait, and which are covered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lss_pool_manager import batching

KEY = "warmpool/team-a/py/-"
FULL = batching.Supply(available=10, wanted=10)


def batcher(window: float = 0.25) -> batching.RefillBatcher:
    found = batching.RefillBatcher(window_seconds=window)
    found.record(KEY, FULL)
    return found


def test_a_pool_with_spare_supply_defers_the_first_wake_up_and_covers_the_rest() -> None:
    b = batcher()
    assert b.decide(KEY, now=100.0, first_delivery=True) == batching.Decision(
        batching.Verdict.DEFER, after_seconds=0.25
    )
    assert b.decide(KEY, now=100.1, first_delivery=True) is batching.COVERED
    assert b.decide(KEY, now=100.2, first_delivery=True) is batching.COVERED


def test_the_deferred_hint_coming_back_runs_the_pass_and_opens_a_new_window() -> None:
    b = batcher()
    b.decide(KEY, now=100.0, first_delivery=True)
    assert b.decide(KEY, now=100.25, first_delivery=False) is batching.RUN
    # After the batched pass, the next claim opens a window of its own.
    assert b.decide(KEY, now=100.3, first_delivery=True).verdict is batching.Verdict.DEFER


def test_a_window_whose_hint_went_elsewhere_runs_the_next_wake_up() -> None:
    b = batcher()
    b.decide(KEY, now=100.0, first_delivery=True)
    # The deferred message was redelivered to another replica: past the deadline, this
    # replica stops covering and runs.
    assert b.decide(KEY, now=100.3, first_delivery=True) is batching.RUN


def test_an_unsized_pool_runs_at_once() -> None:
    b = batching.RefillBatcher(window_seconds=0.25)
    assert b.decide(KEY, now=1.0, first_delivery=True) is batching.RUN


def test_a_pool_running_dry_runs_at_once() -> None:
    b = batcher()
    b.record(KEY, batching.Supply(available=4, wanted=10))
    assert b.decide(KEY, now=1.0, first_delivery=True) is batching.RUN
    b.record(KEY, batching.Supply(available=0, wanted=0))
    assert b.decide(KEY, now=1.0, first_delivery=True) is batching.RUN


def test_window_zero_disables_batching() -> None:
    b = batcher(window=0.0)
    assert b.decide(KEY, now=1.0, first_delivery=True) is batching.RUN


def test_a_forgotten_pool_is_unsized_again() -> None:
    b = batcher()
    b.decide(KEY, now=1.0, first_delivery=True)
    b.forget(KEY)
    assert b.decide(KEY, now=1.1, first_delivery=True) is batching.RUN


@given(available=st.integers(0, 1000), wanted=st.integers(0, 1000))
def test_spare_supply_is_at_least_one_and_half_the_wanted(available: int, wanted: int) -> None:
    spare = batching.has_spare_supply(batching.Supply(available=available, wanted=wanted))
    assert spare == (available >= 1 and available >= wanted / 2)


@given(
    steps=st.lists(
        st.tuples(st.floats(0.0, 1.0), st.booleans()),
        min_size=1,
        max_size=30,
    )
)
def test_never_two_deferred_passes_pending_at_once(steps: list[tuple[float, bool]]) -> None:
    """Within one window at most one hint is deferred; a redelivery always runs."""
    b = batcher()
    now = 0.0
    pending_until: float | None = None
    for gap, first in steps:
        now += gap
        decision = b.decide(KEY, now=now, first_delivery=first)
        if not first:
            assert decision is batching.RUN
            pending_until = None
            continue
        if decision.verdict is batching.Verdict.DEFER:
            assert pending_until is None or now >= pending_until
            pending_until = now + decision.after_seconds
        elif decision is batching.COVERED:
            assert pending_until is not None
            assert now < pending_until
