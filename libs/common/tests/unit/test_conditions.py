"""Conditions: lastTransitionTime moves only on a status change; reason/message/generation
updates keep it; new conditions are appended, others untouched; inputs are never mutated;
invalid type/status/reason are refused; long messages are cut to the server's byte limit.
Hypothesis: any sequence of set_condition calls keeps one condition per type, and the
transition time equals the time of the last status change."""

from __future__ import annotations

import copy
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.logic import conditions
from lss_common.models import meta

T0 = datetime.datetime(2025, 3, 1, 10, 0, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def ready(status: str, *, reason: str = "PodReady", at: datetime.datetime = T0) -> meta.Condition:
    return meta.Condition(
        type="Ready",
        status=status,
        reason=reason,
        message="m",
        last_transition_time=meta.format_timestamp(at),
    )


def test_new_condition_is_appended_with_now() -> None:
    existing = [ready("True")]
    result = conditions.set_condition(
        existing,
        condition_type="NetworkReady",
        status="False",
        reason="PolicyPending",
        message="waiting",
        now=T1,
        observed_generation=3,
    )
    assert result[0] == existing[0]
    assert result[1] == meta.Condition(
        type="NetworkReady",
        status="False",
        reason="PolicyPending",
        message="waiting",
        last_transition_time="2025-03-01T10:05:00Z",
        observed_generation=3,
    )


def test_same_status_keeps_transition_time_but_updates_the_rest() -> None:
    result = conditions.set_condition(
        [ready("True")],
        condition_type="Ready",
        status="True",
        reason="StillReady",
        message="new text",
        now=T1,
        observed_generation=7,
    )
    assert result == [
        meta.Condition(
            type="Ready",
            status="True",
            reason="StillReady",
            message="new text",
            last_transition_time="2025-03-01T10:00:00Z",
            observed_generation=7,
        )
    ]


def test_status_change_moves_transition_time() -> None:
    [updated] = conditions.set_condition(
        [ready("True")],
        condition_type="Ready",
        status="False",
        reason="PodNotReady",
        message="probe failed",
        now=T1,
    )
    assert updated.status == "False"
    assert updated.last_transition_time == "2025-03-01T10:05:00Z"


def test_identical_set_returns_an_equal_list() -> None:
    existing = [ready("True")]
    again = conditions.set_condition(
        existing, condition_type="Ready", status="True", reason="PodReady", message="m", now=T1
    )
    assert again == existing


def test_input_is_not_mutated() -> None:
    existing = [ready("True"), ready("False", reason="Other")]
    snapshot = copy.deepcopy(existing)
    conditions.set_condition(
        existing, condition_type="Ready", status="False", reason="X", message="y", now=T1
    )
    conditions.remove_condition(existing, condition_type="Ready")
    assert existing == snapshot


def test_find_is_true_and_remove() -> None:
    items = [ready("True")]
    assert conditions.find_condition(items, condition_type="Ready") == items[0]
    assert conditions.find_condition(None, condition_type="Ready") is None
    assert conditions.is_condition_true(items, condition_type="Ready")
    assert not conditions.is_condition_true([ready("Unknown")], condition_type="Ready")
    assert not conditions.is_condition_true(items, condition_type="Missing")
    assert conditions.remove_condition(items, condition_type="Ready") == []


@pytest.mark.parametrize(
    ("condition_type", "status", "reason", "match"),
    [
        ("Ready", "Yes", "PodReady", "status"),
        ("Ready", "True", "has space", "reason"),
        ("Ready", "True", "", "reason"),
        ("Ready", "True", "Trailing,", "reason"),
        ("bad type!", "True", "PodReady", "type"),
    ],
)
def test_invalid_fields_are_refused(
    condition_type: str, status: str, reason: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        conditions.set_condition(
            [], condition_type=condition_type, status=status, reason=reason, message="", now=T0
        )


def test_naive_now_and_negative_generation_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        conditions.set_condition(
            [],
            condition_type="Ready",
            status="True",
            reason="R",
            message="",
            now=datetime.datetime(2025, 1, 1),  # naive on purpose
        )
    with pytest.raises(ValueError, match="negative"):
        conditions.set_condition(
            [],
            condition_type="Ready",
            status="True",
            reason="R",
            message="",
            now=T0,
            observed_generation=-1,
        )


def test_domain_prefixed_type_is_accepted() -> None:
    [condition] = conditions.set_condition(
        [],
        condition_type="llmsafespace.dev/Recycled",
        status="True",
        reason="R",
        message="",
        now=T0,
    )
    assert condition.type == "llmsafespace.dev/Recycled"


def test_long_message_is_cut_to_the_byte_limit() -> None:
    message = "é" * 20000  # 40000 bytes in UTF-8
    [condition] = conditions.set_condition(
        [], condition_type="Ready", status="False", reason="R", message=message, now=T0
    )
    assert condition.message is not None
    assert len(condition.message.encode()) <= 32768
    assert condition.message.endswith("\u2026")
    assert conditions.truncate_message("short") == "short"


_types = st.sampled_from(["Ready", "PodScheduled", "NetworkReady"])
_statuses = st.sampled_from(["True", "False", "Unknown"])
_steps = st.lists(st.tuples(_types, _statuses, st.integers(0, 3600)), max_size=30)


@given(steps=_steps)
def test_transition_time_is_the_last_status_change(
    steps: list[tuple[str, str, int]],
) -> None:
    state: list[meta.Condition] = []
    expected_change: dict[str, tuple[str, datetime.datetime]] = {}
    now = T0
    for condition_type, status, seconds in steps:
        now = now + datetime.timedelta(seconds=seconds)
        state = conditions.set_condition(
            state, condition_type=condition_type, status=status, reason="R", message="", now=now
        )
        previous = expected_change.get(condition_type)
        if previous is None or previous[0] != status:
            expected_change[condition_type] = (status, now)
    assert len({c.type for c in state}) == len(state)
    for condition in state:
        status, changed_at = expected_change[condition.type]
        assert condition.status == status
        assert condition.last_transition_time == meta.format_timestamp(changed_at)
