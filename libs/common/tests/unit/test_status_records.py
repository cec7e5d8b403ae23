"""status_records: the same record from the raw status JSON and from the typed Sandbox (pure).

The watcher builds records from the raw ``status`` JSON it watches, the reconciler from the
typed Sandbox its status write returned; both must give the same record of the same version
(else the second publisher's record would not be recognised as saying the same). Matrix:
full statuses (warm and cold, conditions, fractional and zone-less timestamps), an empty
status and none at all; the absent forms of raw status (None, empty, ``null``). Ordering,
fingerprints, ids and the lenient mapping are tested through the watcher
(``services/watcher/tests/unit/test_status.py``), which adapts this module.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest

from lss_common.logic import status_records
from lss_common.models import sandbox as sandbox_model

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)

CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "PodReady",
    "message": "ok",
    "lastTransitionTime": "2025-01-01T12:00:00.123456Z",
    "observedGeneration": 2,
}


def document(status: dict[str, Any] | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "Sandbox",
        "metadata": {
            "name": "a.b",
            "namespace": "ns",
            "uid": "u-1",
            "resourceVersion": "42",
            "generation": 2,
        },
        "spec": {"runtime": "python:3.11"},
    }
    if status is not None:
        found["status"] = status
    return found


@pytest.mark.parametrize(
    "status",
    [
        {
            "phase": "Running",
            "observedGeneration": 2,
            "conditions": [CONDITION, {**CONDITION, "type": "PodScheduled", "status": "Maybe"}],
            "podName": "a-b",
            "podNamespace": "ns",
            "startTime": "2025-01-01T12:00:00Z",
            "endpoint": "a-b.ns.svc.cluster.local",
            "warmPodRef": {"name": "wp", "namespace": "pool"},
            "resources": {"cpuUsage": "10m"},
        },
        {"phase": "Creating", "podName": "a-b", "startTime": "2025-01-01T12:00:00"},
        {"phase": "Failed", "conditions": []},
        {},
        None,
    ],
)
def test_typed_and_raw_give_the_same_record(status: dict[str, Any] | None) -> None:
    doc = document(status)
    # What the API server sends: ``null`` members are never stored, so none are sent.
    raw = msgspec.json.encode(doc)
    typed = status_records.record_of_sandbox(sandbox_model.decode(raw), observed_at=NOW)
    meta = doc["metadata"]
    from_raw = status_records.record_of(
        "sandbox",
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        resource_version=meta["resourceVersion"],
        status=None if status is None else msgspec.json.encode(status),
        observed_at=NOW,
    )
    assert typed == from_raw
    assert status_records.digest(typed) == status_records.digest(from_raw)
    assert status_records.msg_id(typed) == "sandbox/ns/a_b/42"


def test_a_full_status_maps_onto_the_record() -> None:
    obj = sandbox_model.decode(
        msgspec.json.encode(
            document({"phase": "Running", "podName": "p", "warmPodRef": {"name": "wp"}})
        )
    )
    record = status_records.record_of_sandbox(obj, observed_at=NOW)
    assert (record.kind, record.namespace, record.name, record.uid) == (
        "sandbox",
        "ns",
        "a.b",
        "u-1",
    )
    assert (record.phase, record.pod_name, record.launch, record.resource_version) == (
        "Running",
        "p",
        "warm",
        "42",
    )
    assert not record.deleted


@pytest.mark.parametrize("raw", [None, b"", b"null", msgspec.Raw(b""), msgspec.Raw(b"null")])
def test_absent_status_is_empty(raw: bytes | msgspec.Raw | None) -> None:
    assert status_records.decode_status(raw) == status_records.StatusView()
