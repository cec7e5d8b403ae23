"""Which hints announce only this process's own writes (acknowledged without a pass): never
one that other hints ride along on, never a redelivery (a requeue or a retry)."""

from __future__ import annotations

import datetime

import pytest

from lss_common.bus import codec, own_writes
from lss_common.logic import revisions
from lss_common.models import messages
from lss_common.testing import bus


def hint(event_type: messages.EventType, resource_version: str | None) -> messages.ChangeEvent:
    return messages.ChangeEvent(
        kind="sandbox",
        namespace="team-a",
        name="demo",
        resource_version=resource_version,
        event_type=event_type,
        observed_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    )


@pytest.fixture
def written() -> revisions.WrittenRevisions:
    log = revisions.WrittenRevisions()
    log.add("42")
    return log


@pytest.mark.parametrize("event_type", ["ADDED", "MODIFIED"])
def test_a_create_or_update_we_made_is_skipped(
    written: revisions.WrittenRevisions, event_type: messages.EventType
) -> None:
    assert own_writes.is_own_write(hint(event_type, "42"), written=written)


@pytest.mark.parametrize(
    ("event_type", "resource_version"),
    [
        ("MODIFIED", "43"),  # someone else's change
        ("ADDED", None),
        ("DELETED", "42"),  # how a pass waiting for its children learns they are gone
        ("RESYNC", "42"),  # the safety net for anything lost is never skipped
    ],
)
def test_everything_else_runs_a_pass(
    written: revisions.WrittenRevisions,
    event_type: messages.EventType,
    resource_version: str | None,
) -> None:
    assert not own_writes.is_own_write(hint(event_type, resource_version), written=written)


def test_a_hint_other_hints_ride_along_on_runs_a_pass(written: revisions.WrittenRevisions) -> None:
    # The riders (say, the pod became Ready) are acknowledged with this hint's outcome: only
    # a pass observes what they announce.
    someone_elses = hint("MODIFIED", "43")
    assert not own_writes.is_own_write(
        hint("MODIFIED", "42"), written=written, riders=[someone_elses]
    )
    unreadable = None
    assert not own_writes.is_own_write(hint("MODIFIED", "42"), written=written, riders=[unreadable])


def test_a_hint_whose_riders_are_all_own_writes_is_skipped(
    written: revisions.WrittenRevisions,
) -> None:
    # Our creates of a sandbox's children arrive together while the pass that made them
    # runs; none of them needs a pass (the pod-Ready hint behind them then runs at once).
    written.add("44")
    riders = [hint("ADDED", "44"), hint("MODIFIED", "42")]
    assert own_writes.is_own_write(hint("MODIFIED", "42"), written=written, riders=riders)


def test_a_redelivered_hint_runs_a_pass(written: revisions.WrittenRevisions) -> None:
    # A hint whose pass asked to look again later (RequeueAfter) comes back as a
    # redelivery: skipping it would drop the re-check (expiry, unschedulable deadline).
    assert not own_writes.is_own_write(hint("MODIFIED", "42"), written=written, redelivered=True)


def test_a_redelivered_rider_runs_a_pass(written: revisions.WrittenRevisions) -> None:
    # A requeued re-check comes back while a pass of the same key runs, and rides on the
    # hint of our own write queued behind it: both payloads announce own writes, but the
    # re-check is due (the lifetime's end, a deadline), so the delivery runs its pass.
    own = codec.encode(hint("MODIFIED", "42"))
    with bus.delivering(rider_data=(own,)):
        assert own_writes.is_current_own_write(hint("MODIFIED", "42"), written=written)
    with bus.delivering(rider_data=(own,), rider_redelivered=True):
        assert not own_writes.is_current_own_write(hint("MODIFIED", "42"), written=written)
    # The same re-check handed over to a fresh copy of its message (bus.handover).
    with bus.delivering(handed_over_from=7):
        assert not own_writes.is_current_own_write(hint("MODIFIED", "42"), written=written)


def test_without_a_log_nothing_is_skipped() -> None:
    assert not own_writes.is_own_write(hint("MODIFIED", "42"), written=None)


def child_hint(event_type: messages.EventType, resource_version: str) -> messages.ChangeEvent:
    return messages.ChangeEvent(
        kind="sandbox",
        namespace="team-a",
        name="demo",
        event_type="MODIFIED",
        observed_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        child=messages.ChildChange(
            resource="pod", resource_version=resource_version, event_type=event_type
        ),
    )


@pytest.mark.parametrize("event_type", ["ADDED", "MODIFIED"])
def test_a_child_we_created_or_changed_is_skipped(
    written: revisions.WrittenRevisions, event_type: messages.EventType
) -> None:
    assert own_writes.is_own_write(child_hint(event_type, "42"), written=written)


def test_a_child_changed_by_someone_else_or_deleted_runs_a_pass(
    written: revisions.WrittenRevisions,
) -> None:
    assert not own_writes.is_own_write(child_hint("MODIFIED", "43"), written=written)
    assert not own_writes.is_own_write(child_hint("DELETED", "42"), written=written)


def test_a_delivery_is_skippable_only_if_every_hint_in_it_is() -> None:
    """``is_current_delivery_skippable``: the hint and each rider (a rider that cannot be
    read never is), on a first delivery; outside a consume loop, the hint alone decides."""

    def skip(event: messages.ChangeEvent) -> bool:
        return event.event_type == "MODIFIED"

    modified, added = hint("MODIFIED", "1"), hint("ADDED", "2")
    assert own_writes.is_current_delivery_skippable(modified, skip=skip)
    assert not own_writes.is_current_delivery_skippable(added, skip=skip)
    with bus.delivering(rider_data=(codec.encode(modified),)):
        assert own_writes.is_current_delivery_skippable(modified, skip=skip)
    with bus.delivering(rider_data=(codec.encode(modified), codec.encode(added))):
        assert not own_writes.is_current_delivery_skippable(modified, skip=skip)
    with bus.delivering(rider_data=(b"not a hint",)):
        assert not own_writes.is_current_delivery_skippable(modified, skip=skip)
    with bus.delivering(num_delivered=2):
        assert not own_writes.is_current_delivery_skippable(modified, skip=skip)
    # A re-check handed over to a copy (bus.handover) is a re-check too.
    with bus.delivering(handed_over_from=5):
        assert not own_writes.is_current_delivery_skippable(modified, skip=skip)
    # A redelivered hint riding along (a requeued re-check) is due, whatever it announces.
    with bus.delivering(rider_data=(codec.encode(modified),), rider_redelivered=True):
        assert not own_writes.is_current_delivery_skippable(modified, skip=skip)


def test_a_delivery_announces_what_any_hint_in_it_announces() -> None:
    """``current_delivery_announces``: the hint or any rider (one that cannot be read may
    announce anything); outside a consume loop, the hint alone."""

    def deleted(event: messages.ChangeEvent) -> bool:
        return event.event_type == "DELETED"

    modified, gone = hint("MODIFIED", "1"), hint("DELETED", "2")
    assert own_writes.current_delivery_announces(gone, what=deleted)
    assert not own_writes.current_delivery_announces(modified, what=deleted)
    with bus.delivering(rider_data=(codec.encode(modified), codec.encode(gone))):
        assert own_writes.current_delivery_announces(modified, what=deleted)
    with bus.delivering(rider_data=(codec.encode(modified),)):
        assert not own_writes.current_delivery_announces(modified, what=deleted)
    with bus.delivering(rider_data=(b"not a hint",)):
        assert own_writes.current_delivery_announces(modified, what=deleted)
