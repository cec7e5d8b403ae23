"""Which existing claims a sandbox may mount as shared volumes (pure).

``spec.storage.sharedVolumes`` names PersistentVolumeClaims of the sandbox's namespace. A
namespace often holds many users' sandboxes (the API service's), and its claims include
other sandboxes' data (a retained ``/data`` claim keeps its name) and whatever else lives
there: naming a claim must not be enough to mount it. A claim is mounted only when whoever
made it labelled it :data:`labels.SHAREABLE` — ``"true"`` (read-write or read-only mounts)
or ``"read-only"`` (read-only mounts only). Anything else, a missing claim included, is
:attr:`merge.Reason.SHARED_VOLUME_NOT_ALLOWED` naming the entry's ``claimName``: the sandbox
fails before any pod exists, never after it mounted what it should not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lss_common.models import labels
from lss_sandbox_reconciler import merge

_ALLOWED = (labels.SHAREABLE_READ_WRITE, labels.SHAREABLE_READ_ONLY)


def check(
    spec: merge.EffectiveSpec,
    *,
    claims: Mapping[str, dict[str, Any] | None],
    isolated: bool = False,
) -> None:
    """Raise ``SpecConflict`` for the first shared volume the sandbox may not mount.

    ``claims``: claim name → the claim as read (``None``: not found); a name missing from
    the mapping was not read and counts as not found (fail closed). ``isolated``: the pod
    runs in its own isolation namespace, where no claim of anyone else's can be."""
    if isolated and spec.shared_volumes:
        raise merge.SpecConflict(
            "shared volumes cannot be mounted under namespace isolation: a pod mounts only "
            "claims of its own namespace, and a sandbox's isolation namespace holds nothing "
            "but the sandbox's own objects",
            reason=merge.Reason.SHARED_VOLUME_NOT_ALLOWED,
            field="spec.storage.sharedVolumes",
        )
    for index, shared in enumerate(spec.shared_volumes):
        field = f"spec.storage.sharedVolumes[{index}].claimName"
        claim = claims.get(shared.claim_name)
        if claim is None:
            raise merge.SpecConflict(
                f"PersistentVolumeClaim {shared.claim_name!r} not found in the sandbox's namespace",
                reason=merge.Reason.SHARED_VOLUME_NOT_ALLOWED,
                field=field,
            )
        value = ((claim.get("metadata") or {}).get("labels") or {}).get(labels.SHAREABLE)
        if value not in _ALLOWED:
            raise merge.SpecConflict(
                f"PersistentVolumeClaim {shared.claim_name!r} is not shared with sandboxes "
                f"(label {labels.SHAREABLE}={labels.SHAREABLE_READ_WRITE} or "
                f"{labels.SHAREABLE_READ_ONLY}, set by whoever owns its data)",
                reason=merge.Reason.SHARED_VOLUME_NOT_ALLOWED,
                field=field,
            )
        if value == labels.SHAREABLE_READ_ONLY and not shared.read_only:
            raise merge.SpecConflict(
                f"PersistentVolumeClaim {shared.claim_name!r} is shared read-only "
                f"({labels.SHAREABLE}={labels.SHAREABLE_READ_ONLY}); mount it with "
                "readOnly: true",
                reason=merge.Reason.SHARED_VOLUME_NOT_ALLOWED,
                field=f"spec.storage.sharedVolumes[{index}].readOnly",
            )
