"""Handing a requested re-check over to a fresh message before the stream drops the old one.

A ``RequeueAfter`` is a delayed nak: the server keeps the message and delivers it again when
the delay ends. The stream still deletes it at its max age (pending nak or not), and with a
finite ``max_deliver`` the server stops delivering it after that many deliveries (each
re-check is one). A message that holds a key's re-checks one after another (a WarmPod's
heartbeat, a sandbox's lifetime end or egress refresh, a pool's scale-down delay) would lose
them then, and the key would wait for the periodic resync.

So when a re-check would come after the message's end, the consumer publishes a copy (same
subject, payload and headers, marked with :data:`HEADER` = the stream sequence it replaces)
and acks the original. The copy is delivered at once; its pass asks for the re-check again,
now from a message that has the stream's whole max age ahead of it. Handlers see the copy as
a redelivery (never skippable as an own write, never a new object's first hint), and its
``Delivery.handed_over_from`` names the sequence it replaces, so a service that books which
message holds a key's re-check recognises its holder in it. The copy's ``Nats-Msg-Id`` is
derived from the original's stream sequence: a hand-over repeated after a lost ack is
stored once.

A re-check asked for further ahead than a fresh message can wait (a delay beyond the max
age) is nak'ed for as long as the message lives; its pass then asks again for the rest.
Pure decision (:func:`plan`); the consumer does the publishing.
"""

from __future__ import annotations

import dataclasses

HEADER = "Lss-Handed-Over-From"
"""On a copy: the stream sequence of the message it replaces."""

MARGIN_SECONDS = 600.0
"""How long before the message's end a re-check must be due to stay on it: covers a
consumer that is busy when the delay ends (the redelivery waits for a pull) and clock skew
between the service and the server. Never more than a quarter of the max age."""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """Nak with ``delay_seconds``, or (``hand_over``) publish a copy and ack the original."""

    delay_seconds: float
    hand_over: bool = False


def margin_seconds(*, max_age_seconds: float, ack_wait_seconds: float) -> float:
    """The safety margin before a message's end, for a stream of ``max_age_seconds``."""
    return min(max_age_seconds / 4, max(MARGIN_SECONDS, 2 * ack_wait_seconds))


def plan(
    *,
    delay_seconds: float,
    age_seconds: float,
    num_delivered: int,
    max_age_seconds: float | None,
    max_deliver: int,
    ack_wait_seconds: float,
) -> Plan:
    """How to settle a message whose pass asked for a re-check after ``delay_seconds``.

    ``max_age_seconds`` None or 0: the stream keeps messages for ever. ``max_deliver`` -1 (or
    0): delivered for ever. The message is handed over when the re-check would come after
    the message's end (less the margin), or on its last allowed delivery but one (with a
    ``max_deliver`` of 3 or more: below that a copy would be handed over on each pass);
    unless it is young (less than half the max age): then the delay itself is beyond what
    any message can wait, and it is shortened to the message's remaining life."""
    delay = max(0.0, delay_seconds)
    if max_deliver > 2 and num_delivered >= max_deliver - 1:
        return Plan(delay, hand_over=True)
    if not max_age_seconds:
        return Plan(delay)
    margin = margin_seconds(max_age_seconds=max_age_seconds, ack_wait_seconds=ack_wait_seconds)
    life_left = max_age_seconds - margin - max(0.0, age_seconds)
    if delay <= life_left:
        return Plan(delay)
    if age_seconds < max_age_seconds / 2:
        return Plan(max(0.0, life_left))
    return Plan(delay, hand_over=True)


def copy_msg_id(*, stream: str, stream_seq: int) -> str:
    """The copy's ``Nats-Msg-Id``: one per original message."""
    return f"handover/{stream}/{stream_seq}"


def handed_over_from(headers: dict[str, str] | None) -> int | None:
    """The stream sequence a copy replaces (None: not a copy, or an unreadable header)."""
    value = (headers or {}).get(HEADER)
    if value is None:
        return None
    try:
        seq = int(value)
    except ValueError:
        return None
    return seq if seq > 0 else None
