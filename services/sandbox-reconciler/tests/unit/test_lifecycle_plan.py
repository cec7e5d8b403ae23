"""lifecycle + plan: pod verdicts (ready, not ready, pull failure, crash loop, failed,
unschedulable before/after the deadline); a fresh sandbox gets the finalizer, then SA, deny
policy first, Service, pod, and goes Creating; a Ready pod → Running with startTime and a
requeue at expiry; expiry → Terminated/Expired and every child deleted; resolution and merge
failures → Failed with their condition and no finalizer write; a hand-deleted pod is re-created;
an outdated policy is replaced with its resourceVersion, an unwanted one deleted; a foreign
child is never adopted; deletion deletes children, waits, then removes the finalizer only when
all are gone (retained claim kept); a hand-deleted isolation namespace is waited for, then
re-created with its children; hypothesis: applying a plan's creates and re-planning
creates nothing, and the same observations twice never write status twice (idempotent)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.logic import conditions
from lss_common.models import kinds, meta
from lss_common.models import sandbox as sandbox_model
from lss_sandbox_reconciler import apply, lifecycle, plan, testing
from lss_sandbox_reconciler import settings as settings_module

NOW = datetime.datetime(2025, 6, 1, 12, 10, 0, tzinfo=datetime.UTC)
OPTIONS = settings_module.SandboxOptions(egress_mode=settings_module.EgressMode.IPBLOCK)
FIN = [kinds.FINALIZER]


def pod_json(
    *,
    phase: str = "Running",
    ready: bool = False,
    scheduled: bool = True,
    waiting: str | None = None,
    unschedulable: bool = False,
    created: str = "2025-06-01T12:09:00Z",
    uid_label: str = testing.UID,
    deleting: bool = False,
) -> dict[str, Any]:
    conds = [
        {
            "type": "PodScheduled",
            "status": "True" if scheduled and not unschedulable else "False",
            **({"reason": "Unschedulable", "message": "0/3 nodes"} if unschedulable else {}),
        },
        {"type": "Ready", "status": "True" if ready else "False"},
    ]
    statuses = []
    if waiting:
        statuses.append(
            {"name": "sandbox", "image": "img", "state": {"waiting": {"reason": waiting}}}
        )
    metadata: dict[str, Any] = {
        "name": "sandbox-demo",
        "namespace": "team-a",
        "uid": "pod-uid",
        "creationTimestamp": created,
        "labels": {"llmsafespace.dev/sandbox-uid": uid_label},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-06-01T12:09:59Z"
    return {
        "metadata": metadata,
        "status": {"phase": phase, "conditions": conds, "containerStatuses": statuses},
    }


@pytest.mark.parametrize(
    ("pod", "state", "reason"),
    [
        (None, lifecycle.PodState.MISSING, "Creating"),
        (pod_json(deleting=True), lifecycle.PodState.DELETING, "PodNotReady"),
        (pod_json(ready=True), lifecycle.PodState.READY, "PodReady"),
        (pod_json(), lifecycle.PodState.NOT_READY, "PodNotReady"),
        (pod_json(phase="Pending", scheduled=False), lifecycle.PodState.PENDING, "PodPending"),
        (pod_json(phase="Failed"), lifecycle.PodState.FAILED, "PodFailed"),
        (pod_json(phase="Succeeded"), lifecycle.PodState.FAILED, "PodFailed"),
        (pod_json(waiting="CrashLoopBackOff"), lifecycle.PodState.FAILED, "PodFailed"),
        (pod_json(waiting="ImagePullBackOff"), lifecycle.PodState.FAILED, "ImagePullBackOff"),
        (pod_json(waiting="InvalidImageName"), lifecycle.PodState.FAILED, "ImagePullBackOff"),
        (pod_json(waiting="ErrImagePull"), lifecycle.PodState.NOT_READY, "PodNotReady"),
        (
            pod_json(phase="Pending", unschedulable=True),
            lifecycle.PodState.UNSCHEDULABLE,
            "Unschedulable",
        ),
        (
            pod_json(phase="Pending", unschedulable=True, created="2025-06-01T11:00:00Z"),
            lifecycle.PodState.FAILED,
            "Unschedulable",
        ),
    ],
)
def test_classify_pod(pod: dict[str, Any] | None, state: lifecycle.PodState, reason: str) -> None:
    verdict = lifecycle.classify_pod(pod, now=NOW, unschedulable_deadline_seconds=300)
    assert (verdict.state, verdict.reason) == (state, reason)


def test_unschedulable_rechecks_at_the_deadline() -> None:
    verdict = lifecycle.classify_pod(
        pod_json(phase="Pending", unschedulable=True), now=NOW, unschedulable_deadline_seconds=300
    )
    assert verdict.recheck_after_seconds == 240


def test_expiry_arithmetic() -> None:
    start = "2025-06-01T12:00:00Z"
    assert lifecycle.seconds_until_expiry(start, timeout_seconds=900, now=NOW) == 300
    assert lifecycle.seconds_until_expiry(start, timeout_seconds=600, now=NOW) == 0
    assert lifecycle.seconds_until_expiry(None, timeout_seconds=600, now=NOW) is None


# -- plans ----------------------------------------------------------------------------------


def snapshot(
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
    children: plan.Children | None = None,
    runtimes: tuple[Any, ...] | None = None,
    profile: Any = None,
    resolved: dict[str, tuple[str, ...]] | None = None,
) -> plan.Snapshot:
    return plan.Snapshot(
        sandbox=testing.make_sandbox(
            spec=spec,
            status=status,
            finalizers=finalizers,
            deletion_timestamp="2025-06-01T12:09:30Z" if deleting else None,
        ),
        runtimes=runtimes if runtimes is not None else (testing.make_runtime(),),
        profile=profile,
        children=children or plan.Children(),
        resolved=resolved or {},
    )


def run(snap: plan.Snapshot, options: settings_module.SandboxOptions = OPTIONS) -> plan.Plan:
    return plan.plan_sandbox(snap, now=NOW, settings=options)


def summary(result: plan.Plan) -> list[tuple[str, str | None, str | None]]:
    return [(a.verb.value, a.kind.value if a.kind else None, a.name) for a in result.actions]


def condition(result: plan.Plan, condition_type: str) -> tuple[str, str] | None:
    found = conditions.find_condition(result.status.conditions, condition_type=condition_type)
    return (found.status, found.reason) if found else None


def applied(result: plan.Plan, children: plan.Children) -> plan.Children:
    """The children after the plan's creates succeeded (what the next pass observes)."""
    state = dataclasses.asdict(children)
    field = {
        plan.Kind.NAMESPACE: "namespace",
        plan.Kind.SERVICE_ACCOUNT: "service_account",
        plan.Kind.SERVICE: "service",
        plan.Kind.PERSISTENT_VOLUME_CLAIM: "claim",
        plan.Kind.POD: "pod",
    }
    policies = dict(children.network_policies)
    cilium = dict(children.cilium_policies)
    for action in result.actions:
        if action.verb is not plan.Verb.CREATE or action.body is None:
            continue
        if action.kind is plan.Kind.NETWORK_POLICY:
            policies[action.name or ""] = action.body
        elif action.kind is plan.Kind.CILIUM_NETWORK_POLICY:
            cilium[action.name or ""] = action.body
        elif action.kind is not None:
            state[field[action.kind]] = action.body
    state["network_policies"] = policies
    state["cilium_policies"] = cilium
    return plan.Children(**state)


