"""Owner references of stored objects (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object's controller reference (at most one exists: the API server refuses a
    second); None when nothing controls it."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") is True:
            return dict(ref)
    return None


def is_controlled_by(obj: Mapping[str, Any], *, kind: str, uid: str) -> bool:
    """Whether the object's controller is the ``kind`` object with this UID."""
    controller = controller_of(obj)
    return (
        controller is not None and controller.get("kind") == kind and controller.get("uid") == uid
    )
