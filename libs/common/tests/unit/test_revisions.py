"""WrittenRevisions: a bounded set of the resourceVersions this process wrote."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.logic import revisions


def test_remembers_what_was_added_and_ignores_empty() -> None:
    written = revisions.WrittenRevisions(capacity=4)
    written.add("10")
    written.add(None)
    written.add("")
    assert "10" in written
    assert "11" not in written
    assert None not in written
    assert len(written) == 1


def test_forgets_the_oldest_first() -> None:
    written = revisions.WrittenRevisions(capacity=2)
    for version in ("1", "2", "1", "3"):  # a repeat does not refresh or duplicate
        written.add(version)
    assert "1" not in written
    assert {"2", "3"} <= {v for v in ("1", "2", "3") if v in written}
    assert len(written) == 2


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        revisions.WrittenRevisions(capacity=0)


@given(st.lists(st.integers(min_value=1, max_value=50).map(str)), st.integers(1, 8))
def test_holds_exactly_the_newest_first_insertions(versions: list[str], capacity: int) -> None:
    written = revisions.WrittenRevisions(capacity=capacity)
    model: list[str] = []  # versions in first-insertion order, oldest evicted first
    for version in versions:
        written.add(version)
        if version not in model:
            model.append(version)
            model = model[-capacity:]
    assert len(written) == len(model)
    assert all(version in written for version in model)
    assert not any(version in written for version in set(versions) - set(model))