def test_fresh_sandbox_creates_children_in_order() -> None:
    result = run(snapshot())
    assert summary(result) == [
        ("add-finalizer", None, None),
        ("create", "ServiceAccount", "sandbox-demo"),
        ("create", "NetworkPolicy", "sandbox-demo-deny"),
        ("create", "Service", "sandbox-demo"),
        ("create", "Pod", "sandbox-demo"),
    ]
    status = result.status
    assert status.phase == "Creating"
    assert status.pod_name == "sandbox-demo"
    assert status.pod_namespace == "team-a"
    assert status.endpoint == "sandbox-demo.team-a.svc.cluster.local"
    assert status.observed_generation == 1
    assert condition(result, "RuntimeResolved") == ("True", "Resolved")
    assert condition(result, "NetworkReady") == ("True", "PoliciesApplied")
    assert condition(result, "Ready") == ("False", "Creating")
    assert result.status_changed


def test_persistent_and_isolated_sandbox_creates_namespace_and_claim() -> None:
    options = settings_module.SandboxOptions(namespace_isolation=True)
    result = run(snapshot(spec={"storage": {"persistent": True}}), options)
    kinds_in_order = [k for _, k, _ in summary(result)]
    assert kinds_in_order[:3] == [None, "Namespace", "ServiceAccount"]
    assert kinds_in_order[-3:] == ["Service", "PersistentVolumeClaim", "Pod"]
    namespace_action = result.actions[1]
    assert namespace_action.namespace is None
    assert all(a.namespace == f"sandbox-{testing.UID}" for a in result.actions[2:])


def test_ready_pod_makes_the_sandbox_running() -> None:
    first = run(snapshot())
    children = dataclasses.replace(applied(first, plan.Children()), pod=pod_json(ready=True))
    result = run(snapshot(finalizers=FIN, status=_dump(first), children=children))
    assert result.actions == ()
    assert result.status.phase == "Running"
    assert result.status.start_time == "2025-06-01T12:10:00Z"
    assert condition(result, "Ready") == ("True", "PodReady")
    assert condition(result, "PodScheduled") == ("True", "Scheduled")
    assert result.requeue_after_seconds == 300


