"""Finalizers as pure patch bodies that carry the resourceVersion they were computed from.

Two patch flavours are offered. A JSON merge patch replaces the whole ``metadata.finalizers``
list; a JSON patch appends or removes one entry by index. Both are only safe because they also
set ``metadata.resourceVersion``: the API server then applies the patch only to that exact
version and answers 409 Conflict otherwise, so a finalizer another writer added or removed
meanwhile is never lost or removed twice. (Without a resourceVersion the server would retry
the patch on whatever version is current.)

Each builder returns ``None`` when there is nothing to do, so callers skip the write.

Pure: no I/O; works on the plain values (``finalizers``, ``resource_version``) so that it fits
raw dicts and decoded models alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MergePatch = dict[str, Any]
JsonPatch = list[dict[str, Any]]


def has_finalizer(finalizers: Sequence[str] | None, *, finalizer: str) -> bool:
    """Whether ``finalizer`` is in ``metadata.finalizers``."""
    return finalizer in (finalizers or ())


def add_finalizer_merge_patch(
    finalizers: Sequence[str] | None, *, finalizer: str, resource_version: str
) -> MergePatch | None:
    """A merge patch appending ``finalizer``; ``None`` if it is already present."""
    _check(finalizer=finalizer, resource_version=resource_version)
    current = list(finalizers or ())
    if finalizer in current:
        return None
    return _merge_patch([*current, finalizer], resource_version=resource_version)


def remove_finalizer_merge_patch(
    finalizers: Sequence[str] | None, *, finalizer: str, resource_version: str
) -> MergePatch | None:
    """A merge patch dropping every occurrence of ``finalizer``; ``None`` if it is absent."""
    _check(finalizer=finalizer, resource_version=resource_version)
    current = list(finalizers or ())
    if finalizer not in current:
        return None
    return _merge_patch([f for f in current if f != finalizer], resource_version=resource_version)


def add_finalizer_json_patch(
    finalizers: Sequence[str] | None, *, finalizer: str, resource_version: str
) -> JsonPatch | None:
    """A JSON patch appending ``finalizer``; ``None`` if it is already present."""
    _check(finalizer=finalizer, resource_version=resource_version)
    current = list(finalizers or ())
    if finalizer in current:
        return None
    change: dict[str, Any]
    if current:
        change = {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}
    else:
        # "/-" needs an existing array; an absent or empty list is written whole.
        change = {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}
    return [_resource_version_op(resource_version), change]


def remove_finalizer_json_patch(
    finalizers: Sequence[str] | None, *, finalizer: str, resource_version: str
) -> JsonPatch | None:
    """A JSON patch removing every occurrence of ``finalizer`` by index; ``None`` if absent."""
    _check(finalizer=finalizer, resource_version=resource_version)
    current = list(finalizers or ())
    indexes = [i for i, f in enumerate(current) if f == finalizer]
    if not indexes:
        return None
    # Highest index first, so that each removal leaves the remaining indexes valid.
    removals = [{"op": "remove", "path": f"/metadata/finalizers/{i}"} for i in reversed(indexes)]
    return [_resource_version_op(resource_version), *removals]


def _merge_patch(finalizers: list[str], *, resource_version: str) -> MergePatch:
    # An empty list, not null: null would also work, but [] reads the same on every server.
    return {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}


def _resource_version_op(resource_version: str) -> dict[str, Any]:
    return {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}


def _check(*, finalizer: str, resource_version: str) -> None:
    if not finalizer:
        raise ValueError("finalizer must not be empty")
    if not resource_version:
        raise ValueError("a finalizer patch needs the resourceVersion it was computed from")
