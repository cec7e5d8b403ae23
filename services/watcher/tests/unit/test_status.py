"""status (and lss_common.logic.status_records, which it adapts): StatusRecord from the
committed status of a watched object, ordering and fingerprints (pure).

Matrix: a full Sandbox status maps onto every record field (launch warm/cold/none); a missing
or null status gives an empty record; odd values are tolerated (a condition status outside
True/False/Unknown reads Unknown, zone-less and fractional timestamps parse, unreadable ones
become None, conditions without a type are dropped); WarmPool records leave sandbox-only
fields unset; malformed status JSON raises DecodeError; is_newer over integer versions,
deletions at the same version, and opaque versions (hypothesis: a strict order for integers);
digest ignores version and time only; msg ids.
"""

from __future__ import annotations

import datetime
from typing import Any

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from lss_common.logic import status_records
from lss_common.models import messages
from lss_watcher import status, views

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def view(status_json: Any, *, name: str = "sb", rv: str = "5") -> views.ObjectView:
    document: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns", "uid": "u", "resourceVersion": rv}
    }
    if status_json is not ...:
        document["status"] = status_json
    return views.decode_object(msgspec.json.encode(document))


def test_full_sandbox_status() -> None:
    record = status.record_of(
        "sandbox",
        view(
            {
                "phase": "Running",
                "observedGeneration": 3,
                "podName": "pod",
                "podNamespace": "elsewhere",
                "startTime": "2025-01-01T12:00:00Z",
                "endpoint": "sb.ns.svc.cluster.local",
                "warmPodRef": {"name": "wp"},
                "resources": {"cpuUsage": "10m"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "PodReady",
                        "message": "ok",
                        "lastTransitionTime": "2025-01-01T12:00:00Z",
                        "observedGeneration": 3,
                    }
                ],
            }
        ),
        observed_at=NOW,
    )
    assert record == messages.StatusRecord(
        kind="sandbox",
        namespace="ns",
        name="sb",
        uid="u",
        phase="Running",
        conditions=[
            messages.ConditionRecord(
                type="Ready",
                status="True",
                reason="PodReady",
                message="ok",
                last_transition_time=datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC),
                observed_generation=3,
            )
        ],
        endpoint="sb.ns.svc.cluster.local",
        pod_name="pod",
        start_time=datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC),
        launch="warm",
        resource_version="5",
        observed_generation=3,
        observed_at=NOW,
    )


@pytest.mark.parametrize(
    ("status_json", "launch"),
    [
        ({"podName": "p"}, "cold"),
        ({"podName": "p", "warmPodRef": {"name": ""}}, "cold"),
        ({}, None),
    ],
)
def test_launch(status_json: dict[str, Any], launch: str | None) -> None:
    assert status.record_of("sandbox", view(status_json), observed_at=NOW).launch == launch


@pytest.mark.parametrize("status_json", [..., None, {}])
def test_no_status_yet(status_json: Any) -> None:
    record = status.record_of("sandbox", view(status_json), observed_at=NOW, deleted=True)
    assert record.phase is None
    assert record.conditions == []
    assert record.deleted


def test_odd_values_are_tolerated() -> None:
    record = status.record_of(
        "sandbox",
        view(
            {
                "startTime": "yesterday",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "Maybe",
                        "lastTransitionTime": "2025-01-01T12:00:00",
                    },
                    {"status": "True"},
                    {
                        "type": "Odd",
                        "status": "False",
                        "lastTransitionTime": "2025-01-01T12:00:00.123456789+02:00",
                    },
                ],
            }
        ),
        observed_at=NOW,
    )
    assert record.start_time is None
    assert [(c.type, c.status) for c in record.conditions] == [
        ("Ready", "Unknown"),
        ("Odd", "False"),
    ]
    assert record.conditions[0].last_transition_time == datetime.datetime(
        2025, 1, 1, 12, tzinfo=datetime.UTC
    )
    assert record.conditions[1].last_transition_time == datetime.datetime(
        2025, 1, 1, 10, 0, 0, 123456, tzinfo=datetime.UTC
    )


