"""Retry delays: the nak delay for the n-th delivery of a message (pure, no clock, no I/O).

The schedule is a sequence (kopf's ``error_delays`` style) read from
``ConsumerSettings.backoff_seconds``; its last value repeats forever, because the consume loop
never gives up on a message (a hint that keeps failing stays visible in metrics and logs
instead of disappearing).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence


def delay_for_delivery(num_delivered: int, *, delays_seconds: Sequence[float]) -> float:
    """Seconds to wait before delivery ``num_delivered + 1`` after delivery ``num_delivered``
    failed.

    ``num_delivered`` counts from 1 (JetStream's ``metadata.num_delivered``); values below 1
    are treated as 1. An empty schedule means "retry at once".
    """
    if not delays_seconds:
        return 0.0
    index = min(max(num_delivered, 1), len(delays_seconds)) - 1
    return max(float(delays_seconds[index]), 0.0)


class FailureCounts:
    """Consecutive failed handlings per message (by its stream sequence), for the backoff.

    JetStream's delivery count is no failure count: it also counts the re-checks a handler
    asked for (a nak with a delay: a deletion poll, a lifetime's end), so a message re-checked
    a few times met its first real failure with the schedule's longest delay. A failure is
    counted here, and any other settlement (ack, term, a requested re-check) clears it.

    Per replica, and forgotten ``ttl_seconds`` after a message's last failure (its retry was
    handled by another replica, or it went): a message that keeps failing comes back within
    the schedule's longest delay, so a TTL above that (plus the time a redelivery may queue)
    keeps its count, however many messages fail at once. A count cap would not: with more
    failing messages than the cap, each would be forgotten before it came back, and retried
    at the schedule's shortest delay for ever. ``max_entries`` only guards memory.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        # stream sequence → (count, when it last failed); ordered by last failure.
        self._counts: collections.OrderedDict[int, tuple[int, float]] = collections.OrderedDict()

    def failed(self, stream_seq: int) -> int:
        """Record one more failure of the message; its consecutive failures, from 1."""
        now = self._clock()
        self._expire(now)
        count = self._counts.pop(stream_seq, (0, now))[0] + 1
        self._counts[stream_seq] = (count, now)  # re-inserted: the newest entry
        while len(self._counts) > self._max_entries:
            self._counts.popitem(last=False)
        return count

    def settled(self, stream_seq: int) -> None:
        """The message was handled without failing: its next failure is a first one."""
        self._counts.pop(stream_seq, None)

    def __len__(self) -> int:
        return len(self._counts)

    def _expire(self, now: float) -> None:
        while self._counts:
            seq, (_, last) = next(iter(self._counts.items()))
            if now - last < self._ttl:
                return  # ordered by last failure: the rest are younger
            del self._counts[seq]