def test_a_running_sandbox_outlives_its_runtimes_disappearance() -> None:
    """An operator deletes and re-creates the RuntimeEnvironment (or marks it unavailable):
    a running sandbox keeps its pod and children, says so, and still expires; a new one of
    that spec fails."""
    first = run(snapshot())
    children = dataclasses.replace(applied(first, plan.Children()), pod=pod_json(ready=True))
    running = run(snapshot(finalizers=FIN, status=_dump(first), children=children))
    assert running.status.phase == "Running"
    orphaned = run(snapshot(finalizers=FIN, status=_dump(running), children=children, runtimes=()))
    assert orphaned.status.phase == "Running"
    assert orphaned.actions == ()
    assert condition(orphaned, "RuntimeResolved") == ("False", "RuntimeNotFound")
    assert condition(orphaned, "Ready") == ("True", "PodReady")
    assert orphaned.requeue_after_seconds == 300  # its lifetime's end
    # Its lifetime over: Terminated and released as always.
    expired_status = {**_dump(running), "startTime": "2025-06-01T11:00:00Z"}
    expired = run(snapshot(finalizers=FIN, status=expired_status, children=children, runtimes=()))
    assert expired.status.phase == "Terminated"
    assert ("delete", "Pod", "sandbox-demo") in summary(expired)
    # Not started yet: Failed, as before.
    fresh = run(snapshot(runtimes=()))
    assert fresh.status.phase == "Failed"


def _dump(result: plan.Plan) -> dict[str, Any]:
    from lss_common.models import codec

    return codec.to_dict(result.status)


def test_expiry_terminates_and_releases() -> None:
    first = run(snapshot())
    children = dataclasses.replace(applied(first, plan.Children()), pod=pod_json(ready=True))
    status = {**_dump(first), "phase": "Running", "startTime": "2025-06-01T12:04:00Z"}
    result = run(snapshot(spec={"timeout": 360}, finalizers=FIN, status=status, children=children))
    assert result.status.phase == "Terminated"
    assert condition(result, "Ready") == ("False", "Expired")
    assert {a.verb for a in result.actions} == {plan.Verb.DELETE}
    assert summary(result)[0][1] == "Pod"
    assert result.status.endpoint is None
    # The pod's name stays while the pod does (a warm pod is found by it alone).
    assert result.status.pod_name == "sandbox-demo"
    # A terminal sandbox is not rebuilt; once its pod is gone, the status forgets it.
    after = run(snapshot(finalizers=FIN, status=_dump(result)))
    assert after.actions == ()
    assert after.status.pod_name is None
    settled = run(snapshot(finalizers=FIN, status=_dump(after)))
    assert settled.actions == ()
    assert not settled.status_changed


@pytest.mark.parametrize(
    ("snap", "condition_type", "reason"),
    [
        (snapshot(runtimes=()), "RuntimeResolved", "RuntimeNotFound"),
        (
            snapshot(runtimes=(testing.make_runtime(available=False),)),
            "RuntimeResolved",
            "RuntimeUnavailable",
        ),
        (snapshot(spec={"profileRef": {"name": "nope"}}), "ProfileResolved", "ProfileNotFound"),
        (
            snapshot(spec={"profileRef": {"name": "p", "namespace": "elsewhere"}}),
            "ProfileResolved",
            "ProfileNamespaceForbidden",
        ),
        (
            snapshot(
                spec={"profileRef": {"name": "preset"}},
                profile=testing.make_profile(language="ruby"),
            ),
            "ProfileResolved",
            "ProfileConflict",
        ),
        (
            snapshot(
                spec={
                    "filesystem": {"readOnlyRoot": True, "writablePaths": ["/etc"]},
                    "profileRef": {"name": "preset"},
                },
                profile=testing.make_profile(
                    spec={"filesystemConfig": {"readOnlyPaths": ["/etc"]}}
                ),
            ),
            "Ready",
            "ProfileConflict",
        ),
    ],
)
def test_invalid_input_fails_with_a_clear_condition(
    snap: plan.Snapshot, condition_type: str, reason: str
) -> None:
    result = run(snap)
    assert result.status.phase == "Failed"
    assert condition(result, condition_type) == ("False", reason)
    assert condition(result, "Ready") == ("False", reason)
    assert result.actions == ()


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (pod_json(phase="Failed"), "PodFailed"),
        (pod_json(waiting="ImagePullBackOff"), "ImagePullBackOff"),
        (
            pod_json(phase="Pending", unschedulable=True, created="2025-06-01T11:00:00Z"),
            "Unschedulable",
        ),
    ],
)
def test_pod_failures_fail_the_sandbox_and_release(pod: dict[str, Any], reason: str) -> None:
    first = run(snapshot())
    children = dataclasses.replace(applied(first, plan.Children()), pod=pod)
    result = run(snapshot(finalizers=FIN, status=_dump(first), children=children))
    assert result.status.phase == "Failed"
    assert condition(result, "Ready") == ("False", reason)
    assert ("delete", "Pod", "sandbox-demo") in summary(result)
    assert all(a.verb is plan.Verb.DELETE for a in result.actions)


