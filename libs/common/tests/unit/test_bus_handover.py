"""``bus.handover.plan``: when a requested re-check stays on its message, is shortened to the
message's life, or is handed over to a copy; and reading the copy's header."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lss_common.bus import handover

DAY = 86_400.0


def plan(
    *,
    delay: float,
    age: float,
    num_delivered: int = 2,
    max_age: float | None = DAY,
    max_deliver: int = -1,
) -> handover.Plan:
    return handover.plan(
        delay_seconds=delay,
        age_seconds=age,
        num_delivered=num_delivered,
        max_age_seconds=max_age,
        max_deliver=max_deliver,
        ack_wait_seconds=30.0,
    )


def test_a_re_check_well_within_the_messages_life_stays_on_it() -> None:
    assert plan(delay=300, age=3600) == handover.Plan(300)


def test_a_re_check_due_after_the_messages_end_is_handed_over() -> None:
    # A WarmPod's heartbeat holder, 23 h 55 min old: its next re-check would come after the
    # stream's 24 h max age (less the 10 min margin).
    assert plan(delay=60, age=DAY - 300) == handover.Plan(60, hand_over=True)
    assert plan(delay=60, age=DAY - 601) == handover.Plan(60, hand_over=True)
    assert plan(delay=60, age=DAY - 661) == handover.Plan(60)


def test_a_delay_beyond_any_messages_life_is_shortened_not_handed_over() -> None:
    # A young message asked to wait longer than the stream keeps anything: a copy would be
    # asked the same at once. It waits for the rest of its life; its pass then asks again.
    assert plan(delay=2 * DAY, age=100) == handover.Plan(DAY - 600 - 100)


def test_without_a_max_age_nothing_is_handed_over() -> None:
    assert plan(delay=10 * DAY, age=5 * DAY, max_age=None) == handover.Plan(10 * DAY)
    assert plan(delay=10 * DAY, age=5 * DAY, max_age=0) == handover.Plan(10 * DAY)


def test_the_last_delivery_but_one_is_handed_over() -> None:
    assert plan(delay=5, age=10, num_delivered=9, max_deliver=10).hand_over
    assert not plan(delay=5, age=10, num_delivered=8, max_deliver=10).hand_over
    # Below 3 a copy would be handed over on each of its passes: left to max_deliver.
    assert not plan(delay=5, age=10, num_delivered=1, max_deliver=2).hand_over


def test_the_margin_is_at_most_a_quarter_of_the_max_age() -> None:
    assert handover.margin_seconds(max_age_seconds=DAY, ack_wait_seconds=30) == 600
    assert handover.margin_seconds(max_age_seconds=DAY, ack_wait_seconds=900) == 1800
    assert handover.margin_seconds(max_age_seconds=8, ack_wait_seconds=30) == 2


@given(
    delay=st.floats(min_value=0, max_value=3 * DAY),
    age=st.floats(min_value=0, max_value=2 * DAY),
    max_age=st.floats(min_value=1, max_value=7 * DAY),
)
def test_a_kept_re_check_always_comes_before_the_messages_end(
    delay: float, age: float, max_age: float
) -> None:
    result = plan(delay=delay, age=age, max_age=max_age)
    margin = handover.margin_seconds(max_age_seconds=max_age, ack_wait_seconds=30.0)
    if result.hand_over:
        # Only an old message is handed over; never one a copy would repeat at once.
        assert age >= max_age / 2
        copy = plan(delay=delay, age=0.0, num_delivered=1, max_age=max_age)
        assert not copy.hand_over
    else:
        assert result.delay_seconds <= delay
        # (to a float's rounding: life left is computed as max_age - margin - age)
        assert age + result.delay_seconds <= max(age, max_age - margin) + 1e-6


def test_reading_the_copys_header() -> None:
    assert handover.handed_over_from({handover.HEADER: "42"}) == 42
    assert handover.handed_over_from({"Nats-Msg-Id": "x"}) is None
    assert handover.handed_over_from(None) is None
    assert handover.handed_over_from({handover.HEADER: "not a number"}) is None
    assert handover.handed_over_from({handover.HEADER: "0"}) is None
    assert handover.copy_msg_id(stream="LSS_EVENTS", stream_seq=7) == "handover/LSS_EVENTS/7"
