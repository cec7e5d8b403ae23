"""tracker: tracked state, the hints of each watch event, relist diffs and resync (pure).

Matrix:
- observe: ADDED/MODIFIED/DELETED of a custom kind → its own hint with id
  ``kind/ns/name/rv``; of a child → its owners' hints ``owner/child rv/source``; a re-owned
  child wakes old and new owners; a replayed version produces nothing;
- accepts: identity and namespace-ness are required;
- relist (replace): unchanged objects are silent, new → ADDED, changed → MODIFIED, vanished
  → DELETED with the ``gone`` id (own key and last owners), a same-name object with a new uid
  is both a vanish and an ADDED; a relist that is not finished changes nothing;
- the ids a restarted watcher's first list produces equal those of the watch events that
  announced the same versions (so JetStream deduplicates them);
- resync: one RESYNC per own key and per owner key, ids carrying the round;
- hypothesis: after any sequence of events, a relist of the true state from a fresh tracker
  and from the event-fed tracker agree on what is tracked, and diffing a state against itself
  is silent.
"""

from __future__ import annotations

import datetime
from typing import Any

import hypothesis
import msgspec
from hypothesis import strategies as st

from lss_common.bus import own_writes
from lss_common.logic import revisions
from lss_watcher import hints, resources, settings, tracker, views

TABLE = {r.name: r for r in resources.watched_resources(settings.WatcherOptions())}
Key = tracker.ObjectKey


NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def obj(
    name: str,
    rv: str,
    *,
    uid: str | None = None,
    namespace: str | None = "ns",
    owner: tuple[str, str] | None = None,
) -> views.ObjectView:
    meta: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}" if uid is None else uid,
        "resourceVersion": rv,
    }
    if namespace is not None:
        meta["namespace"] = namespace
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "llmsafespace.dev/v1", "kind": owner[0], "name": owner[1], "uid": "o"}
        ]
    return views.decode_object(msgspec.json.encode({"metadata": meta}))


def ids(found: list[hints.Hint]) -> list[tuple[str, str]]:
    return [(h.event_type, h.msg_id) for h in found]


def test_own_kind_events() -> None:
    t = tracker.Tracker(TABLE[resources.Name.SANDBOX])
    assert ids(t.observe("ADDED", obj("a.b", "10"))) == [("ADDED", "sandbox/ns/a_b/10")]
    assert ids(t.observe("MODIFIED", obj("a.b", "11"))) == [("MODIFIED", "sandbox/ns/a_b/11")]
    assert t.observe("MODIFIED", obj("a.b", "11")) == []
    assert len(t) == 1
    assert ids(t.observe("DELETED", obj("a.b", "12"))) == [("DELETED", "sandbox/ns/a_b/12")]
    assert len(t) == 0


def test_cluster_scoped_kind_uses_the_cluster_token() -> None:
    t = tracker.Tracker(TABLE[resources.Name.RUNTIME_ENVIRONMENT])
    [hint] = t.observe("ADDED", obj("py", "5", namespace=None))
    assert hint.key == Key("runtimeenvironment", None, "py")
    assert hint.msg_id == "runtimeenvironment/%cluster/py/5"


def test_child_events_wake_owners_old_and_new() -> None:
    t = tracker.Tracker(TABLE[resources.Name.POD])
    assert ids(t.observe("ADDED", obj("p", "20", owner=("WarmPod", "wp")))) == [
        ("MODIFIED", "warmpod/ns/wp/20/pod")
    ]
    reowned = t.observe("MODIFIED", obj("p", "21", owner=("Sandbox", "sb")))
    assert [h.key for h in reowned] == [Key("sandbox", "ns", "sb"), Key("warmpod", "ns", "wp")]
    assert all(h.uid is None and h.resource_version is None for h in reowned)
    # The WarmPod is not an owner any more: later changes wake only the Sandbox.
    assert [h.key for h in t.observe("MODIFIED", obj("p", "22", owner=("Sandbox", "sb")))] == [
        Key("sandbox", "ns", "sb")
    ]
    assert ids(t.observe("DELETED", obj("p", "23", owner=("Sandbox", "sb")))) == [
        ("MODIFIED", "sandbox/ns/sb/23/pod")
    ]


