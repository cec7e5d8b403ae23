"""Nak delays for the n-th delivery (pure): index by delivery count, last value repeats."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lss_common.logic import backoff

DELAYS = (0.2, 0.5, 1.0, 5.0)


@pytest.mark.parametrize(
    ("num_delivered", "expected"),
    [(-3, 0.2), (0, 0.2), (1, 0.2), (2, 0.5), (3, 1.0), (4, 5.0), (5, 5.0), (10_000, 5.0)],
)
def test_delay_for_delivery(num_delivered: int, expected: float) -> None:
    assert backoff.delay_for_delivery(num_delivered, delays_seconds=DELAYS) == expected


def test_empty_schedule_retries_at_once() -> None:
    assert backoff.delay_for_delivery(3, delays_seconds=()) == 0.0


@given(st.integers(), st.lists(st.floats(min_value=0, max_value=1e6), min_size=1))
def test_delay_is_always_from_the_schedule(num_delivered: int, delays: list[float]) -> None:
    assert backoff.delay_for_delivery(num_delivered, delays_seconds=delays) in delays


@given(st.integers(min_value=1, max_value=100))
def test_non_decreasing_for_a_sorted_schedule(num_delivered: int) -> None:
    assert backoff.delay_for_delivery(
        num_delivered + 1, delays_seconds=DELAYS
    ) >= backoff.delay_for_delivery(num_delivered, delays_seconds=DELAYS)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_failure_counts_count_consecutive_failures_per_message() -> None:
    counts = backoff.FailureCounts(ttl_seconds=60.0, clock=_Clock())
    assert [counts.failed(7) for _ in range(3)] == [1, 2, 3]
    assert counts.failed(8) == 1
    counts.settled(7)  # handled (or a requested re-check): the next failure is a first one
    assert counts.failed(7) == 1
    counts.settled(99)  # never failed: nothing to forget
    assert len(counts) == 2


def test_failure_counts_are_forgotten_a_ttl_after_the_last_failure() -> None:
    clock = _Clock()
    counts = backoff.FailureCounts(ttl_seconds=60.0, clock=clock)
    counts.failed(1)
    clock.now = 30.0
    counts.failed(2)
    assert counts.failed(1) == 2  # back within the TTL: counted on
    clock.now = 89.0
    assert counts.failed(3) == 1
    assert len(counts) == 3  # 1 failed last at 30, 2 at 30: both younger than 60 s
    clock.now = 91.0
    assert counts.failed(1) == 1  # 61 s after its last failure: forgotten
    assert len(counts) == 2  # 2 expired too; 3 and 1 remain


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=5_000, max_value=20_000))
def test_many_failing_messages_keep_their_counts(failing: int) -> None:
    """More failing messages than any fixed cap: each comes back within the TTL and keeps
    its count (a count cap forgot each before it came back: the shortest delay for ever)."""
    clock = _Clock()
    counts = backoff.FailureCounts(ttl_seconds=70.0, clock=clock)
    for round_number in range(1, 4):
        for seq in range(failing):
            clock.now += 30.0 / failing  # each round takes 30 s
            assert counts.failed(seq) == round_number


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=200))
def test_failure_counts_stay_within_their_bound(sequences: list[int]) -> None:
    counts = backoff.FailureCounts(ttl_seconds=3600.0, max_entries=8, clock=_Clock())
    for seq in sequences:
        assert counts.failed(seq) >= 1
        assert len(counts) <= 8
    if sequences:
        # The newest failure is always remembered.
        assert counts.failed(sequences[-1]) >= 2
