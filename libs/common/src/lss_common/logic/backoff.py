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
