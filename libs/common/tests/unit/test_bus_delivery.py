"""``consuming.is_first_delivery``: a redelivery is never a first delivery, riders count only
when asked, and outside a consume loop a handler handles a first delivery, alone."""

from __future__ import annotations

import pytest

from lss_common.bus import consuming
from lss_common.testing import bus


@pytest.mark.parametrize(
    ("num_delivered", "riders", "first", "first_alone"),
    [(1, 0, True, True), (1, 2, True, False), (2, 0, False, False), (3, 1, False, False)],
)
def test_is_first_delivery(num_delivered: int, riders: int, first: bool, first_alone: bool) -> None:
    with bus.delivering(num_delivered=num_delivered, riders=riders) as delivery:
        assert consuming.current_delivery() is delivery
        assert consuming.is_first_delivery() is first
        assert consuming.is_first_delivery(alone=True) is first_alone


def test_outside_a_consume_loop_it_is_a_first_delivery_alone() -> None:
    assert consuming.is_first_delivery()
    assert consuming.is_first_delivery(alone=True)


def test_a_handed_over_copy_is_a_re_check_never_a_first_delivery() -> None:
    """A copy (``bus.handover``) is delivered once, but it carries a re-check a pass asked
    for: never a new object's first hint, and its holder's sequence is covered."""
    with bus.delivering(num_delivered=1, handed_over_from=41) as delivery:
        assert delivery.redelivered
        assert not consuming.is_first_delivery()
        assert consuming.current_covered_seqs() == (41,)


def test_covered_seqs_are_the_riders_and_the_messages_copied() -> None:
    delivery = consuming.Delivery(
        subject="lss.evt.sandbox.ns.a",
        stream="LSS_EVENTS",
        stream_seq=9,
        num_delivered=1,
        msg_id=None,
        riders=2,
        rider_seqs=(7, 8),
        handed_over_from=(3,),
    )
    assert delivery.covered_seqs == (7, 8, 3)
    assert not delivery.redelivered
    assert consuming.current_covered_seqs() == ()