def test_hand_deleted_pod_is_recreated() -> None:
    first = run(snapshot())
    children = applied(first, plan.Children())
    status = {**_dump(first), "phase": "Running", "startTime": "2025-06-01T12:09:00Z"}
    result = run(
        snapshot(finalizers=FIN, status=status, children=dataclasses.replace(children, pod=None))
    )
    assert summary(result) == [("create", "Pod", "sandbox-demo")]
    assert result.status.phase == "Creating"
    assert result.status.start_time == "2025-06-01T12:09:00Z"


def test_network_changes_replace_and_delete_policies() -> None:
    spec = {"networkAccess": {"ingress": True}}
    first = run(snapshot(spec=spec))
    children = applied(first, plan.Children())
    observed = {
        name: {**body, "metadata": {**body["metadata"], "resourceVersion": "7", "uid": f"u-{name}"}}
        for name, body in children.network_policies.items()
    }
    children = dataclasses.replace(children, network_policies=observed, pod=pod_json())
    # ingress turned off, egress added: the ingress policy goes, an egress policy comes.
    spec2 = {"networkAccess": {"ingress": False, "egress": [{"domain": "pypi.org"}]}}
    result = run(
        snapshot(spec=spec2, finalizers=FIN, children=children, resolved={"pypi.org": ("1.2.3.4",)})
    )
    assert summary(result) == [
        ("create", "NetworkPolicy", "sandbox-demo-egress"),
        ("delete", "NetworkPolicy", "sandbox-demo-ingress"),
    ]
    assert result.actions[1].uid == "u-sandbox-demo-ingress"
    # A policy edited by someone is put back, with the resourceVersion it was read at.
    tampered = dict(observed)
    deny = tampered["sandbox-demo-deny"]
    tampered["sandbox-demo-deny"] = {**deny, "spec": {**deny["spec"], "policyTypes": ["Ingress"]}}
    result = run(
        snapshot(
            spec=spec,
            finalizers=FIN,
            children=dataclasses.replace(children, network_policies=tampered),
        )
    )
    assert summary(result) == [("replace", "NetworkPolicy", "sandbox-demo-deny")]
    assert result.actions[0].resource_version == "7"


def test_what_others_add_to_a_policy_is_kept_and_not_taken_for_a_change() -> None:
    """A mutating webhook's label and annotation and a CNI's finalizer on our policy: no
    replace for them, and a replace for a real change keeps them (a full PUT of ours
    dropped them, and the labels made every pass replace the policy)."""
    spec = {"networkAccess": {"ingress": True}}
    first = run(snapshot(spec=spec))
    children = applied(first, plan.Children())
    deny = children.network_policies["sandbox-demo-deny"]
    decorated = {
        **deny,
        "metadata": {
            **deny["metadata"],
            "resourceVersion": "7",
            "labels": {**deny["metadata"]["labels"], "policy.example.com/team": "a"},
            "annotations": {
                **(deny["metadata"].get("annotations") or {}),
                "webhook.example.com/seen": "yes",
            },
            "finalizers": ["networking.k8s.aws/resources"],
        },
    }
    observed = {**children.network_policies, "sandbox-demo-deny": decorated}
    children = dataclasses.replace(children, network_policies=observed, pod=pod_json())
    result = run(snapshot(spec=spec, finalizers=FIN, children=children))
    assert summary(result) == []

    tampered = {**decorated, "spec": {**decorated["spec"], "policyTypes": ["Ingress"]}}
    result = run(
        snapshot(
            spec=spec,
            finalizers=FIN,
            children=dataclasses.replace(
                children, network_policies={**observed, "sandbox-demo-deny": tampered}
            ),
        )
    )
    assert summary(result) == [("replace", "NetworkPolicy", "sandbox-demo-deny")]
    body = result.actions[0].body
    assert body is not None
    assert body["spec"] == deny["spec"]
    assert body["metadata"]["labels"]["policy.example.com/team"] == "a"
    assert all(
        body["metadata"]["labels"][key] == value
        for key, value in deny["metadata"]["labels"].items()
    )
    assert body["metadata"]["annotations"]["webhook.example.com/seen"] == "yes"
    assert body["metadata"]["finalizers"] == ["networking.k8s.aws/resources"]
    assert body["metadata"]["ownerReferences"] == deny["metadata"]["ownerReferences"]


