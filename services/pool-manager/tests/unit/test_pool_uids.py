"""``pool_uids``: a pool's state is dropped when a hint finds it gone, or under a new UID."""

from __future__ import annotations

from lss_pool_manager import pool_uids


def test_the_uid_to_drop() -> None:
    uids = pool_uids.PoolUids()
    assert uids.seen("ns/py", "uid-1") is None
    assert uids.seen("ns/py", "uid-1") is None  # the same pool again
    # Deleted and re-created under its name (the deletion ran on another replica).
    assert uids.seen("ns/py", "uid-2") == "uid-1"
    assert uids.gone("ns/py") == "uid-2"
    assert uids.gone("ns/py") is None
    assert len(uids) == 0