def test_warm_pool_leaves_sandbox_fields_unset() -> None:
    record = status.record_of(
        "warmpool",
        view(
            {
                "podName": "p",
                "endpoint": "e",
                "startTime": "2025-01-01T12:00:00Z",
                "observedGeneration": 1,
            }
        ),
        observed_at=NOW,
    )
    assert (record.pod_name, record.endpoint, record.start_time, record.launch) == (
        None,
        None,
        None,
        None,
    )
    assert record.observed_generation == 1


@pytest.mark.parametrize("status_json", [[], "Running", {"conditions": {}}, {"phase": 3}])
def test_malformed_status_raises(status_json: Any) -> None:
    with pytest.raises(msgspec.DecodeError):
        status.record_of("sandbox", view(status_json), observed_at=NOW)


def s(rv: str, *, deleted: bool = False, uid: str = "u") -> status_records.Stored:
    return status_records.Stored(uid=uid, resource_version=rv, deleted=deleted)


@pytest.mark.parametrize(
    ("candidate", "current", "newer"),
    [
        (s("10"), s("9"), True),
        (s("9"), s("10"), False),
        (s("10"), s("10"), False),
        (s("10", deleted=True), s("10"), True),
        (s("10"), s("10", deleted=True), False),
        (s("10", deleted=True), s("10", deleted=True), False),
        (s("100"), s("99"), True),  # integers, not strings
        (s("12", uid="new"), s("11", uid="old"), True),  # re-created under the same name
        (s("abc"), s("abd"), True),  # opaque versions: a different version replaces
        (s("abc"), s("abc"), False),
        (s("abc", deleted=True), s("abc"), True),
        (s("abc", uid="other"), s("abc"), True),
    ],
)
def test_is_newer(
    candidate: status_records.Stored, current: status_records.Stored, newer: bool
) -> None:
    assert status_records.is_newer(candidate, current) is newer


@hypothesis.given(
    a=st.integers(min_value=0, max_value=10**12),
    b=st.integers(min_value=0, max_value=10**12),
    da=st.booleans(),
    db=st.booleans(),
)
def test_is_newer_is_a_strict_order_on_integer_versions(a: int, b: int, da: bool, db: bool) -> None:
    first, second = s(str(a), deleted=da), s(str(b), deleted=db)
    assert not (status_records.is_newer(first, second) and status_records.is_newer(second, first))
    if (a, da) != (b, db):
        assert status_records.is_newer(first, second) or status_records.is_newer(second, first)


def test_digest_ignores_version_and_time_only() -> None:
    base = status.record_of("sandbox", view({"phase": "Running"}), observed_at=NOW)
    later = status.record_of(
        "sandbox", view({"phase": "Running"}, rv="6"), observed_at=NOW + datetime.timedelta(hours=1)
    )
    assert status_records.digest(base) == status_records.digest(later)
    assert status_records.digest(base) != status_records.digest(
        status.record_of("sandbox", view({"phase": "Failed"}), observed_at=NOW)
    )
    assert status_records.digest(base) != status_records.digest(
        status_records.deleted_copy(base, observed_at=NOW)
    )


def test_msg_ids_and_copies() -> None:
    record = status.record_of("sandbox", view({"phase": "Running"}, name="a.b"), observed_at=NOW)
    assert status_records.msg_id(record) == "sandbox/ns/a_b/5"
    final = status_records.deleted_copy(record, observed_at=NOW)
    assert status_records.msg_id(final) == "sandbox/ns/a_b/5/deleted"
    assert final.deleted
    assert (final.phase, final.resource_version) == ("Running", "5")
    assert status_records.stored(final) == status_records.Stored(
        uid="u", resource_version="5", deleted=True
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("nonsense", None),
        ("2025-01-01T12:00:00Z", datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC)),
        ("2025-01-01T12:00:00", datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC)),
        ("2025-01-01T13:00:00+01:00", datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC)),
    ],
)
def test_parse_time(text: str | None, expected: datetime.datetime | None) -> None:
    assert status_records.parse_time(text) == expected
