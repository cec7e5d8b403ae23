"""Which of its own writes' hints the pool manager may acknowledge without a pass."""

from __future__ import annotations

import datetime

import pytest

from lss_common.bus import codec, own_writes
from lss_common.models import messages
from lss_common.testing import bus
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


def test_a_warm_pods_pass_reads_at_the_version_its_hint_announced() -> None:
    """The WarmPod at its own hint's version, the pod at its pod hint's (from the watch
    cache); a consistent read for anything else and for redeliveries or riders."""
    assert handler._versions(event("warmpod", "MODIFIED")) == handler.HintVersions(warm_pod="42")
    assert handler._versions(event("warmpod", "MODIFIED", child="MODIFIED")) == (
        handler.HintVersions(pod="42")
    )
    service = messages.ChangeEvent(
        kind="warmpod",
        namespace="team-a",
        name="py-0",
        event_type="MODIFIED",
        observed_at=AT,
        child=messages.ChildChange(resource="service", resource_version="9", event_type="ADDED"),
    )
    assert handler._versions(service) == handler.HintVersions()
    for num_delivered, riders in ((2, 0), (1, 3)):
        with bus.delivering(num_delivered=num_delivered, riders=riders):
            assert handler._versions(event("warmpod", "MODIFIED")) == handler.HintVersions()


def test_a_warm_pods_service_hints_need_no_pass() -> None:
    def woken_by(resource: str, kind: str = "warmpod") -> messages.ChangeEvent:
        return messages.ChangeEvent(
            kind=kind,
            namespace="team-a",
            name="py-0",
            event_type="MODIFIED",
            observed_at=AT,
            child=messages.ChildChange(resource=resource, resource_version="9", event_type="ADDED"),
        )

    assert handler.is_service_hint(woken_by("service"))
    assert not handler.is_service_hint(woken_by("pod"))  # the pod decides Ready and Failed
    assert not handler.is_service_hint(woken_by("service", kind="warmpool"))
    assert not handler.is_service_hint(event("warmpod", "MODIFIED"))
    # A pod's hint riding along on a Service's is never acknowledged with it.
    with bus.delivering(rider_data=(codec.encode(woken_by("pod")),)):
        assert not own_writes.is_current_delivery_skippable(
            woken_by("service"), skip=handler.is_service_hint
        )
    with bus.delivering(rider_data=(codec.encode(woken_by("service")),)):
        assert own_writes.is_current_delivery_skippable(
            woken_by("service"), skip=handler.is_service_hint
        )
