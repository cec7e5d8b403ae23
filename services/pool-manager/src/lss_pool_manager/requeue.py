"""One delayed redelivery per key at a time (pure: ``now`` is a monotonic reading).

Every hint for a pool or WarmPod is a message; if each pass that has a deadline (TTL, scale-
down delay, heartbeat, rate limit) answered with ``RequeueAfter``, every hint ever received
for the key would keep cycling through the stream. The book remembers, per key, the deadline
of the message already scheduled: a pass whose deadline is no earlier is acked instead. The
message being redelivered at its deadline finds its own entry due and takes over. A book
lost with its process is harmless: the watcher's periodic resync wakes every key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

# Two deadlines this close are the same wake-up (clock readings differ between passes).
_SLACK_SECONDS = 0.5


@dataclasses.dataclass(slots=True)
class RequeueBook:
    """Per key, when the scheduled redelivery is due, and which message holds it (its stream
    sequence; None when unknown)."""

    due: dict[str, tuple[float, int | None]] = dataclasses.field(default_factory=dict)

    def decide(
        self,
        key: str,
        *,
        after_seconds: float | None,
        now: float,
        stream_seq: int | None = None,
        covered_seqs: Collection[int] = (),
    ) -> float | None:
        """Seconds to requeue this message after, or None to ack it (covered or no deadline).

        The holder's entry is consumed when it is due, or when the holder itself comes back
        early (a redelivery), as this message, riding on it, or as a copy handed over
        before the stream dropped it (``covered_seqs``: ``Delivery.covered_seqs``): acked
        as covered by its own entry, its re-check was lost."""
        entry = self.due.get(key)
        if entry is not None and (
            entry[0] <= now + _SLACK_SECONDS
            or (entry[1] is not None and (entry[1] == stream_seq or entry[1] in covered_seqs))
        ):
            # Due (this is probably that message), or that very message: consumed.
            del self.due[key]
            entry = None
        if after_seconds is None:
            return None
        wanted = now + max(0.0, after_seconds)
        if entry is not None and entry[0] <= wanted + _SLACK_SECONDS:
            return None
        self.due[key] = (wanted, stream_seq)
        return max(0.0, after_seconds)

    def forget(self, key: str) -> None:
        self.due.pop(key, None)
