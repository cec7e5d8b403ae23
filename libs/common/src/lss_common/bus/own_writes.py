"""Whether a hint only announces a write this process made itself (then it needs no pass).

A service that records the resourceVersions of its writes (``lss_common.logic.revisions``) can
acknowledge the hints those writes cause without a pass: the pass that made the write
planned it from a fresh read, and a pass that fails is retried by its own message, never by
the hint of its write. The rules, for every service:

- only a create or an update (``ADDED``/``MODIFIED``), of the key's object or of a child
  (``ChangeEvent.child``) — never a deletion (a pass waiting for something to be gone learns
  it from that hint) and never a resync hint (the safety net for anything lost);
- only on its first delivery — a redelivered hint is a re-check a pass asked for
  (``RequeueAfter``) or a retry;
- only when no other hint rides along on it (``Delivery.riders``): those are acknowledged
  with it and announce changes this process did not make.

Pure apart from reading the current delivery.
"""

from __future__ import annotations

from lss_common.bus import consuming
from lss_common.logic import revisions
from lss_common.models import messages


def is_own_write(
    event: messages.ChangeEvent,
    *,
    written: revisions.WrittenRevisions | None,
    riders: int = 0,
    num_delivered: int = 1,
) -> bool:
    """The rules above."""
    change = event.child
    version = change.resource_version if change is not None else event.resource_version
    event_type = change.event_type if change is not None else event.event_type
    return (
        written is not None
        and riders == 0
        and num_delivered == 1
        and event_type in ("ADDED", "MODIFIED")
        and version in written
    )


def is_current_own_write(
    event: messages.ChangeEvent,
    *,
    written: revisions.WrittenRevisions | None,
) -> bool:
    """:func:`is_own_write` for the delivery being handled (outside a consume loop: a first
    delivery with nothing riding along)."""
    try:
        delivery = consuming.current_delivery()
    except RuntimeError:
        riders, delivered = 0, 1
    else:
        riders, delivered = delivery.riders, delivery.num_delivered
    return is_own_write(
        event,
        written=written,
        riders=riders,
        num_delivered=delivered,
    )