def test_unresolved_egress_is_reported_and_rechecked() -> None:
    result = run(snapshot(spec={"networkAccess": {"egress": [{"domain": "pypi.org"}]}}))
    assert condition(result, "NetworkReady") == ("False", "EgressUnresolved")
    assert result.requeue_after_seconds == OPTIONS.egress_refresh_interval_seconds


def test_a_foreign_child_is_never_adopted() -> None:
    result = run(snapshot(children=plan.Children(pod=pod_json(uid_label="someone-else"))))
    assert result.status.phase == "Failed"
    assert condition(result, "Ready") == ("False", "NameConflict")
    assert result.actions == ()


def test_a_policy_name_taken_by_another_sandbox_is_a_name_conflict() -> None:
    """Another sandbox's policy under one of ours (a hashed name can equal a plain one):
    creating ours would meet AlreadyExists, count as done, and leave the pod with no policy."""
    result = run(
        snapshot(children=plan.Children(foreign_policies=frozenset({"sandbox-demo-deny"})))
    )
    assert result.status.phase == "Failed"
    assert condition(result, "Ready") == ("False", "NameConflict")
    assert any("sandbox-demo-deny" in (c.message or "") for c in result.status.conditions or [])
    assert result.actions == ()
    # A foreign policy under a name this sandbox does not want (no ingress) is no conflict.
    unrelated = run(
        snapshot(children=plan.Children(foreign_policies=frozenset({"sandbox-demo-ingress"})))
    )
    assert unrelated.status.phase != "Failed"


def test_deletion_deletes_the_pod_first_then_the_rest_then_removes_the_finalizer() -> None:
    spec = {"storage": {"persistent": True}}
    first = run(snapshot(spec=spec))
    children = applied(first, plan.Children())
    result = run(snapshot(spec=spec, finalizers=FIN, deleting=True, children=children))
    assert result.status.phase == "Terminating"
    assert condition(result, "Ready") == ("False", "Terminating")
    # The pod goes first, with its Service; its policies stay until it is gone (a terminating
    # pod runs for its grace period), and so do its account and claim.
    assert summary(result) == [
        ("delete", "Pod", "sandbox-demo"),
        ("delete", "Service", "sandbox-demo"),
    ]
    assert result.requeue_after_seconds == OPTIONS.deletion_poll_seconds
    # A pod being deleted is not deleted again, and nothing else goes meanwhile.
    terminating = dataclasses.replace(children, pod=pod_json(deleting=True), service=None)
    waiting = run(
        snapshot(
            spec=spec, finalizers=FIN, deleting=True, status=_dump(result), children=terminating
        )
    )
    assert waiting.actions == ()
    assert waiting.requeue_after_seconds == OPTIONS.deletion_poll_seconds
    # The pod gone: the rest goes, and the finalizer with it in the same pass (the apply
    # removes it only if every delete found its child gone at once); no status write.
    rest = dataclasses.replace(children, pod=None, service=None)
    last = run(
        snapshot(spec=spec, finalizers=FIN, deleting=True, status=_dump(result), children=rest)
    )
    verbs = summary(last)
    assert verbs[-1] == ("remove-finalizer", None, None)
    assert sorted(verbs[:-1]) == sorted(
        [
            ("delete", "ServiceAccount", "sandbox-demo"),
            ("delete", "PersistentVolumeClaim", "sandbox-demo-data"),
            *(("delete", "NetworkPolicy", name) for name in children.network_policies),
        ]
    )
    assert not last.status_changed
    assert last.requeue_after_seconds == OPTIONS.deletion_poll_seconds  # if one is held
    # All gone: only the finalizer removal, no status write.
    done = run(snapshot(finalizers=FIN, deleting=True, status=_dump(result)))
    assert summary(done) == [("remove-finalizer", None, None)]
    assert not done.status_changed
    assert done.requeue_after_seconds is None


