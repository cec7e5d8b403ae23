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

# Two deadlines this close are the same wake-up (clock readings differ between passes).
_SLACK_SECONDS = 0.5


@dataclasses.dataclass(slots=True)
class RequeueBook:
    """Per key, the monotonic time a scheduled redelivery is due."""

    due: dict[str, float] = dataclasses.field(default_factory=dict)

    def decide(self, key: str, *, after_seconds: float | None, now: float) -> float | None:
        """Seconds to requeue this message after, or None to ack it (covered or no deadline)."""
        scheduled = self.due.get(key)
        if scheduled is not None and scheduled <= now + _SLACK_SECONDS:
            # Due (this is probably that message): the entry is consumed.
            del self.due[key]
            scheduled = None
        if after_seconds is None:
            return None
        wanted = now + max(0.0, after_seconds)
        if scheduled is not None and scheduled <= wanted + _SLACK_SECONDS:
            return None
        self.due[key] = wanted
        return max(0.0, after_seconds)

    def forget(self, key: str) -> None:
        self.due.pop(key, None)
