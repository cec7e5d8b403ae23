"""settings: safe defaults, LSS_POOL__* and the shared LSS_SANDBOX__* override them, the
generated reference is current; requeue: one delayed redelivery per key at a time."""

from __future__ import annotations

import pathlib

import pydantic
import pytest

from lss_common import settings_doc
from lss_pool_manager import requeue, settings

TITLE = "pool-manager configuration"
CONFIG_DOC = pathlib.Path(__file__).resolve().parents[4] / "docs" / "pool-manager-configuration.md"


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = settings.PoolManagerSettings()
    assert loaded.service_name == "pool-manager"
    assert loaded.pool.force_delete_with_assigned_pods is False
    assert loaded.sandbox.runtime_class_high == "gvisor"
    monkeypatch.setenv("LSS_POOL__CREATE_BURST", "3")
    monkeypatch.setenv("LSS_SANDBOX__RUNTIME_CLASS_HIGH", "kata")
    loaded = settings.PoolManagerSettings()
    assert loaded.pool.create_burst == 3
    assert loaded.sandbox.runtime_class_high == "kata"
    with pytest.raises(pydantic.ValidationError):
        settings.PoolOptions(create_rate_per_second=0)


def test_configuration_reference_is_current() -> None:
    expected = settings_doc.render(settings.PoolManagerSettings, title=TITLE)
    assert CONFIG_DOC.read_text() == expected, (
        "regenerate: uv run python -m lss_common.settings_doc --settings "
        f"lss_pool_manager.settings:PoolManagerSettings --title '{TITLE}' --output {CONFIG_DOC}"
    )


def test_requeue_book_keeps_one_scheduled_message_per_key() -> None:
    book = requeue.RequeueBook()
    assert book.decide("k", after_seconds=10, now=0) == 10
    # later hints with a deadline no earlier are acked: the first message covers them
    assert book.decide("k", after_seconds=15, now=2) is None
    assert book.decide("k", after_seconds=None, now=3) is None
    # an earlier deadline takes over
    assert book.decide("k", after_seconds=1, now=4) == 1
    # the scheduled message comes back at its deadline and re-schedules
    assert book.decide("k", after_seconds=10, now=5) == 10
    assert book.decide("other", after_seconds=10, now=5) == 10
    book.forget("k")
    assert book.decide("k", after_seconds=20, now=6) == 20


def test_the_holder_coming_back_early_keeps_its_re_check() -> None:
    """The message holding a key's re-check comes back before it is due (redelivered after
    a disconnect): it is that very message, so it re-schedules instead of being acked as
    covered by its own entry (which would lose the re-check)."""
    book = requeue.RequeueBook()
    assert book.decide("k", after_seconds=120, now=0, stream_seq=7) == 120
    # another message of the key, no earlier: covered by the holder
    assert book.decide("k", after_seconds=120, now=10, stream_seq=8) is None
    # the holder itself, early: re-scheduled from now
    assert book.decide("k", after_seconds=120, now=30, stream_seq=7) == 120
    assert book.due["k"] == (150, 7)


def test_the_holder_riding_on_another_message_keeps_its_re_check() -> None:
    book = requeue.RequeueBook()
    assert book.decide("k", after_seconds=120, now=0, stream_seq=7) == 120
    assert book.decide("k", after_seconds=120, now=10, stream_seq=8) is None
    # the holder, back early, rides on message 9: 9 takes the re-check over
    assert book.decide("k", after_seconds=120, now=30, stream_seq=9, covered_seqs=(7,)) == 120
    assert book.due["k"] == (150, 9)