def test_another_pod_of_the_sandbox_holds_its_policies_and_finalizer() -> None:
    """A pod of the sandbox's besides the one at its name (a warm pod it adopted for a claim
    that was then discarded, a cold pod beside a warm one) is released like its pod: deleted
    first, and nothing else goes while it terminates."""
    first = run(snapshot())
    children = applied(first, plan.Children())
    adopted = dict(children.pod or {})
    adopted["metadata"] = {**adopted["metadata"], "name": "warm-p-0", "uid": "adopted-uid"}
    rest = dataclasses.replace(children, pod=None, service=None, other_pods=(adopted,))
    result = run(snapshot(finalizers=FIN, deleting=True, children=rest))
    assert summary(result) == [("delete", "Pod", "warm-p-0")]
    assert result.actions[0].uid == "adopted-uid"
    assert result.status.phase == "Terminating"
    terminating = {**adopted, "metadata": {**adopted["metadata"], "deletionTimestamp": "x"}}
    waiting = run(
        snapshot(
            finalizers=FIN,
            deleting=True,
            status=_dump(result),
            children=dataclasses.replace(rest, other_pods=(terminating,)),
        )
    )
    assert waiting.actions == ()
    # A pod that is not the sandbox's (neither its UID label nor its owner reference) is
    # none of its business.
    stranger = {
        **adopted,
        "metadata": {**adopted["metadata"], "labels": {}, "ownerReferences": []},
    }
    alone = run(
        snapshot(
            finalizers=FIN,
            deleting=True,
            children=dataclasses.replace(rest, other_pods=(stranger,)),
        )
    )
    assert ("remove-finalizer", None, None) in summary(alone)


def test_a_child_held_by_someone_elses_finalizer_keeps_ours() -> None:
    first = run(snapshot())
    children = applied(first, plan.Children())
    held = dict(children.service_account or {})
    held["metadata"] = {**held["metadata"], "deletionTimestamp": "2025-06-01T12:09:40Z"}
    rest = dataclasses.replace(children, pod=None, service=None, service_account=held)
    result = run(snapshot(finalizers=FIN, deleting=True, children=rest))
    verbs = summary(result)
    assert ("remove-finalizer", None, None) not in verbs
    assert ("delete", "ServiceAccount", "sandbox-demo") not in verbs  # already deleting
    assert {kind for _, kind, _ in verbs} == {"NetworkPolicy"}
    assert result.status.phase == "Terminating"
    assert result.requeue_after_seconds == OPTIONS.deletion_poll_seconds


def test_a_terminal_sandbox_releases_the_pod_before_its_policies() -> None:
    first = run(snapshot())
    children = applied(first, plan.Children())
    ended = {**_dump(first), "phase": "Terminated"}
    result = run(snapshot(finalizers=FIN, status=ended, children=children))
    assert summary(result) == [
        ("delete", "Pod", "sandbox-demo"),
        ("delete", "Service", "sandbox-demo"),
    ]
    rest = dataclasses.replace(children, pod=None, service=None)
    after = run(snapshot(finalizers=FIN, status=ended, children=rest))
    assert {kind for _, kind, _ in summary(after)} == {"ServiceAccount", "NetworkPolicy"}
    assert ("remove-finalizer", None, None) not in summary(after)  # the object stays


def test_a_release_that_failed_then_succeeded_says_so_beside_the_ended_reason() -> None:
    """An ended sandbox's failed delete is reported on ChildrenReleased (Ready keeps why it
    ended); once nothing remains, ChildrenReleased turns True."""
    first = run(snapshot())
    ended = {
        **_dump(first),
        "phase": "Failed",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "PodFailed",
                "message": "exit 1",
                "lastTransitionTime": "2025-06-01T12:00:00Z",
            },
            {
                "type": "ChildrenReleased",
                "status": "False",
                "reason": "CleanupFailed",
                "message": "deleting NetworkPolicy sandbox-demo-deny: 503",
                "lastTransitionTime": "2025-06-01T12:00:00Z",
            },
        ],
    }
    done = run(snapshot(finalizers=FIN, status=ended, children=plan.Children()))
    assert condition(done, "ChildrenReleased") == ("True", "Released")
    assert condition(done, "Ready") == ("False", "PodFailed")
    assert done.status.phase == "Failed"


def test_retained_claim_does_not_hold_the_finalizer() -> None:
    options = settings_module.SandboxOptions(pvc_retention=settings_module.PvcRetention.RETAIN)
    first = run(snapshot(spec={"storage": {"persistent": True}}), options)
    claim = applied(first, plan.Children()).claim
    result = run(
        snapshot(finalizers=FIN, deleting=True, children=plan.Children(claim=claim)), options
    )
    assert summary(result) == [("remove-finalizer", None, None)]


def test_deletion_without_our_finalizer_does_nothing() -> None:
    result = run(snapshot(deleting=True, children=plan.Children(pod=pod_json())))
    assert result.actions == ()
    assert not result.status_changed


SPECS = st.fixed_dictionaries(
    {},
    optional={
        "securityLevel": st.sampled_from(["standard", "high"]),
        "networkAccess": st.fixed_dictionaries(
            {"ingress": st.booleans()},
            optional={
                "egress": st.lists(
                    st.sampled_from([{"domain": "a.io"}, {"domain": "b.io"}]),
                    max_size=2,
                    unique_by=lambda r: r["domain"],
                )
            },
        ),
        "storage": st.fixed_dictionaries({"persistent": st.booleans()}),
        "resources": st.fixed_dictionaries({"cpuPinning": st.booleans()}),
    },
)


