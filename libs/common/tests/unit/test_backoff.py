"""Nak delays for the n-th delivery (pure): index by delivery count, last value repeats."""

from __future__ import annotations

import pytest
from hypothesis import given
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


def test_failure_counts_count_consecutive_failures_per_message() -> None:
    counts = backoff.FailureCounts()
    assert [counts.failed(7) for _ in range(3)] == [1, 2, 3]
    assert counts.failed(8) == 1
    counts.settled(7)  # handled (or a requested re-check): the next failure is a first one
    assert counts.failed(7) == 1
    counts.settled(99)  # never failed: nothing to forget
    assert len(counts) == 2


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=200))
def test_failure_counts_stay_within_their_capacity(sequences: list[int]) -> None:
    counts = backoff.FailureCounts(capacity=8)
    for seq in sequences:
        assert counts.failed(seq) >= 1
        assert len(counts) <= 8
    if sequences:
        # The newest failure is always remembered.
        last = sequences[-1]
        assert counts.failed(last) >= 2
