"""Owner references (``lss_common.logic.owners``)."""

from __future__ import annotations

from typing import Any

import pytest

from lss_common.logic import owners


def _obj(*refs: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "x", "ownerReferences": list(refs)}}


OWNER = {"kind": "WarmPool", "uid": "u1", "name": "p"}
CONTROLLER = {"kind": "WarmPod", "uid": "u2", "name": "w", "controller": True}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({}, None),
        ({"metadata": {}}, None),
        ({"metadata": {"ownerReferences": None}}, None),
        (_obj(OWNER), None),
        (_obj({**OWNER, "controller": False}), None),
        (_obj(OWNER, CONTROLLER), CONTROLLER),
        (_obj(CONTROLLER), CONTROLLER),
    ],
)
def test_controller_of(obj: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert owners.controller_of(obj) == expected


def test_controller_of_returns_a_copy() -> None:
    obj = _obj(CONTROLLER)
    found = owners.controller_of(obj)
    assert found is not None
    assert found is not obj["metadata"]["ownerReferences"][0]


@pytest.mark.parametrize(
    ("kind", "uid", "expected"),
    [("WarmPod", "u2", True), ("WarmPod", "u1", False), ("Sandbox", "u2", False)],
)
def test_is_controlled_by(kind: str, uid: str, expected: bool) -> None:
    assert owners.is_controlled_by(_obj(OWNER, CONTROLLER), kind=kind, uid=uid) is expected
    assert owners.is_controlled_by(_obj(OWNER), kind=kind, uid=uid) is False
