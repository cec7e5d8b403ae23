"""The record of a warm pod as its creator stored it (pure).

A claim must know that the pod it adopts is the pod the pool manager created, unchanged:
whoever may create or patch pods in a namespace could otherwise squat a WarmPod's pod name
with a forged owner reference, or change a waiting pod's image or add an ephemeral
container to it. The pod manifest cannot vouch for itself (labels, annotations and owner
references are anyone's to copy), so the pool manager records the pod *as the API server
stored it* — its UID and a hash of its spec from the create's answer, after every mutating
admission — in the WarmPod's status, which only the controllers may write. The pool manager
marks a WarmPod Ready only while its pod still matches the record, and the claim checks the
pod the adoption answers with against it.

Unlike a comparison with the pod the sandbox would get cold, this holds on platforms whose
admission rewrites pods (a mesh's sidecar and volumes, an Autopilot's resources, a policy
engine's labels): whatever they added at creation is in the record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

#: Spec fields the platform changes after creation, not whoever wants to change the pod:
#: the scheduler's binding, and the scheduling gates a queueing controller removes (they
#: only hold a pod back). An ephemeral container, an in-place resize, a new image are changes
#: the record must catch.
_SET_AFTER_CREATION: Final = frozenset({"nodeName", "schedulingGates"})


def stored_spec_hash(pod: Mapping[str, Any]) -> str:
    """sha256 of the pod's spec as stored, without what the platform sets after creation;
    64 hex characters."""
    spec = {
        key: value
        for key, value in (pod.get("spec") or {}).items()
        if key not in _SET_AFTER_CREATION
    }
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def uid_of(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def mismatch(pod: Mapping[str, Any], *, uid: str | None, spec_hash: str | None) -> str | None:
    """Why ``pod`` is not the recorded pod (None: it is); names what differs."""
    name = (pod.get("metadata") or {}).get("name") or "?"
    if not uid or not spec_hash:
        return f"pod {name} has no record of its creation"
    if uid_of(pod) != uid:
        return f"pod {name} is not the pod created for it (UID {uid_of(pod) or '?'}, not {uid})"
    if stored_spec_hash(pod) != spec_hash:
        return f"pod {name}'s spec changed since it was created"
    return None
