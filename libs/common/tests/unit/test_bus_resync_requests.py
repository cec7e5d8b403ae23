"""Which declarations of a durable consumer ask the watchers for a resync (pure).

Matrix: every ``Declared`` value. Created and re-created consumers start empty; an in-place
update may have widened the filter; an unchanged consumer kept its hints while away.
"""

from __future__ import annotations

import pytest

from lss_common.bus import resync_requests, topology


@pytest.mark.parametrize(
    ("declared", "needed"),
    [
        (topology.Declared.CREATED, True),
        (topology.Declared.RECREATED, True),
        (topology.Declared.UPDATED, True),
        (topology.Declared.UNCHANGED, False),
    ],
)
def test_is_needed(declared: topology.Declared, needed: bool) -> None:
    assert resync_requests.is_needed(declared) is needed
