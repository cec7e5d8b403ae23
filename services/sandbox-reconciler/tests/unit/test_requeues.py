"""handler.Requeues: one delayed re-check per sandbox is held; later hints are acked, an
earlier re-check is still requeued, the holder may requeue itself, records expire."""

from __future__ import annotations

from lss_sandbox_reconciler import handler

KEY = ("team-a", "box")


def test_one_holder_per_key_later_hints_are_acked() -> None:
    requeues = handler.Requeues()
    assert requeues.decide(KEY, delay_seconds=300, stream_seq=1, now=0.0)
    assert not requeues.decide(KEY, delay_seconds=299, stream_seq=2, now=1.0)
    assert not requeues.decide(KEY, delay_seconds=None, stream_seq=3, now=2.0)
    # Another sandbox is independent.
    assert requeues.decide(("team-a", "other"), delay_seconds=300, stream_seq=4, now=2.0)


def test_an_earlier_recheck_is_requeued_too() -> None:
    requeues = handler.Requeues()
    assert requeues.decide(KEY, delay_seconds=300, stream_seq=1, now=0.0)
    assert requeues.decide(KEY, delay_seconds=10, stream_seq=2, now=1.0)


def test_the_holder_requeues_itself_and_records_expire() -> None:
    requeues = handler.Requeues()
    assert requeues.decide(KEY, delay_seconds=5, stream_seq=1, now=0.0)
    assert requeues.decide(KEY, delay_seconds=5, stream_seq=1, now=5.0)
    # The holder finished (no re-check needed): the record is gone.
    assert not requeues.decide(KEY, delay_seconds=None, stream_seq=1, now=10.0)
    assert requeues.decide(KEY, delay_seconds=5, stream_seq=9, now=11.0)
    # Past its due time a record suppresses nothing.
    assert requeues.decide(KEY, delay_seconds=50, stream_seq=10, now=17.0)


def test_the_holder_coming_back_early_riding_on_another_hint_keeps_its_re_check() -> None:
    """The holder is redelivered early (a disconnect past ack_wait) and rides along on
    another hint's pass: that pass takes the re-check over instead of acking it as covered
    by the holder's own record."""
    requeues = handler.Requeues()
    assert requeues.decide(KEY, delay_seconds=300, stream_seq=1, now=0.0)
    assert not requeues.decide(KEY, delay_seconds=300, stream_seq=2, now=10.0)
    assert requeues.decide(KEY, delay_seconds=300, stream_seq=3, now=20.0, covered_seqs=(1,))
    # The new holder is message 3.
    assert not requeues.decide(KEY, delay_seconds=300, stream_seq=4, now=30.0)
    assert requeues.decide(KEY, delay_seconds=300, stream_seq=5, now=40.0, covered_seqs=(3,))


def test_released_keys_are_bounded_oldest_first() -> None:
    released = handler.Released(capacity=2)
    released.add(("ns", "a"))
    released.add(("ns", "b"))
    released.add(("ns", "a"))  # refreshed: now the newest
    released.add(("ns", "c"))
    assert ("ns", "a") in released
    assert ("ns", "b") not in released
    assert ("ns", "c") in released
    released.discard(("ns", "a"))
    assert ("ns", "a") not in released
