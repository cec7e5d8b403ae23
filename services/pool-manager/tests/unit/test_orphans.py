"""Which of a pool's pods are orphans (``orphans``)."""

from __future__ import annotations

from typing import Any

from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_pool_manager import orphans


def _pod(
    name: str, *, kind: str | None = "WarmPod", owner_uid: str = "wp-1", deleting: bool = False
) -> dict[str, Any]:
    refs = (
        []
        if kind is None
        else [{"kind": kind, "name": f"owner-of-{name}", "uid": owner_uid, "controller": True}]
    )
    metadata: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "resourceVersion": "7",
        "ownerReferences": refs,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    return {"metadata": metadata}


def _warm_pod(uid: str) -> warmpod_model.WarmPod:
    return warmpod_model.WarmPod(
        metadata=meta.ObjectMeta(name="py-0", namespace="ns", uid=uid),
        spec=warmpod_model.WarmPodSpec(
            pool_ref=warmpod_model.PoolRef(name="py"),
            runtime="python:3.11",
            security_level="standard",
            resources=warmpod_model.WarmPodResources(
                cpu="500m", memory="512Mi", ephemeral_storage="1Gi"
            ),
        ),
    )


def test_candidates_are_pods_of_warm_pods_the_list_does_not_have() -> None:
    pods = [
        _pod("listed", owner_uid="wp-1"),
        _pod("unlisted", owner_uid="wp-2"),
        _pod("unlisted-deleting", owner_uid="wp-3", deleting=True),
        _pod("claimed", kind="Sandbox", owner_uid="sb-1"),
        _pod("uncontrolled", kind=None),
    ]
    assert orphans.candidates(pods, warm_pod_uids={"wp-1"}) == [
        orphans.Candidate(
            pod_name="unlisted",
            pod_uid="uid-unlisted",
            pod_resource_version="7",
            warm_pod_name="owner-of-unlisted",
            warm_pod_uid="wp-2",
        )
    ]


def test_no_candidates_when_every_warm_pod_is_listed() -> None:
    pods = [_pod("a", owner_uid="wp-1"), _pod("b", owner_uid="wp-2")]
    assert orphans.candidates(pods, warm_pod_uids={"wp-1", "wp-2"}) == []
    assert orphans.candidates([], warm_pod_uids=set()) == []


def test_a_candidate_is_an_orphan_only_if_its_warm_pod_is_gone_when_read_again() -> None:
    (candidate,) = orphans.candidates([_pod("p", owner_uid="wp-2")], warm_pod_uids=set())
    assert orphans.is_orphan(candidate, warm_pod=None)
    # A namesake in the same slot (the pool refilled it): still an orphan.
    assert orphans.is_orphan(candidate, warm_pod=_warm_pod("wp-9"))
    # The list was older than the WarmPod: not an orphan.
    assert not orphans.is_orphan(candidate, warm_pod=_warm_pod("wp-2"))
