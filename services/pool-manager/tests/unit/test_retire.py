"""Which pod of a retired WarmPod the pool manager deletes (``retire.may_delete_pod``)."""

from __future__ import annotations

from typing import Any

import pytest

from lss_pool_manager import retire

WARM_POD_UID = "wp-1"


def _pod(*, controller: dict[str, Any] | None, deleting: bool = False) -> dict[str, Any]:
    refs = [] if controller is None else [{**controller, "controller": True}]
    metadata: dict[str, Any] = {"name": "py-0-abc", "uid": "pod-1", "ownerReferences": refs}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    return {"metadata": metadata}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (None, retire.PodResult.GONE),
        (
            _pod(controller={"kind": "WarmPod", "uid": WARM_POD_UID}, deleting=True),
            retire.PodResult.GONE,
        ),
        (_pod(controller={"kind": "WarmPod", "uid": WARM_POD_UID}), None),
        # Adopted by the sandbox that claimed it: the sandbox's pod now.
        (_pod(controller={"kind": "Sandbox", "uid": WARM_POD_UID}), retire.PodResult.NOT_ITS_OWN),
        (_pod(controller={"kind": "Sandbox", "uid": "sb-1"}), retire.PodResult.NOT_ITS_OWN),
        # Another WarmPod's (a namesake's) or nobody's: never deleted for this one.
        (_pod(controller={"kind": "WarmPod", "uid": "wp-2"}), retire.PodResult.NOT_ITS_OWN),
        (_pod(controller=None), retire.PodResult.NOT_ITS_OWN),
    ],
)
def test_may_delete_pod(pod: dict[str, Any] | None, expected: retire.PodResult | None) -> None:
    assert retire.may_delete_pod(pod, warm_pod_uid=WARM_POD_UID) is expected


def test_a_non_controller_reference_to_the_warm_pod_is_not_enough() -> None:
    pod = {"metadata": {"ownerReferences": [{"kind": "WarmPod", "uid": WARM_POD_UID}]}}
    assert retire.may_delete_pod(pod, warm_pod_uid=WARM_POD_UID) is retire.PodResult.NOT_ITS_OWN