def test_accepts_requires_identity_and_scope() -> None:
    sandboxes = tracker.Tracker(TABLE[resources.Name.SANDBOX])
    runtimes = tracker.Tracker(TABLE[resources.Name.RUNTIME_ENVIRONMENT])
    assert sandboxes.accepts(obj("a", "1"))
    assert not sandboxes.accepts(obj("a", ""))
    assert not sandboxes.accepts(obj("", "1"))
    assert not sandboxes.accepts(obj("a", "1", uid=""))
    assert not sandboxes.accepts(obj("a", "1", namespace=None))
    assert runtimes.accepts(obj("py", "1", namespace=None))
    assert not runtimes.accepts(obj("py", "1"))


def test_relist_diff() -> None:
    t = tracker.Tracker(TABLE[resources.Name.SANDBOX])
    t.replace([obj("same", "1"), obj("changed", "2"), obj("gone", "3"), obj("reborn", "4")])
    diff = t.replace(
        [obj("same", "1"), obj("changed", "5"), obj("new", "6"), obj("reborn", "7", uid="new-uid")]
    )
    assert sorted(ids(diff.hints)) == sorted(
        [
            ("MODIFIED", "sandbox/ns/changed/5"),
            ("ADDED", "sandbox/ns/new/6"),
            ("ADDED", "sandbox/ns/reborn/7"),
            ("DELETED", "sandbox/ns/gone/3/gone"),
            ("DELETED", "sandbox/ns/reborn/4/gone"),
        ]
    )
    assert sorted((v.key, v.uid, v.resource_version) for v in diff.vanished) == [
        (Key("sandbox", "ns", "gone"), "uid-gone", "3"),
        (Key("sandbox", "ns", "reborn"), "uid-reborn", "4"),
    ]
    assert sorted(v.metadata.name for v in diff.changed) == ["changed", "new", "reborn"]
    assert t.identities() == {("ns", "same"), ("ns", "changed"), ("ns", "new"), ("ns", "reborn")}


def test_relist_of_children_wakes_last_owners_of_vanished() -> None:
    t = tracker.Tracker(TABLE[resources.Name.SERVICE])
    t.replace([obj("svc", "9", owner=("Sandbox", "sb"))])
    diff = t.replace([])
    assert ids(diff.hints) == [("MODIFIED", "sandbox/ns/sb/9/service-gone")]
    assert [(v.key, v.resource_version) for v in diff.vanished] == [(None, "9")]


def test_a_relist_after_a_gap_announces_changes_as_resync() -> None:
    """After a gap the list shows only the latest version: its hints are RESYNC, which no
    service skips as its own write (a foreign change may be collapsed under it)."""
    sandboxes = tracker.Tracker(TABLE[resources.Name.SANDBOX])
    pods = tracker.Tracker(TABLE[resources.Name.POD])
    sandboxes.replace([obj("sb", "1"), obj("gone", "2")])
    pods.replace([obj("p", "3", owner=("Sandbox", "sb"))])

    relisting = sandboxes.relist(after_gap=True)
    changed = relisting.add(obj("sb", "5"))
    added = relisting.add(obj("new", "6"))
    vanished, _ = relisting.finish()
    assert changed is not None
    assert added is not None
    assert [h.event_type for h in changed + added] == ["RESYNC", "RESYNC"]
    assert [h.event_type for h in vanished] == ["DELETED"]  # never skipped anyway

    child_relisting = pods.relist(after_gap=True)
    woken = child_relisting.add(obj("p", "7", owner=("Sandbox", "sb")))
    assert woken is not None
    (hint,) = woken
    assert hint.child is not None
    assert (hint.key.name, hint.child.event_type, hint.child.resource_version) == (
        "sb",
        "RESYNC",
        "7",
    )
    written = revisions.WrittenRevisions()
    written.add("7")
    event = hints.message(hint, observed_at=NOW)
    assert not own_writes.is_own_write(event, written=written)
    # The same change seen by a watch is an own write, skippable.
    watched = tracker.Tracker(TABLE[resources.Name.POD])
    watched.replace([obj("p", "3", owner=("Sandbox", "sb"))])
    (seen,) = watched.observe("MODIFIED", obj("p", "7", owner=("Sandbox", "sb")))
    assert own_writes.is_own_write(hints.message(seen, observed_at=NOW), written=written)


