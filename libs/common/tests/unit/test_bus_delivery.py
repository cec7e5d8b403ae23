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
