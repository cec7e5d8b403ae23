"""Wire schemas and codec (pure): round trips, camelCase keys, versioning, and every kind of
bad payload mapped to InvalidMessage (a ResyncRequest's id must be one short subject token)."""

from __future__ import annotations

import datetime

import msgspec
import pytest

from lss_common import errors
from lss_common.bus import codec
from lss_common.models import messages

NOW = datetime.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC)


def make_event(**overrides: object) -> messages.ChangeEvent:
    values: dict[str, object] = {
        "kind": "sandbox",
        "namespace": "team-a",
        "name": "job.1",
        "uid": "u-1",
        "resource_version": "42",
        "event_type": "MODIFIED",
        "observed_at": NOW,
    }
    values.update(overrides)
    return messages.ChangeEvent(**values)


def make_status() -> messages.StatusRecord:
    return messages.StatusRecord(
        kind="sandbox",
        namespace="team-a",
        name="job.1",
        uid="u-1",
        phase="Running",
        conditions=[
            messages.ConditionRecord(
                type="Ready", status="True", reason="PodReady", last_transition_time=NOW
            )
        ],
        endpoint="http://10.0.0.7:8080",
        pod_name="sandbox-job-1",
        start_time=NOW,
        launch="warm",
        resource_version="43",
        observed_generation=2,
        observed_at=NOW,
    )


def make_request(**overrides: object) -> messages.ResyncRequest:
    values: dict[str, object] = {
        "consumer": "pool-manager",
        "stream": "LSS_EVENTS",
        "request_id": "0123abcd",
        "requested_at": NOW,
    }
    values.update(overrides)
    return messages.ResyncRequest(**values)


@pytest.mark.parametrize(
    "message", [make_event(), make_event(namespace=None), make_status(), make_request()]
)
def test_round_trip(message: msgspec.Struct) -> None:
    assert codec.decode(codec.encode(message), message_type=type(message)) == message


def test_wire_keys_are_camel_case_and_versioned() -> None:
    wire = msgspec.json.decode(codec.encode(make_status()))
    assert wire["v"] == 1
    assert {"resourceVersion", "podName", "startTime", "observedAt", "observedGeneration"} <= set(
        wire
    )
    assert wire["conditions"][0]["lastTransitionTime"] == "2025-01-02T03:04:05.678000Z"
    event_wire = msgspec.json.decode(codec.encode(make_event()))
    assert event_wire["eventType"] == "MODIFIED"


def test_unknown_fields_are_ignored() -> None:
    wire = msgspec.json.decode(codec.encode(make_event()))
    wire["addedInAMinorRelease"] = {"x": 1}
    assert codec.decode(msgspec.json.encode(wire), message_type=messages.ChangeEvent) == (
        make_event()
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"v": 2}, "unknown version"),
        ({"eventType": "TOUCHED"}, "unknown event type"),
        ({"observedAt": "2025-01-02T03:04:05"}, "naive timestamp"),
        ({"name": 7}, "wrong type"),
        ({"kind": None}, "missing kind"),
    ],
)
def test_invalid_payloads_raise_invalid_message(change: dict[str, object], why: str) -> None:
    wire = msgspec.json.decode(codec.encode(make_event()))
    wire.update(change)
    if change.get("kind", "") is None:
        del wire["kind"]
    with pytest.raises(errors.InvalidMessage, match="ChangeEvent"):
        codec.decode(msgspec.json.encode(wire), message_type=messages.ChangeEvent)


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b"\xff\xfe", b'{"v":1'])
def test_garbage_raises_invalid_message(data: bytes) -> None:
    with pytest.raises(errors.InvalidMessage):
        codec.decode(data, message_type=messages.StatusRecord)


def test_resync_request_wire_keys() -> None:
    wire = msgspec.json.decode(codec.encode(make_request()))
    assert wire == {
        "v": 1,
        "consumer": "pool-manager",
        "stream": "LSS_EVENTS",
        "requestId": "0123abcd",
        "requestedAt": "2025-01-02T03:04:05.678000Z",
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"requestId": "a.b"}, "a dot would split the message id's token"),
        ({"requestId": "x" * 65}, "unbounded id"),
        ({"requestId": ""}, "empty id"),
        ({"consumer": ""}, "no consumer"),
        ({"v": 2}, "unknown version"),
        ({"requestedAt": "2025-01-02T03:04:05"}, "naive timestamp"),
    ],
)
def test_invalid_resync_requests_raise_invalid_message(change: dict[str, object], why: str) -> None:
    wire = msgspec.json.decode(codec.encode(make_request()))
    wire.update(change)
    with pytest.raises(errors.InvalidMessage, match="ResyncRequest"):
        codec.decode(msgspec.json.encode(wire), message_type=messages.ResyncRequest)
