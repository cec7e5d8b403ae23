"""Which UID this process keeps a pool's state under (pure bookkeeping).

Per-pool state (the rate bucket, the expectations, the children check, the sweep's timers)
is keyed by the pool's UID. A replica that did not run a pool's last deletion pass never
learned that pool was gone, and kept that state for the life of the process; so did every
replica for a pool deleted and re-created under its name. The handler records, per pool key
(namespace/name), the UID its pass saw: a hint that finds the pool gone, or under a new
UID, names the UID whose state is dropped.
"""

from __future__ import annotations


class PoolUids:
    """Pool key → the UID this process's state for it is kept under."""

    def __init__(self) -> None:
        self._uids: dict[str, str] = {}

    def seen(self, key: str, uid: str) -> str | None:
        """Record the pool's UID; returns a previous, different UID (a predecessor under the
        same name) whose state is stale."""
        previous = self._uids.get(key)
        self._uids[key] = uid
        return previous if previous is not None and previous != uid else None

    def gone(self, key: str) -> str | None:
        """The pool is gone: the UID whose state is dropped (None: none kept)."""
        return self._uids.pop(key, None)

    def __len__(self) -> int:
        return len(self._uids)
