"""What a message handler returns: ``Done`` (ack) or ``RequeueAfter(seconds)`` (delayed nak).

Failures are not outcomes: a handler raises ``errors.RetryableError`` / ``PermanentError`` /
``InvalidMessage`` and ``bus/consuming.py`` maps everything to an acknowledgement in one place.
Pure data; no NATS.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    """The message needs nothing more: its effect is durable in the API server (or none was
    needed). The consume loop acks it."""


@dataclasses.dataclass(frozen=True, slots=True)
class RequeueAfter:
    """Look at this key again in ``seconds`` (lifetime expiry, TTL, scale-down delay).

    The consume loop naks the message with that delay, so JetStream redelivers it; keep it
    below the events stream's max age (the watcher's periodic resync is the backstop).
    """

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds >= 0:
            raise ValueError(f"RequeueAfter needs seconds >= 0, not {self.seconds}")


DONE = Done()

Outcome = Done | RequeueAfter
