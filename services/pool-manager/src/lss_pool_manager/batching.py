"""Batch the pool passes that WarmPod changes wake, while the pool has supply to spare (pure).

Every claim turns a WarmPod ``Ready`` → ``Assigned``, and the watcher wakes the WarmPod's
pool. Run at once, that pool pass (a pool get, a WarmPod list, a status write, the refill's
WarmPod and pod creates) shares the API server with the claim that caused it: on a small
control plane the claim's adoption and ``Running`` write wait behind the refill. A burst of
ten claims woke ten passes.

While the pool still has spare supply (at least one Ready WarmPod, and at least half of
what it wants unassigned, as its last pass saw it), a pass woken by a WarmPod change is
deferred by ``window_seconds`` (the message is redelivered then), and the further wake-ups
of that window are covered by it: a burst of claims costs one refill pass, after the claims.
A pool below that mark refills at once, as does a pool this process has not sized yet, so
the batching never delays a pool that is running dry. Only wake-ups by a WarmPod change are
batched: the pool's own changes (spec, deletion) and the periodic resync run at once.

State is per process and lost harmlessly: a deferred message redelivered to another replica
runs there; this replica then covers wake-ups only until its recorded deadline.
"""

from __future__ import annotations

import dataclasses
import enum


@dataclasses.dataclass(frozen=True, slots=True)
class Supply:
    """What a pool's last pass saw: Ready WarmPods, and how many unassigned it wants."""

    available: int
    wanted: int


def has_spare_supply(supply: Supply) -> bool:
    """At least one Ready WarmPod, and at least half of the wanted unassigned ones."""
    return supply.available > 0 and 2 * supply.available >= supply.wanted


class Verdict(enum.Enum):
    RUN = "run"
    """Run the pass now."""
    DEFER = "defer"
    """Requeue this hint after ``Decision.after_seconds``; its redelivery runs the pass."""
    COVERED = "covered"
    """Acknowledge: a deferred pass of this pool is due within the window."""


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    after_seconds: float = 0.0


RUN = Decision(Verdict.RUN)
COVERED = Decision(Verdict.COVERED)


class RefillBatcher:
    """Per pool key: the supply its last pass saw, and when a deferred pass is due.

    ``now`` values are monotonic readings.
    """

    def __init__(self, *, window_seconds: float) -> None:
        self._window = window_seconds
        self._supply: dict[str, Supply] = {}
        self._due: dict[str, float] = {}

    def decide(self, key: str, *, now: float, first_delivery: bool) -> Decision:
        """What to do with a hint that a WarmPod change woke pool ``key`` with."""
        if self._window <= 0:
            return RUN
        due = self._due.get(key)
        if not first_delivery:
            # The deferred hint coming back (or a pass's own requeue): the batched pass.
            self._due.pop(key, None)
            return RUN
        if due is not None:
            if now < due:
                return COVERED
            # Its message went to another replica or is late: run now (it runs as well).
            del self._due[key]
            return RUN
        supply = self._supply.get(key)
        if supply is None or not has_spare_supply(supply):
            return RUN
        self._due[key] = now + self._window
        return Decision(Verdict.DEFER, after_seconds=self._window)

    def record(self, key: str, supply: Supply) -> None:
        """What pool ``key``'s pass just saw."""
        self._supply[key] = supply

    def forget(self, key: str) -> None:
        self._supply.pop(key, None)
        self._due.pop(key, None)
