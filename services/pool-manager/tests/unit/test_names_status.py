"""names: every name is a valid, bounded DNS name, deterministic, and distinct per slot/UID;
status: counts, lastScaleTime only on scaling, the Ready condition's reasons, schema defaults
of the sizing shape."""

from __future__ import annotations

import datetime
import re
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import names, sizing, status

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
LABEL = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
POOL_NAMES = st.lists(LABEL, min_size=1, max_size=5).map(".".join).filter(lambda s: len(s) <= 253)
NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)


@given(POOL_NAMES, st.integers(0, 10_000), st.uuids())
def test_names_are_valid_bounded_and_distinct(pool: str, slot: int, uid: object) -> None:
    warm = names.warm_pod_name(pool, slot=slot)
    pod = names.pod_name(warm, uid=str(uid))
    for name in (warm, pod, names.service_account_name(pool), names.policy_name(pool)):
        assert len(name) <= 63
        assert SUBDOMAIN.match(name), name
    assert warm != names.warm_pod_name(pool, slot=slot + 1)
    assert names.warm_pod_name(pool, slot=slot) == warm


def test_short_names_are_readable() -> None:
    assert names.warm_pod_name("python", slot=3) == "python-3"
    assert names.pod_name("python-3", uid="ABCDEF12-3456") == "python-3-abcdef12"
    assert names.service_account_name("python") == "warmpool-python-pods"


