"""Which of its own writes' hints the pool manager may acknowledge without a pass."""

from __future__ import annotations

import datetime

import pytest

from lss_common.models import messages
from lss_pool_manager import handler

AT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def event(
    kind: str, event_type: messages.EventType, *, child: messages.EventType | None = None
) -> messages.ChangeEvent:
    return messages.ChangeEvent(
        kind=kind,
        namespace="team-a",
        name="py-0",
        resource_version=None if child else "42",
        event_type=event_type,
        observed_at=AT,
        child=messages.ChildChange(resource="pod", resource_version="42", event_type=child)
        if child
        else None,
    )


@pytest.mark.parametrize(
    ("hint", "skippable"),
    [
        (event("warmpod", "MODIFIED"), True),  # its status write (Ready, heartbeat)
        (event("warmpod", "MODIFIED", child="ADDED"), True),  # the pod it created
        (event("warmpod", "ADDED"), False),  # the WarmPod it created: its pass makes the pod
        (event("warmpool", "MODIFIED"), True),  # the pool's status write
        (event("warmpool", "MODIFIED", child="MODIFIED"), False),  # counted by the pool's pass
    ],
)
def test_may_skip(hint: messages.ChangeEvent, skippable: bool) -> None:
    assert handler.may_skip(hint) is skippable
