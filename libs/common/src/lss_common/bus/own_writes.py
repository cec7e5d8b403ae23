"""Whether a hint only announces a write this process made itself (then it needs no pass).

A service that records the resourceVersions of its writes (``lss_common.logic.revisions``) can
acknowledge the hints those writes cause without a pass: the pass that made the write
planned it from a fresh read, and a pass that fails is retried by its own message, never by
the hint of its write. The rules, for every service:

- only a create or an update (``ADDED``/``MODIFIED``), of the key's object or of a child
  (``ChangeEvent.child``) — never a deletion (a pass waiting for something to be gone learns
  it from that hint) and never a resync hint (the safety net for anything lost);
- only on its first delivery, with no redelivered hint riding along — a redelivered hint
  is a re-check a pass asked for (``RequeueAfter``, or its copy: ``handover.py``) or a
  retry;
- only when every hint riding along on it (``Delivery.rider_data``) announces an own write
  too: they are acknowledged with it, and one announcing someone else's change needs the
  pass (a pod that became Ready while our status write's hint was queued).

Pure apart from reading the current delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lss_common import errors
from lss_common.bus import codec, consuming
from lss_common.logic import revisions
from lss_common.models import messages


def is_own_write(
    event: messages.ChangeEvent,
    *,
    written: revisions.WrittenRevisions | None,
    redelivered: bool = False,
    riders: Sequence[messages.ChangeEvent | None] = (),
) -> bool:
    """The rules above. ``riders``: the hints riding along (None: one that cannot be read);
    the hint is skipped only if every one of them announces an own write too."""
    return (
        written is not None
        and not redelivered
        and _announces_own_write(event, written=written)
        and all(
            rider is not None and _announces_own_write(rider, written=written) for rider in riders
        )
    )


def _announces_own_write(
    event: messages.ChangeEvent, *, written: revisions.WrittenRevisions
) -> bool:
    change = event.child
    version = change.resource_version if change is not None else event.resource_version
    event_type = change.event_type if change is not None else event.event_type
    return event_type in ("ADDED", "MODIFIED") and version in written


def is_current_own_write(
    event: messages.ChangeEvent,
    *,
    written: revisions.WrittenRevisions | None,
    may_skip: Callable[[messages.ChangeEvent], bool] = lambda _: True,
) -> bool:
    """:func:`is_own_write` for the delivery being handled (outside a consume loop: a first
    delivery with nothing riding along); ``may_skip`` is the service's own restriction,
    applied to the hint and to every rider."""
    if written is None or not may_skip(event):
        return False
    try:
        delivery = consuming.current_delivery()
    except RuntimeError:
        return is_own_write(event, written=written)
    if delivery.rider_redelivered:
        return False  # a re-check riding along: its pass is due
    riders = [_decoded(data) for data in delivery.rider_data]
    if any(rider is not None and not may_skip(rider) for rider in riders):
        return False
    return is_own_write(event, written=written, redelivered=delivery.redelivered, riders=riders)


def is_current_delivery_skippable(
    event: messages.ChangeEvent, *, skip: Callable[[messages.ChangeEvent], bool]
) -> bool:
    """Whether the delivery being handled needs no pass because ``skip`` holds for the hint
    and for every hint riding along (one that cannot be read never does), on its first
    delivery: a redelivery is a re-check a pass asked for, or a retry. For a service's own
    kinds of hint that need no pass, as :func:`is_current_own_write` is for own writes."""
    if not skip(event):
        return False
    try:
        delivery = consuming.current_delivery()
    except RuntimeError:
        return True
    if delivery.redelivered or delivery.rider_redelivered:
        return False
    riders = [_decoded(data) for data in delivery.rider_data]
    return all(rider is not None and skip(rider) for rider in riders)


def current_delivery_announces(
    event: messages.ChangeEvent, *, what: Callable[[messages.ChangeEvent], bool]
) -> bool:
    """Whether ``what`` holds for the hint or for any hint riding along (one that cannot be
    read counts: it may announce anything). The riders are settled with this pass, so a
    pass that must do more for some hints (a child's deletion) asks here, not of the first
    hint alone."""
    if what(event):
        return True
    try:
        delivery = consuming.current_delivery()
    except RuntimeError:
        return False
    riders = [_decoded(data) for data in delivery.rider_data]
    return any(rider is None or what(rider) for rider in riders)


def _decoded(data: bytes) -> messages.ChangeEvent | None:
    try:
        return codec.decode(data, message_type=messages.ChangeEvent)
    except errors.InvalidMessage:
        return None