def pool(spec: dict[str, Any] | None = None, status_: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {
        "metadata": {"name": "py", "namespace": "ns", "uid": "u", "generation": 3},
        "spec": {"runtime": "python:3.11", "minSize": 2, **(spec or {})},
    }
    if status_ is not None:
        data["status"] = status_
    return warmpool_model.from_dict(data)


def sized(**fields: Any) -> sizing.SizingPlan:
    values: dict[str, Any] = {
        "create": (),
        "delete": (),
        "operation": None,
        "counts": sizing.Counts(available=2, assigned=1, pending=0),
        "wanted_unassigned": 2,
        "limited_by": None,
        "bucket": sizing.TokenBucket.full(capacity=1, rate_per_second=1),
        "expectations": sizing.Expectations(),
        "requeue_after_seconds": None,
    }
    values.update(fields)
    return sizing.SizingPlan(**values)


def test_sized_status_counts_and_filled() -> None:
    result = status.sized_status(pool(), plan=sized(), now=NOW)
    assert (result.available_pods, result.assigned_pods, result.pending_pods) == (2, 1, 0)
    assert result.observed_generation == 3
    assert result.last_scale_time is None
    assert result.conditions is not None
    assert (result.conditions[0].status, result.conditions[0].reason) == ("True", "Filled")


def test_last_scale_time_moves_only_with_an_operation() -> None:
    before = pool(status_={"lastScaleTime": "2025-01-01T00:00:00Z"})
    kept = status.sized_status(before, plan=sized(), now=NOW)
    assert kept.last_scale_time == "2025-01-01T00:00:00Z"
    moved = status.sized_status(before, plan=sized(operation=sizing.Operation.UP), now=NOW)
    assert moved.last_scale_time == "2025-06-01T12:00:00Z"
    assert status.last_scale_time(before) == datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def test_reasons_when_not_filled() -> None:
    counts = sizing.Counts(available=0, assigned=0, pending=2)
    for limited, reason in (
        (None, "Filling"),
        (sizing.Limit.RATE, "RateLimited"),
        (sizing.Limit.MAX_SIZE, "MaxSizeReached"),
    ):
        result = status.sized_status(pool(), plan=sized(counts=counts, limited_by=limited), now=NOW)
        assert result.conditions is not None
        assert (result.conditions[0].status, result.conditions[0].reason) == ("False", reason)


def test_failed_status_keeps_counts() -> None:
    before = pool(status_={"availablePods": 4, "assignedPods": 1})
    result = status.failed_status(before, reason="RuntimeNotFound", message="x", now=NOW)
    assert (result.available_pods, result.assigned_pods, result.pending_pods) == (4, 1, 0)
    assert result.conditions is not None
    assert result.conditions[0].reason == "RuntimeNotFound"


def _warm_pod(name: str, phase: str | None, *, deleting: bool = False) -> warmpod_model.WarmPod:
    return warmpod_model.WarmPod(
        metadata=meta.ObjectMeta(
            name=name,
            namespace="ns",
            uid=f"uid-{name}",
            deletion_timestamp="2025-06-01T12:00:00Z" if deleting else None,
        ),
        spec=warmpod_model.WarmPodSpec(
            pool_ref=warmpod_model.PoolRef(name="py"),
            runtime="python:3.11",
            security_level="standard",
            resources=warmpod_model.WarmPodResources(
                cpu="500m", memory="512Mi", ephemeral_storage="1Gi"
            ),
        ),
        status=warmpod_model.WarmPodStatus(phase=phase),
    )


def test_a_deleting_pool_says_what_is_left_not_its_last_sizing() -> None:
    left = [
        _warm_pod("a", "Assigned"),
        _warm_pod("b", "Assigned"),
        _warm_pod("c", "Ready"),
        _warm_pod("d", None),  # just created, no status yet
        _warm_pod("e", "Pending"),
        _warm_pod("f", "Failed"),
        _warm_pod("g", "Ready", deleting=True),
    ]
    counts = status.counts_of(left)
    assert (counts.available, counts.assigned, counts.pending) == (1, 2, 2)
    before = pool(status_={"availablePods": 9, "assignedPods": 14})
    result = status.failed_status(
        before, reason="DeletionBlocked", message="x", now=NOW, counts=counts
    )
    assert (result.available_pods, result.assigned_pods, result.pending_pods) == (1, 2, 2)


def test_shape_defaults_follow_the_schema() -> None:
    assert status.shape_of(pool()) == sizing.Shape(min_size=2, ttl_seconds=3600)
    shape = status.shape_of(
        pool(
            {
                "maxSize": 5,
                "ttl": 0,
                "autoScaling": {"enabled": True, "targetUtilization": 60, "scaleDownDelay": 0},
            }
        )
    )
    assert shape == sizing.Shape(
        min_size=2,
        max_size=5,
        ttl_seconds=0,
        autoscaling=True,
        target_utilization=60,
        scale_down_delay_seconds=0,
    )


def test_listed_packages_are_reported_as_not_installed_until_the_list_is_emptied() -> None:
    listed = pool(spec={"preloadPackages": ["numpy", "pandas==2.2.2"]})
    for result in (
        status.sized_status(listed, plan=sized(), now=NOW),
        status.failed_status(listed, reason="RuntimeNotFound", message="x", now=NOW),
    ):
        found = {c.type: c for c in result.conditions or ()}
        packages = found["PackagesPreloaded"]
        assert (packages.status, packages.reason) == ("False", "Unsupported")
        assert "spec.preloadPackages (numpy, pandas==2.2.2)" in packages.message
        assert found["Ready"].type == "Ready"  # the Ready condition is unaffected
    reported = status.sized_status(listed, plan=sized(), now=NOW)
    emptied = pool(
        spec={"preloadPackages": []},
        status_={"conditions": [msgspec.to_builtins(c) for c in reported.conditions or ()]},
    )
    again = status.sized_status(emptied, plan=sized(), now=NOW)
    assert [c.type for c in again.conditions or ()] == ["Ready"]


def test_a_refused_warm_pod_outranks_every_other_reason() -> None:
    counts = sizing.Counts(available=0, assigned=0, pending=2)
    for limited in (None, sizing.Limit.RATE, sizing.Limit.MAX_SIZE):
        result = status.sized_status(
            pool(),
            plan=sized(counts=counts, limited_by=limited),
            now=NOW,
            refusal="pods is forbidden: exceeded quota",
        )
        assert result.conditions is not None
        ready = result.conditions[0]
        assert (ready.status, ready.reason) == ("False", "PodsRefused")
        assert ready.message is not None
        assert "exceeded quota" in ready.message
        assert result.pending_pods == 2