@given(spec=SPECS, isolation=st.booleans(), resolved=st.booleans())
def test_plans_are_idempotent(spec: dict[str, Any], isolation: bool, resolved: bool) -> None:
    options = settings_module.SandboxOptions(
        namespace_isolation=isolation, egress_mode=settings_module.EgressMode.IPBLOCK
    )
    addresses = {"a.io": ("1.1.1.1",), "b.io": ("2.2.2.2",)} if resolved else {}
    first = run(snapshot(spec=spec, resolved=addresses), options)
    children = applied(first, plan.Children())
    second = run(
        snapshot(
            spec=spec, finalizers=FIN, status=_dump(first), children=children, resolved=addresses
        ),
        options,
    )
    assert second.actions == ()
    # The pod now exists (PodPending instead of Creating); the same observations again
    # change nothing at all.
    third = run(
        snapshot(
            spec=spec, finalizers=FIN, status=_dump(second), children=children, resolved=addresses
        ),
        options,
    )
    assert third.actions == ()
    assert not third.status_changed


# -- apply waves (pure scheduling) ----------------------------------------------------------


def waves(result: plan.Plan) -> list[list[tuple[str, str | None, str | None]]]:
    return [
        [(a.verb.value, a.kind.value if a.kind else None, a.name) for a in wave]
        for wave in apply.schedule(result)
    ]


def test_cold_path_is_two_waves() -> None:
    """Finalizer, SA and deny policy together (all owned: GC-safe); then the pod with its
    Service (which the pod does not wait for)."""
    assert waves(run(snapshot())) == [
        [
            ("add-finalizer", None, None),
            ("create", "ServiceAccount", "sandbox-demo"),
            ("create", "NetworkPolicy", "sandbox-demo-deny"),
        ],
        [("create", "Pod", "sandbox-demo"), ("create", "Service", "sandbox-demo")],
    ]


def test_a_service_recreated_beside_a_running_pod_goes_in_the_first_wave() -> None:
    """Without a pod to create there is no second wave to join."""
    result = run(snapshot())
    service = next(a for a in result.actions if a.kind is plan.Kind.SERVICE)
    alone = dataclasses.replace(result, actions=(service,))
    assert waves(alone) == [[("create", "Service", "sandbox-demo")]]


def test_isolation_keeps_the_finalizer_and_namespace_first() -> None:
    options = settings_module.SandboxOptions(
        egress_mode=settings_module.EgressMode.IPBLOCK, namespace_isolation=True
    )
    found = waves(run(snapshot(), options))
    assert found[0] == [("add-finalizer", None, None)]
    assert [a[1] for a in found[1]] == ["Namespace"]
    assert [a[1] for a in found[3]] == ["Pod", "Service"]


def test_isolation_namespace_being_deleted_is_waited_for() -> None:
    """Deleted by hand: nothing is created in it while it terminates (the API server refuses
    that with 403, a refused write); once it is gone, it and every child come back."""
    options = settings_module.SandboxOptions(
        egress_mode=settings_module.EgressMode.IPBLOCK, namespace_isolation=True
    )
    fresh = run(snapshot(), options)
    namespace = applied(fresh, plan.Children()).namespace
    assert namespace is not None
    terminating = plan.Children(
        namespace={
            **namespace,
            "metadata": {**namespace["metadata"], "deletionTimestamp": "2025-06-01T12:09:50Z"},
        },
        pod=pod_json(deleting=True),
    )
    status = {**_dump(fresh), "phase": "Running", "startTime": "2025-06-01T12:09:00Z"}
    result = run(snapshot(finalizers=FIN, status=status, children=terminating), options)
    assert summary(result) == []
    assert result.requeue_after_seconds == options.deletion_poll_seconds
    assert result.status.phase == "Creating"
    assert condition(result, "Ready") == ("False", "PodNotReady")

    gone = run(snapshot(finalizers=FIN, status=status), options)
    assert [kind for _, kind, _ in summary(gone)] == [
        "Namespace",
        "ServiceAccount",
        "NetworkPolicy",
        "Service",
        "Pod",
    ]


def test_retained_claim_keeps_the_finalizer_first() -> None:
    options = settings_module.SandboxOptions(
        egress_mode=settings_module.EgressMode.IPBLOCK,
        pvc_retention=settings_module.PvcRetention.RETAIN,
    )
    found = waves(run(snapshot(spec={"storage": {"persistent": True}}), options))
    assert found[0] == [("add-finalizer", None, None)]


def test_missing_finalizer_is_added_even_when_children_exist() -> None:
    fresh = run(snapshot())
    children = applied(fresh, plan.Children())
    assert summary(run(snapshot(children=children))) == [("add-finalizer", None, None)]
    assert summary(run(snapshot(children=children, finalizers=FIN))) == []


