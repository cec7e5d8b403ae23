"""Which of a pool's pods are orphans: their WarmPod is gone (pure).

A warm pod goes with its WarmPod (``retire``), and the garbage collector follows the owner
reference as a second line. A pod both missed (the pool manager stopped between the
WarmPod's deletion and its pod's, and kube-controller-manager's collector missed the
WarmPod's deletion, as it can around an API server restart) would run on, counted by no
pool. ``orphan_sweeping`` looks for such pods once per ``pool_resync_seconds``.

A pod is a candidate when its controller is a WarmPod whose UID the pool's WarmPod list does
not have, and it is not being deleted. That list may be older than the pod list (the pass
reads the watch cache), so a candidate is an orphan only once its WarmPod, read again by
name, is absent or a namesake with another UID. A claimed pod's controller is its Sandbox:
never a candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from lss_common.logic import owners
from lss_common.models import warmpod as warmpod_model


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A pod whose WarmPod the pool's list did not show."""

    pod_name: str
    pod_uid: str
    pod_resource_version: str
    warm_pod_name: str
    warm_pod_uid: str


def candidates(
    pods: Iterable[Mapping[str, Any]], *, warm_pod_uids: Collection[str]
) -> list[Candidate]:
    """The pods controlled by a WarmPod that is not in ``warm_pod_uids``, not being deleted."""
    found: list[Candidate] = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            continue
        controller = owners.controller_of(pod)
        if controller is None or controller.get("kind") != warmpod_model.KIND:
            continue
        uid = str(controller.get("uid") or "")
        if not uid or uid in warm_pod_uids:
            continue
        found.append(
            Candidate(
                pod_name=str(metadata.get("name") or ""),
                pod_uid=str(metadata.get("uid") or ""),
                pod_resource_version=str(metadata.get("resourceVersion") or ""),
                warm_pod_name=str(controller.get("name") or ""),
                warm_pod_uid=uid,
            )
        )
    return found


def is_orphan(candidate: Candidate, *, warm_pod: warmpod_model.WarmPod | None) -> bool:
    """Whether the candidate's WarmPod, read again by name, is gone (absent, or a namesake)."""
    return warm_pod is None or warm_pod.metadata.uid != candidate.warm_pod_uid
