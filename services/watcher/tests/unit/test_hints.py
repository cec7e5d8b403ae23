"""hints: message ids, subjects and payloads of hints (pure).

Matrix: the id table of the module docstring, one row per kind of change; distinct changes get
distinct ids while the same change always gets the same id; subjects round-trip names with
dots and cluster-scoped kinds; the ChangeEvent payload carries the hint's fields.
"""

from __future__ import annotations

import datetime

import pytest

from lss_common.logic import subjects
from lss_common.models import messages
from lss_watcher import hints

KEY = hints.ObjectKey("sandbox", "ns", "my.box")
CLUSTER = hints.ObjectKey("runtimeenvironment", None, "py")
NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("hint", "msg_id", "event_type"),
    [
        (
            hints.own_change(KEY, event_type="ADDED", uid="u", resource_version="7"),
            "sandbox/ns/my_box/7",
            "ADDED",
        ),
        (
            hints.own_change(CLUSTER, event_type="MODIFIED", uid="u", resource_version="8"),
            "runtimeenvironment/%cluster/py/8",
            "MODIFIED",
        ),
        (
            hints.own_vanished(KEY, uid="u", last_resource_version="7"),
            "sandbox/ns/my_box/7/gone",
            "DELETED",
        ),
        (
            hints.owner_woken(
                KEY, source="pod", child_resource_version="9", child_event_type="MODIFIED"
            ),
            "sandbox/ns/my_box/9/pod",
            "MODIFIED",
        ),
        (
            hints.owner_woken(
                KEY,
                source="pod",
                child_resource_version="9",
                child_event_type="MODIFIED",
                vanished=True,
            ),
            "sandbox/ns/my_box/9/pod-gone",
            "MODIFIED",
        ),
        (
            hints.resync(KEY, uid="u", resource_version="7", round_id=hints.resync_round(300)),
            "sandbox/ns/my_box/7/resync-300",
            "RESYNC",
        ),
        (
            hints.resync(KEY, uid=None, resource_version=None, round_id="reconnect-ab"),
            "sandbox/ns/my_box/-/reconnect-ab",
            "RESYNC",
        ),
    ],
)
def test_ids(hint: hints.Hint, msg_id: str, event_type: str) -> None:
    assert hint.msg_id == msg_id
    assert hint.event_type == event_type


def test_ids_distinguish_changes_and_repeat_for_the_same_change() -> None:
    same = [
        hints.own_change(KEY, event_type="ADDED", uid="u", resource_version="7"),
        hints.own_change(KEY, event_type="MODIFIED", uid="u", resource_version="7"),
    ]
    assert same[0].msg_id == same[1].msg_id
    distinct = [
        hints.own_change(KEY, event_type="ADDED", uid="u", resource_version="7"),
        hints.own_change(KEY, event_type="ADDED", uid="u", resource_version="8"),
        hints.own_vanished(KEY, uid="u", last_resource_version="7"),
        hints.owner_woken(
            KEY, source="pod", child_resource_version="7", child_event_type="MODIFIED"
        ),
        hints.owner_woken(
            KEY, source="service", child_resource_version="7", child_event_type="MODIFIED"
        ),
        hints.owner_woken(
            KEY,
            source="pod",
            child_resource_version="7",
            child_event_type="MODIFIED",
            vanished=True,
        ),
        hints.resync(KEY, uid="u", resource_version="7", round_id="resync-1"),
        hints.resync(KEY, uid="u", resource_version="7", round_id="resync-2"),
        hints.own_change(
            hints.ObjectKey("sandbox", "ns", "my_box"),
            event_type="ADDED",
            uid="u",
            resource_version="7",
        ),
    ]
    assert len({h.msg_id for h in distinct}) == len(distinct)


def test_subject_and_message() -> None:
    hint = hints.own_change(KEY, event_type="ADDED", uid="u", resource_version="7")
    subject = hints.subject(hint, prefix="lss")
    assert subject == "lss.evt.sandbox.ns.my_box"
    assert subjects.parse_event_subject(subject) == KEY
    cluster = hints.own_change(CLUSTER, event_type="ADDED", uid="u", resource_version="1")
    assert subjects.parse_event_subject(hints.subject(cluster, prefix="lss")) == CLUSTER
    event = hints.message(hint, observed_at=NOW)
    assert (event.kind, event.namespace, event.name, event.uid, event.resource_version) == (
        "sandbox",
        "ns",
        "my.box",
        "u",
        "7",
    )
    assert event.event_type == "ADDED"
    assert event.observed_at == NOW


@pytest.mark.parametrize(
    ("now", "period", "boundary"),
    [(0.0, 300.0, 300.0), (299.9, 300.0, 300.0), (300.0, 300.0, 600.0), (1000.5, 2.0, 1002.0)],
)
def test_next_round_boundary(now: float, period: float, boundary: float) -> None:
    assert hints.next_round_boundary(now, period_seconds=period) == boundary


def test_an_owner_hint_names_the_child_change_that_woke_it() -> None:
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    changed = hints.message(
        hints.owner_woken(KEY, source="pod", child_resource_version="9", child_event_type="ADDED"),
        observed_at=at,
    )
    assert changed.resource_version is None
    assert changed.child == messages.ChildChange(
        resource="pod", resource_version="9", event_type="ADDED"
    )
    # Found gone by a relist: a deletion, whatever the caller passed.
    vanished = hints.owner_woken(
        KEY, source="pod", child_resource_version="9", child_event_type="MODIFIED", vanished=True
    )
    assert vanished.child is not None
    assert vanished.child.event_type == "DELETED"
    own = hints.message(
        hints.own_change(KEY, event_type="MODIFIED", uid="u", resource_version="8"),
        observed_at=at,
    )
    assert own.child is None
