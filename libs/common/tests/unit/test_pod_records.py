"""pod_records: the hash of a pod's stored spec ignores the scheduler's binding and key
order, and changes with anything else; the mismatch names what differs."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lss_common.logic import pod_records

POD: dict[str, Any] = {
    "metadata": {"name": "py-0-abc", "uid": "u-1"},
    "spec": {
        "containers": [{"name": "sandbox", "image": "python:3.11"}],
        "automountServiceAccountToken": False,
    },
}
HASH = pod_records.stored_spec_hash(POD)


def test_binding_and_key_order_leave_the_hash_alone() -> None:
    bound = copy.deepcopy(POD)
    bound["spec"] = {"nodeName": "node-1", **dict(reversed(list(bound["spec"].items())))}
    gated = copy.deepcopy(POD)
    gated["spec"]["schedulingGates"] = [{"name": "kueue.x-k8s.io/admission"}]
    assert pod_records.stored_spec_hash(gated) == HASH  # a queue lifts its gate later
    assert pod_records.stored_spec_hash(bound) == HASH
    assert len(HASH) == 64
    assert pod_records.mismatch(bound, uid="u-1", spec_hash=HASH) is None


@given(
    path=st.sampled_from(["image", "name", "ephemeral", "token"]),
    value=st.text(min_size=1, max_size=8),
)
def test_any_other_change_is_found(path: str, value: str) -> None:
    changed = copy.deepcopy(POD)
    spec = changed["spec"]
    if path == "image":
        spec["containers"][0]["image"] = "python:3.11-" + value
    elif path == "name":
        spec["containers"][0]["name"] = "sandbox-" + value
    elif path == "ephemeral":
        spec["ephemeralContainers"] = [{"name": value, "image": "busybox"}]
    else:
        spec["automountServiceAccountToken"] = True
    assert pod_records.stored_spec_hash(changed) != HASH
    assert pod_records.mismatch(changed, uid="u-1", spec_hash=HASH) == (
        "pod py-0-abc's spec changed since it was created"
    )


def test_no_record_or_another_uid_is_named() -> None:
    assert pod_records.mismatch(POD, uid=None, spec_hash=HASH) == (
        "pod py-0-abc has no record of its creation"
    )
    assert pod_records.mismatch(POD, uid="u-1", spec_hash="") == (
        "pod py-0-abc has no record of its creation"
    )
    assert pod_records.mismatch(POD, uid="u-2", spec_hash=HASH) == (
        "pod py-0-abc is not the pod created for it (UID u-1, not u-2)"
    )