def test_legacy_policies_are_deleted_after_the_new_deny() -> None:
    """Sandboxes created with three fixed policies get the merged deny, then lose the old."""
    fresh = run(snapshot())
    children = applied(fresh, plan.Children())
    legacy = dict(children.network_policies)
    deny = legacy["sandbox-demo-deny"]
    for suffix in ("dns", "api"):
        legacy[f"sandbox-demo-{suffix}"] = {
            **deny,
            "metadata": {**deny["metadata"], "name": f"sandbox-demo-{suffix}", "uid": suffix},
        }
    legacy["sandbox-demo-deny"] = {
        **deny,
        "metadata": {**deny["metadata"], "resourceVersion": "3"},
        "spec": {"podSelector": deny["spec"]["podSelector"], "policyTypes": ["Ingress", "Egress"]},
    }
    result = run(
        snapshot(children=dataclasses.replace(children, network_policies=legacy), finalizers=FIN)
    )
    assert waves(result) == [
        [("replace", "NetworkPolicy", "sandbox-demo-deny")],
        [("delete", "NetworkPolicy", "sandbox-demo-dns")],
        [("delete", "NetworkPolicy", "sandbox-demo-api")],
    ]


@pytest.mark.parametrize(
    ("ready", "problem"),
    [
        (None, False),
        (("True", "PodReady"), False),
        (("False", "Creating"), False),
        (("False", "PodPending"), False),
        (("False", "PodNotReady"), False),
        (("False", "Forbidden"), True),
        (("False", "WriteRejected"), True),
        (("False", "NameConflict"), True),
        (("False", "EgressUnresolved"), True),
        (("False", ""), True),
    ],
)
def test_a_ready_condition_reports_a_problem_unless_it_says_progress(
    ready: tuple[str, str] | None, problem: bool
) -> None:
    """A status that reports a problem is written after the creates, not beside them (a
    refused pod create re-checked would otherwise write the status twice each time)."""
    conds = (
        []
        if ready is None
        else [
            meta.Condition(
                type="Ready",
                status=ready[0],
                reason=ready[1],
                message="m",
                last_transition_time="2025-06-01T12:00:00Z",
            )
        ]
    )
    status = sandbox_model.SandboxStatus(phase="Creating", conditions=conds)
    assert lifecycle.reports_problem(status) is problem
    # The other conditions never count.
    other = meta.Condition(
        type="NetworkReady", status="False", reason="Forbidden", last_transition_time="t"
    )
    assert (
        lifecycle.reports_problem(
            sandbox_model.SandboxStatus(phase="Creating", conditions=[*conds, other])
        )
        is problem
    )


def test_a_shared_volume_is_checked_before_the_pod_and_not_after() -> None:
    """An unshared claim fails the sandbox before any child; once its pod exists, the claim
    it was allowed to mount is not looked at again (its label may change)."""
    spec = {"storage": {"sharedVolumes": [{"claimName": "d", "mountPath": "/d"}]}}
    refused = run(dataclasses.replace(snapshot(spec=spec), shared_claims={"d": None}))
    assert refused.status.phase == "Failed"
    assert condition(refused, "Ready") == ("False", "SharedVolumeNotAllowed")
    assert not any(a.verb is plan.Verb.CREATE for a in refused.actions)
    shared = {"d": {"metadata": {"labels": {"llmsafespace.dev/shareable": "read-only"}}}}
    first = run(dataclasses.replace(snapshot(spec=spec), shared_claims=shared))
    assert ("create", "Pod", "sandbox-demo") in summary(first)
    children = dataclasses.replace(applied(first, plan.Children()), pod=pod_json(ready=True))
    later = snapshot(spec=spec, finalizers=FIN, status=_dump(first), children=children)
    assert run(later).status.phase == "Running"  # no claim read: a running pod is not judged


def test_a_running_sandbox_keeps_a_seccomp_profile_no_longer_allowed() -> None:
    """Refused before a pod exists; a pod admitted with it (an earlier version, an older
    setting) is not failed for it mid-run."""
    spec = {
        "securityContext": {
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/old.json"}
        }
    }
    refused = run(snapshot(spec=spec))
    assert condition(refused, "Ready") == ("False", "SeccompProfileNotAllowed")
    allowed_then = OPTIONS.model_copy(update={"seccomp_localhost_prefixes": ["profiles/"]})
    first = run(snapshot(spec=spec), allowed_then)
    children = dataclasses.replace(applied(first, plan.Children()), pod=pod_json(ready=True))
    later = run(snapshot(spec=spec, finalizers=FIN, status=_dump(first), children=children))
    assert later.status.phase == "Running"
    assert not any(a.verb is plan.Verb.DELETE for a in later.actions)
