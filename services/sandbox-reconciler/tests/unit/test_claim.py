"""claim and ready_queue (pure): a sandbox matches exactly the WarmPods built like its own
cold pod (record and pod-spec hash, computed by the pool manager's own code path); a `high`
sandbox never matches a `standard` pod; resources, profile, filesystem or namespace
differences do not match; what a warm pod cannot take starts cold; the pick stays within the
first k candidates and spreads; the ready queue keeps Ready WarmPods in Ready order, drops
the rest, and indexes assignments."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import podspec
from lss_sandbox_reconciler import claim, merge, ready_queue, resolve, testing
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module
from lss_sandbox_reconciler.render import pod as pod_render

SETTINGS = settings_module.SandboxOptions()
POOL_UID = "0a0a0a0a-1111-4222-8333-444444444444"


def warm_pod_for(
    pool_spec: dict[str, Any],
    *,
    with_profile: bool = False,
    name: str = "py-0",
    phase: str = "Ready",
    resource_version: str = "10",
    pool_uid: str = POOL_UID,
) -> warmpod_model.WarmPod:
    """A WarmPod exactly as the pool manager builds it for ``pool_spec`` (record and hash)."""
    pool = warmpool_model.from_dict(
        {
            "metadata": {"name": "py", "namespace": "team-a", "uid": pool_uid},
            "spec": {"runtime": "python:3.11", "minSize": 1, **pool_spec},
        }
    )
    runtime = testing.make_runtime()
    profile = testing.make_profile() if with_profile else None
    spec = podspec.effective_spec(pool, profile=profile, runtime=runtime, settings=SETTINGS)
    record = podspec.warm_pod_spec(
        pool, spec=spec, profile_key=podspec.profile_key(pool, shared_namespaces=())
    )
    probe = warmpod_model.WarmPod(
        metadata=warmpod_model.meta.ObjectMeta(name=name, namespace="team-a", uid="0" * 8),
        spec=record,
    )
    spec_hash = podspec.fingerprint(
        podspec.render_warm_pod(spec, warm_pod=probe, pool_uid=pool_uid, settings=SETTINGS)
    )
    return warmpod_model.from_dict(
        {
            "metadata": {
                "name": name,
                "namespace": "team-a",
                "uid": f"uid-{name}",
                "resourceVersion": resource_version,
                "labels": {ready_queue.POOL_UID: pool_uid},
                "annotations": {ready_queue.POD_SPEC_HASH: spec_hash},
            },
            "spec": _builtins(record),
            "status": {
                "phase": phase,
                "podName": f"{name}-pod",
                "podUID": f"pod-uid-{name}",
                "podSpecHash": "c" * 64,
            },
        }
    )


def _builtins(record: warmpod_model.WarmPodSpec) -> dict[str, Any]:
    import msgspec

    result: dict[str, Any] = msgspec.to_builtins(record)
    return result


def wanted_for(
    sandbox_spec: dict[str, Any], *, with_profile: bool = False, namespace: str = "team-a"
) -> tuple[claim.Wanted, merge.EffectiveSpec, owner_module.Owner]:
    sandbox = testing.make_sandbox(
        namespace=namespace, spec={"runtime": "python:3.11", **sandbox_spec}
    )
    profile = testing.make_profile(namespace=namespace) if with_profile else None
    spec = merge.merge_spec(
        sandbox, profile=profile, runtime=testing.make_runtime(), settings=SETTINGS
    )
    owner = owner_module.owner_of(sandbox, settings=SETTINGS)
    cold = pod_render.render_pod(spec, owner=owner, settings=SETTINGS)
    key = resolve.profile_key(sandbox, shared_namespaces=())
    return claim.wanted_for(sandbox, spec=spec, profile=key, cold_pod=cold), spec, owner


def candidate(warm: warmpod_model.WarmPod) -> ready_queue.Candidate:
    found = ready_queue.candidate_of(warm)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("pool_spec", "sandbox_spec", "with_profile"),
    [
        ({}, {}, False),
        ({"securityLevel": "high"}, {"securityLevel": "high"}, False),
        (
            {"resources": {"cpu": "1", "memory": "1Gi"}},
            {"resources": {"cpu": "1000m", "memory": "1Gi"}},
            False,
        ),
        ({"profileRef": {"name": "preset"}}, {"profileRef": {"name": "preset"}}, True),
    ],
)
def test_a_sandbox_like_the_pool_matches_its_warm_pod(
    pool_spec: dict[str, Any], sandbox_spec: dict[str, Any], with_profile: bool
) -> None:
    wanted, _, _ = wanted_for(sandbox_spec, with_profile=with_profile)
    assert claim.matches(
        candidate(warm_pod_for(pool_spec, with_profile=with_profile)), wanted=wanted
    )


@pytest.mark.parametrize(
    ("pool_spec", "sandbox_spec", "pool_profile", "sandbox_profile"),
    [
        # a high sandbox never gets a standard pod, nor the reverse
        ({}, {"securityLevel": "high"}, False, False),
        ({"securityLevel": "high"}, {}, False, False),
        # other resources
        ({}, {"resources": {"cpu": "1"}}, False, False),
        ({}, {"resources": {"memory": "1Gi"}}, False, False),
        ({"resources": {"ephemeralStorage": "2Gi"}}, {}, False, False),
        # another (or no) profile
        ({"profileRef": {"name": "preset"}}, {}, True, False),
        ({}, {"profileRef": {"name": "preset"}}, False, True),
        # same record, another pod: only the pod-spec hash tells
        ({}, {"filesystem": {"readOnlyRoot": False}}, False, False),
        ({}, {"securityContext": {"runAsUser": 2000}}, False, False),
        ({}, {"filesystem": {"writablePaths": ["/tmp", "/workspace", "/cache"]}}, False, False),
    ],
)
def test_any_difference_does_not_match(
    pool_spec: dict[str, Any],
    sandbox_spec: dict[str, Any],
    pool_profile: bool,
    sandbox_profile: bool,
) -> None:
    wanted, _, _ = wanted_for(sandbox_spec, with_profile=sandbox_profile)
    assert not claim.matches(
        candidate(warm_pod_for(pool_spec, with_profile=pool_profile)), wanted=wanted
    )


def test_another_namespace_does_not_match() -> None:
    wanted, _, _ = wanted_for({}, namespace="team-b")
    assert not claim.matches(candidate(warm_pod_for({})), wanted=wanted)


def test_the_hash_is_the_pool_managers_fingerprint() -> None:
    _, spec, owner = wanted_for({})
    pod = pod_render.render_pod(spec, owner=owner, settings=SETTINGS)
    assert claim.pod_spec_hash(pod) == podspec.fingerprint(pod)
    assert ready_queue.POD_SPEC_HASH == podspec.POD_SPEC_HASH
    assert ready_queue.POOL_UID == podspec.POOL_UID


@pytest.mark.parametrize(
    ("sandbox_spec", "options", "reason"),
    [
        ({"storage": {"persistent": True}}, {}, claim.ColdReason.PERSISTENT),
        (
            {"storage": {"sharedVolumes": [{"claimName": "shared", "mountPath": "/shared"}]}},
            {},
            claim.ColdReason.SHARED_VOLUMES,
        ),
        ({}, {"namespace_isolation": True}, claim.ColdReason.NAMESPACE_ISOLATION),
        ({}, {}, None),
    ],
)
def test_what_a_warm_pod_cannot_take_starts_cold(
    sandbox_spec: dict[str, Any], options: dict[str, Any], reason: claim.ColdReason | None
) -> None:
    settings = settings_module.SandboxOptions.model_validate(options)
    sandbox = testing.make_sandbox(spec={"runtime": "python:3.11", **sandbox_spec})
    spec = merge.merge_spec(
        sandbox, profile=None, runtime=testing.make_runtime(), settings=settings
    )
    owner = owner_module.owner_of(sandbox, settings=settings)
    assert claim.cold_reason(spec, owner=owner) == reason


@given(
    st.integers(min_value=0, max_value=50), st.integers(min_value=1, max_value=20), st.integers()
)
def test_pick_stays_within_the_first_k(count: int, spread: int, seed: int) -> None:
    items = list(range(count))
    chosen = claim.pick(items, spread=spread, rng=random.Random(seed))
    if count == 0:
        assert chosen is None
    else:
        assert chosen is not None
        assert chosen < min(spread, count)


def test_pick_spreads_over_the_first_k() -> None:
    rng = random.Random(7)
    seen = {claim.pick(list(range(50)), spread=8, rng=rng) for _ in range(400)}
    assert seen == set(range(8))


# -- the ready queue ----------------------------------------------------------------------------


def test_queue_keeps_ready_order_and_refreshes_versions_in_place() -> None:
    queue = ready_queue.ReadyQueue()
    for index in range(3):
        queue.offer(warm_pod_for({}, name=f"py-{index}", resource_version=str(10 + index)))
    # a heartbeat: new resourceVersion, same place in line
    queue.offer(warm_pod_for({}, name="py-0", resource_version="99"))
    found = queue.candidates("team-a", matches=lambda c: True)
    assert [c.name for c in found] == ["py-0", "py-1", "py-2"]
    assert found[0].resource_version == "99"
    assert queue.candidates("team-b", matches=lambda c: True) == []


@pytest.mark.parametrize("phase", ["Pending", "Assigned", "Failed", "Terminating"])
def test_queue_drops_what_is_not_ready(phase: str) -> None:
    queue = ready_queue.ReadyQueue()
    queue.offer(warm_pod_for({}, name="py-0"))
    queue.offer(warm_pod_for({}, name="py-0", phase=phase))
    assert len(queue) == 0


@pytest.mark.parametrize("missing", ["podUID", "podSpecHash"])
def test_a_ready_warm_pod_without_the_record_of_its_pod_is_no_candidate(missing: str) -> None:
    """Nobody can vouch for its pod (an older pool manager's, or a forged status)."""
    data = _dict(warm_pod_for({}, name="py-0"))
    del data["status"][missing]
    queue = ready_queue.ReadyQueue()
    assert queue.offer(warmpod_model.from_dict(data)) is None
    assert len(queue) == 0


def test_queue_indexes_assignments_and_forgets_removed() -> None:
    queue = ready_queue.ReadyQueue()
    warm = warm_pod_for({}, name="py-0")
    queue.offer(warm)
    assigned = warmpod_model.from_dict(
        {
            **_dict(warm),
            "status": {
                **_dict(warm)["status"],
                "phase": "Assigned",
                "assignedTo": "sandbox-uid",
            },
        }
    )
    queue.offer(assigned)
    found = queue.assignment("sandbox-uid")
    assert found is not None
    assert (found.name, found.pod_name) == ("py-0", "py-0-pod")
    # A resumed claim checks the adopted pod against the record like a new one.
    assert (found.pod_uid, found.stored_spec_hash) == ("pod-uid-py-0", "c" * 64)
    assert len(queue) == 0
    queue.remove(("team-a", "py-0"))
    assert queue.assignment("sandbox-uid") is None


def test_a_read_older_than_the_claim_does_not_undo_it() -> None:
    """The feed's read of a WarmPod started before this replica's CAS and answered after it:
    the claim (Assigned, newer) stays indexed and the WarmPod does not come back as a
    candidate. A newer version is taken again."""
    queue = ready_queue.ReadyQueue()
    ready = warm_pod_for({}, name="py-0", resource_version="10")
    queue.offer(ready)
    claimed = warmpod_model.from_dict(
        {
            **_dict(ready),
            "metadata": {**_dict(ready)["metadata"], "resourceVersion": "11"},
            "status": {"phase": "Assigned", "podName": "py-0-pod", "assignedTo": "sandbox-uid"},
        }
    )
    queue.offer(claimed)
    assert queue.offer(ready) is None
    assert queue.assignment("sandbox-uid") is not None
    assert len(queue) == 0
    newer = warm_pod_for({}, name="py-0", resource_version="12")
    assert queue.offer(newer) is not None
    assert queue.assignment("sandbox-uid") is None
    # Gone and created again under the slot's name: the new object is taken.
    queue.remove(("team-a", "py-0"))
    assert queue.offer(warm_pod_for({}, name="py-0", resource_version="5")) is not None


def test_a_candidate_whose_claim_was_refused_is_put_back_unless_heard_of_since() -> None:
    """A refused CAS changed nothing: the candidate taken out for it goes back. Not when the
    queue read the WarmPod again meanwhile (a newer version, taken or dropped) or saw it
    assigned."""
    queue = ready_queue.ReadyQueue()
    ready = warm_pod_for({}, name="py-0", resource_version="10")
    taken = queue.offer(ready)
    assert taken is not None
    queue.forget(taken.key)
    assert queue.restore(taken)
    assert [c.name for c in queue.candidates("team-a", matches=lambda c: True)] == ["py-0"]
    assert not queue.restore(taken)  # already there

    queue.forget(taken.key)
    queue.offer(warm_pod_for({}, name="py-0", resource_version="11", phase="Pending"))
    assert not queue.restore(taken)  # newer read: not Ready any more
    assert len(queue) == 0

    other = queue.offer(warm_pod_for({}, name="py-1", resource_version="20"))
    assert other is not None
    queue.forget(other.key)
    queue.offer(
        warmpod_model.from_dict(
            {
                **_dict(warm_pod_for({}, name="py-1", resource_version="21")),
                "status": {"phase": "Assigned", "podName": "py-1-pod", "assignedTo": "s"},
            }
        )
    )
    assert not queue.restore(other)  # claimed by another pass since
    assert len(queue) == 0


def test_queue_groups_candidates_by_pool() -> None:
    queue = ready_queue.ReadyQueue()
    queue.offer(warm_pod_for({}, name="b-0", pool_uid="pool-b"))
    queue.offer(warm_pod_for({}, name="a-0", pool_uid="pool-a"))
    queue.offer(warm_pod_for({}, name="b-1", pool_uid="pool-b"))
    assert [c.name for c in queue.candidates("team-a", matches=lambda c: True)] == [
        "a-0",
        "b-0",
        "b-1",
    ]
    queue.forget(("team-a", "a-0"))
    assert [c.pool for c in queue] == ["pool-b", "pool-b"]


def _dict(warm: warmpod_model.WarmPod) -> dict[str, Any]:
    import msgspec

    result: dict[str, Any] = msgspec.json.decode(warmpod_model.encode(warm))
    return result
