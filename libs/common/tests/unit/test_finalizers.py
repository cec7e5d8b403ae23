"""Finalizer patches: merge and JSON patch, add and remove, present and absent (None = no
write), empty list, duplicates, and the resourceVersion always carried. Hypothesis: applying
a JSON patch to the metadata gives the same finalizers as the merge patch."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.logic import finalizers

F = "llmsafespace.dev/cleanup"


def test_has_finalizer() -> None:
    assert finalizers.has_finalizer(["a", F], finalizer=F)
    assert not finalizers.has_finalizer(None, finalizer=F)
    assert not finalizers.has_finalizer(["a"], finalizer=F)


def test_add_merge_patch_appends_and_carries_resource_version() -> None:
    assert finalizers.add_finalizer_merge_patch(["other"], finalizer=F, resource_version="42") == {
        "metadata": {"finalizers": ["other", F], "resourceVersion": "42"}
    }
    assert finalizers.add_finalizer_merge_patch(None, finalizer=F, resource_version="1") == {
        "metadata": {"finalizers": [F], "resourceVersion": "1"}
    }


def test_add_when_present_is_no_write() -> None:
    assert finalizers.add_finalizer_merge_patch([F], finalizer=F, resource_version="1") is None
    assert finalizers.add_finalizer_json_patch([F], finalizer=F, resource_version="1") is None


def test_remove_merge_patch_drops_every_occurrence() -> None:
    assert finalizers.remove_finalizer_merge_patch(
        [F, "other", F], finalizer=F, resource_version="9"
    ) == {"metadata": {"finalizers": ["other"], "resourceVersion": "9"}}
    assert finalizers.remove_finalizer_merge_patch([F], finalizer=F, resource_version="9") == {
        "metadata": {"finalizers": [], "resourceVersion": "9"}
    }


def test_remove_when_absent_is_no_write() -> None:
    assert finalizers.remove_finalizer_merge_patch(None, finalizer=F, resource_version="1") is None
    assert finalizers.remove_finalizer_json_patch(["x"], finalizer=F, resource_version="1") is None


def test_json_patches() -> None:
    rv = {"op": "replace", "path": "/metadata/resourceVersion", "value": "5"}
    assert finalizers.add_finalizer_json_patch(None, finalizer=F, resource_version="5") == [
        rv,
        {"op": "add", "path": "/metadata/finalizers", "value": [F]},
    ]
    assert finalizers.add_finalizer_json_patch(["a"], finalizer=F, resource_version="5") == [
        rv,
        {"op": "add", "path": "/metadata/finalizers/-", "value": F},
    ]
    assert finalizers.remove_finalizer_json_patch(
        [F, "a", F], finalizer=F, resource_version="5"
    ) == [
        rv,
        {"op": "remove", "path": "/metadata/finalizers/2"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]


@pytest.mark.parametrize(
    ("finalizer", "resource_version", "match"),
    [("", "1", "empty"), (F, "", "resourceVersion")],
)
def test_missing_inputs_are_refused(finalizer: str, resource_version: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        finalizers.add_finalizer_merge_patch(
            [], finalizer=finalizer, resource_version=resource_version
        )


def apply_json_patch(metadata: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """A minimal RFC 6902 applier for the ops our builders emit."""
    result = {**metadata, "finalizers": list(metadata.get("finalizers") or [])}
    for op in patch:
        parts = op["path"].split("/")[2:]
        if parts == ["resourceVersion"]:
            result["resourceVersion"] = op["value"]
        elif parts == ["finalizers"]:
            result["finalizers"] = list(op["value"])
        elif op["op"] == "add" and parts == ["finalizers", "-"]:
            result["finalizers"].append(op["value"])
        elif op["op"] == "remove":
            del result["finalizers"][int(parts[1])]
        else:
            raise AssertionError(f"unexpected op {op}")
    return result


_names = st.sampled_from([F, "a/x", "b/y", "c/z"])


@given(current=st.lists(_names, max_size=6), finalizer=_names, add=st.booleans())
def test_json_and_merge_patches_agree(current: list[str], finalizer: str, add: bool) -> None:
    if add:
        merge = finalizers.add_finalizer_merge_patch(
            current, finalizer=finalizer, resource_version="7"
        )
        json_patch = finalizers.add_finalizer_json_patch(
            current, finalizer=finalizer, resource_version="7"
        )
    else:
        merge = finalizers.remove_finalizer_merge_patch(
            current, finalizer=finalizer, resource_version="7"
        )
        json_patch = finalizers.remove_finalizer_json_patch(
            current, finalizer=finalizer, resource_version="7"
        )
    assert (merge is None) == (json_patch is None)
    if merge is None or json_patch is None:
        assert (finalizer in current) == add
        return
    patched = apply_json_patch({"finalizers": current, "resourceVersion": "1"}, json_patch)
    assert patched["finalizers"] == merge["metadata"]["finalizers"]
    assert patched["resourceVersion"] == merge["metadata"]["resourceVersion"] == "7"
    assert (finalizer in patched["finalizers"]) == add
