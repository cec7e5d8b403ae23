"""Retry delays: the nak delay for the n-th delivery of a message (pure, no clock, no I/O).

The schedule is a sequence (kopf's ``error_delays`` style) read from
``ConsumerSettings.backoff_seconds``; its last value repeats forever, because the consume loop
never gives up on a message (a hint that keeps failing stays visible in metrics and logs
instead of disappearing).
"""

from __future__ import annotations

from collections.abc import Sequence


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

    Per replica and bounded: a message whose retry another replica settles leaves an entry
    here, so past ``capacity`` the oldest entry goes (its message, if it fails here again,
    starts the schedule over — a shorter delay, never a lost message).
    """

    def __init__(self, *, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._counts: dict[int, int] = {}

    def failed(self, stream_seq: int) -> int:
        """Record one more failure of the message; its consecutive failures, from 1."""
        count = self._counts.pop(stream_seq, 0) + 1
        self._counts[stream_seq] = count  # re-inserted: the newest entry
        while len(self._counts) > self._capacity:
            del self._counts[next(iter(self._counts))]
        return count

    def settled(self, stream_seq: int) -> None:
        """The message was handled without failing: its next failure is a first one."""
        self._counts.pop(stream_seq, None)

    def __len__(self) -> int:
        return len(self._counts)
