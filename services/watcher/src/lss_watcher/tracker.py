"""What the watcher remembers about one resource, and the hints each change produces (pure).

Per object it keeps only ``uid``, ``resourceVersion`` and the owner keys it maps to (a few
hundred bytes), never the object. That is enough to:

* turn a watch event into hints: the object's own key (for the five custom kinds) and every
  owner key, the *previous* owners included (a pod re-owned from a WarmPod to a Sandbox wakes
  both);
* diff a fresh list against what was tracked (:meth:`Tracker.replace`) after a broken watch:
  new and changed objects are announced, and objects that vanished while nobody watched are
  announced as deleted (to their own key and to their last owners);
* enumerate every live object and owner key for the periodic resync.

No I/O, no clock; message ids come from ``hints.py``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Iterator

from lss_watcher import hints, mapping, resources, views

ObjectKey = mapping.ObjectKey
Identity = tuple[str | None, str]
"""(namespace, name) of a tracked object."""


@dataclasses.dataclass(slots=True)
class Entry:
    """The tracked state of one object."""

    uid: str
    resource_version: str
    owners: tuple[ObjectKey, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Vanished:
    """An object found missing by a relist: who it was, as last seen."""

    key: ObjectKey | None
    """Its own key (None for children)."""
    uid: str
    resource_version: str


@dataclasses.dataclass(frozen=True, slots=True)
class Diff:
    """What a relist changed: the hints to publish and the objects that vanished."""

    hints: list[hints.Hint]
    vanished: list[Vanished]
    changed: list[views.ObjectView]
    """Listed objects that are new or changed (their status may need publishing)."""


_NO_OWNERS: tuple[ObjectKey, ...] = ()


class Tracker:
    """Tracked state of one watched resource."""

    def __init__(self, resource: resources.WatchedResource) -> None:
        self._resource = resource
        self._entries: dict[Identity, Entry] = {}

    @property
    def resource(self) -> resources.WatchedResource:
        return self._resource

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, identity: object) -> bool:
        return identity in self._entries

    def accepts(self, view: views.ObjectView) -> bool:
        """Whether ``view`` has what tracking needs: identity, and a namespace iff namespaced."""
        has_namespace = bool(view.metadata.namespace)
        return views.is_complete(view) and has_namespace == self._resource.namespaced

    def observe(self, event_type: hints.EventType, view: views.ObjectView) -> list[hints.Hint]:
        """Record a watch event (ADDED, MODIFIED or DELETED) and return its hints.

        ``view`` must be :meth:`accepts`-ed. A DELETED event carries the deletion's own
        resourceVersion, so its id differs from every earlier change of the object.
        """
        identity = _identity(view)
        meta = view.metadata
        owners = mapping.owner_keys(self._resource, view)
        if event_type == hints.DELETED:
            previous = self._entries.pop(identity, None)
        else:
            previous = self._entries.get(identity)
            if (
                previous is not None
                and previous.resource_version == meta.resource_version
                and previous.uid == meta.uid
            ):
                # Replayed (e.g. a watch restarted at an older version): nothing new.
                return []
            self._entries[identity] = Entry(
                uid=meta.uid,
                resource_version=meta.resource_version,
                owners=owners or _NO_OWNERS,
            )
        own = mapping.own_key(self._resource, view)
        result: list[hints.Hint] = []
        if own is not None:
            result.append(
                hints.own_change(
                    own,
                    event_type=event_type,
                    uid=meta.uid,
                    resource_version=meta.resource_version,
                )
            )
        woken = _union(owners, previous.owners if previous is not None else _NO_OWNERS)
        result.extend(
            hints.owner_woken(
                key,
                source=self._resource.name,
                child_resource_version=meta.resource_version,
                child_event_type=event_type,
            )
            for key in woken
        )
        return result

    def relist(self, *, after_gap: bool = False) -> Relisting:
        """Start replacing the tracked state with a fresh list, page by page.

        The tracked state changes only when :meth:`Relisting.finish` is called, so a list
        that fails half-way leaves it as it was. ``after_gap``: a list after the watch lost
        its place (410, a silent watch), not the first one; see :class:`Relisting`.
        """
        return Relisting(self, after_gap=after_gap)

    def replace(self, listed: Iterable[views.ObjectView]) -> Diff:
        """Make a complete fresh list the tracked state; return what changed since."""
        relisting = self.relist()
        found: list[hints.Hint] = []
        changed: list[views.ObjectView] = []
        for view in listed:
            view_hints = relisting.add(view)
            if view_hints is not None:
                found.extend(view_hints)
                changed.append(view)
        vanished_hints, vanished = relisting.finish()
        return Diff(hints=found + vanished_hints, vanished=vanished, changed=changed)

    def live(self) -> Iterator[tuple[ObjectKey | None, Entry]]:
        """Every tracked object: its own key (None for children) and its entry."""
        for identity, entry in self._entries.items():
            yield self._own_key(identity), entry

    def identities(self) -> set[Identity]:
        """The (namespace, name) of every tracked object."""
        return set(self._entries)

    def _own_key(self, identity: Identity) -> ObjectKey | None:
        kind = self._resource.own_kind
        return None if kind is None else ObjectKey(kind, identity[0], identity[1])


class Relisting:
    """One relist in progress: feed it every listed object, then :meth:`finish` it.

    After a gap, a changed object's hints are ``RESYNC``, not ``ADDED``/``MODIFIED``: the
    list shows only its latest version, which may be a service's own write with someone
    else's change (a kubelet's) collapsed under it, unseen; a hint that announced only the
    own write would be skipped (``own_writes``), and that change lost until the periodic
    resync. The first list needs no such care: the start round that follows it announces
    every object as ``RESYNC`` anyway.
    """

    def __init__(self, tracker: Tracker, *, after_gap: bool = False) -> None:
        self._tracker = tracker
        self._previous = tracker._entries
        self._fresh: dict[Identity, Entry] = {}
        self._after_gap = after_gap

    def add(self, view: views.ObjectView) -> list[hints.Hint] | None:
        """Record one listed (accepted) object; its hints, or None when it is unchanged."""
        tracker = self._tracker
        resource = tracker.resource
        identity = _identity(view)
        meta = view.metadata
        old = self._previous.get(identity)
        if old is not None and old.uid == meta.uid:
            if old.resource_version == meta.resource_version:
                self._fresh[identity] = old
                return None
            event_type = hints.MODIFIED
        else:
            event_type = hints.ADDED
        if self._after_gap:
            event_type = hints.RESYNC
        owners = mapping.owner_keys(resource, view)
        self._fresh[identity] = Entry(
            uid=meta.uid, resource_version=meta.resource_version, owners=owners or _NO_OWNERS
        )
        found: list[hints.Hint] = []
        own = mapping.own_key(resource, view)
        if own is not None:
            found.append(
                hints.own_change(
                    own,
                    event_type=event_type,
                    uid=meta.uid,
                    resource_version=meta.resource_version,
                )
            )
        woken = _union(owners, old.owners if old is not None else _NO_OWNERS)
        found.extend(
            hints.owner_woken(
                key,
                source=resource.name,
                child_resource_version=meta.resource_version,
                child_event_type=event_type,
            )
            for key in woken
        )
        return found

    def finish(self) -> tuple[list[hints.Hint], list[Vanished]]:
        """Swap in the fresh state; the hints and records of the objects that vanished."""
        tracker = self._tracker
        found: list[hints.Hint] = []
        vanished: list[Vanished] = []
        for identity, old in self._previous.items():
            current = self._fresh.get(identity)
            if current is not None and current.uid == old.uid:
                continue
            # Gone, or replaced by another object of the same name (a new uid): either way the
            # old object was deleted without a watch seeing it.
            own = tracker._own_key(identity)
            vanished.append(Vanished(key=own, uid=old.uid, resource_version=old.resource_version))
            if own is not None:
                found.append(
                    hints.own_vanished(own, uid=old.uid, last_resource_version=old.resource_version)
                )
            found.extend(
                hints.owner_woken(
                    key,
                    source=tracker.resource.name,
                    child_resource_version=old.resource_version,
                    child_event_type=hints.DELETED,
                    vanished=True,
                )
                for key in old.owners
            )
        tracker._entries = self._fresh
        return found, vanished


def resync_hints(trackers: Iterable[Tracker], *, round_id: str) -> list[hints.Hint]:
    """One RESYNC hint per live object's own key and per owner key any live object maps to.

    An owner key with no live object of its own (a child whose Sandbox is gone) is announced
    too: its handler finds the owner missing and cleans up what is left.
    """
    announced: dict[ObjectKey, hints.Hint] = {}
    owners: dict[ObjectKey, None] = {}
    for tracker in trackers:
        for own, entry in tracker.live():
            if own is not None:
                announced[own] = hints.resync(
                    own, uid=entry.uid, resource_version=entry.resource_version, round_id=round_id
                )
            owners.update(dict.fromkeys(entry.owners))
    for key in owners:
        if key not in announced:
            announced[key] = hints.resync(key, uid=None, resource_version=None, round_id=round_id)
    return list(announced.values())


def _identity(view: views.ObjectView) -> Identity:
    namespace = view.metadata.namespace
    # Thousands of objects share a handful of namespaces: keep one copy of each string.
    return (sys.intern(namespace) if namespace else None, view.metadata.name)


def _union(first: tuple[ObjectKey, ...], second: tuple[ObjectKey, ...]) -> tuple[ObjectKey, ...]:
    if not second or first == second:
        return first
    return tuple(dict.fromkeys((*first, *second)))