def test_unfinished_relist_changes_nothing() -> None:
    t = tracker.Tracker(TABLE[resources.Name.SANDBOX])
    t.replace([obj("a", "1")])
    relisting = t.relist()
    relisting.add(obj("b", "2"))
    assert t.identities() == {("ns", "a")}


def test_first_list_ids_match_watch_ids() -> None:
    watched = tracker.Tracker(TABLE[resources.Name.POD])
    from_watch = watched.observe("ADDED", obj("p", "30", owner=("Sandbox", "sb")))
    from_watch += watched.observe("MODIFIED", obj("p", "31", owner=("Sandbox", "sb")))
    restarted = tracker.Tracker(TABLE[resources.Name.POD])
    first_list = restarted.replace([obj("p", "31", owner=("Sandbox", "sb"))]).hints
    assert {h.msg_id for h in first_list} <= {h.msg_id for h in from_watch}


def test_resync_hints() -> None:
    sandboxes = tracker.Tracker(TABLE[resources.Name.SANDBOX])
    pods = tracker.Tracker(TABLE[resources.Name.POD])
    sandboxes.replace([obj("sb", "1")])
    pods.replace(
        [obj("p1", "2", owner=("Sandbox", "sb")), obj("p2", "3", owner=("Sandbox", "orphan"))]
    )
    found = tracker.resync_hints([sandboxes, pods], round_id=hints.resync_round(600))
    assert sorted((h.key, h.event_type, h.msg_id, h.resource_version) for h in found) == [
        (Key("sandbox", "ns", "orphan"), "RESYNC", "sandbox/ns/orphan/-/resync-600", None),
        (Key("sandbox", "ns", "sb"), "RESYNC", "sandbox/ns/sb/1/resync-600", "1"),
    ]


# -- properties ------------------------------------------------------------------------------

object_names = st.sampled_from(["a", "b", "c.d", "e"])
owners = st.none() | st.tuples(st.sampled_from(["Sandbox", "WarmPod"]), st.sampled_from(["x", "y"]))
events = st.lists(
    st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), object_names, owners),
    max_size=30,
)


@hypothesis.given(
    events=events, resource=st.sampled_from([resources.Name.SANDBOX, resources.Name.POD])
)
def test_events_then_relist_agree_with_a_fresh_list(
    events: list[tuple[str, str, tuple[str, str] | None]], resource: resources.Name
) -> None:
    fed = tracker.Tracker(TABLE[resource])
    truth: dict[str, views.ObjectView] = {}
    for version, (event_type, name, owner) in enumerate(events, start=1):
        view = obj(name, str(version), owner=owner)
        if event_type == "DELETED":
            truth.pop(name, None)
        else:
            truth[name] = view
        fed.observe(event_type, view)
    # Events alone keep the tracker equal to the truth: a relist of the truth finds nothing.
    diff = fed.replace(list(truth.values()))
    assert diff.hints == []
    assert diff.changed == []
    assert diff.vanished == []
    fresh = tracker.Tracker(TABLE[resource])
    fresh.replace(list(truth.values()))
    assert fed.identities() == fresh.identities() == {("ns", name) for name in truth}
