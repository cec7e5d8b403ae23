"""The resourceVersions this process wrote: lets a handler skip the hint of its own write.

Every write through ``lss_common.kube.objects`` records the resourceVersion the API server
answered with, when the ``Kube`` handle carries a ``WrittenRevisions``. A resourceVersion is
the etcd revision of the write: unique across every object of the cluster (one etcd, the
default), so a hint that carries one of these revisions announces exactly a change this
process made and already knows. A handler that planned and made that change can skip the
pass the hint would cause: the reconcilers' passes write what they planned from a fresh
read, and a pass that fails is retried by its own message, never by the hint of its write.

Bounded: the oldest revisions are forgotten first (a forgotten one only costs a pass).
Pure: no I/O.
"""

from __future__ import annotations

import collections
from typing import Final

DEFAULT_CAPACITY: Final = 65_536


class WrittenRevisions:
    """A bounded set of resourceVersions, oldest evicted first."""

    def __init__(self, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._order: collections.deque[str] = collections.deque()
        self._known: set[str] = set()

    def add(self, resource_version: str | None) -> None:
        """Remember ``resource_version`` (ignored when empty)."""
        if not resource_version or resource_version in self._known:
            return
        if len(self._order) >= self._capacity:
            self._known.discard(self._order.popleft())
        self._order.append(resource_version)
        self._known.add(resource_version)

    def __contains__(self, resource_version: object) -> bool:
        return resource_version in self._known

    def __len__(self) -> int:
        return len(self._order)
