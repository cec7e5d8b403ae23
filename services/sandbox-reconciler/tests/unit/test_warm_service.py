"""The Service prepared with a warm pod: its name, and what the planner does with it once a
sandbox runs on the pod (kept when adopted, re-created when missing, never a stranger's)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lss_common.models import labels
from lss_sandbox_reconciler import names, observe, plan, warm
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module
from lss_sandbox_reconciler.render import service as service_render

from .test_lifecycle_plan import FIN, _dump, applied, pod_json, run, snapshot, summary

WARM_POD = "py-3-1a2b3c4d"
WARM_UID = "wp-uid-1"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@given(st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,80}[a-z0-9])?", fullmatch=True))
def test_warm_service_names_are_dns_labels_of_their_own(pod_name: str) -> None:
    name = names.warm_service_name(pod_name)
    assert len(name) <= 63
    assert DNS_1035.match(name)
    assert name.startswith("warm-")  # never a sandbox's own "sandbox-..." Service
    assert names.warm_service_name(pod_name) == name


def test_a_short_pod_name_stays_readable() -> None:
    assert names.warm_service_name(WARM_POD) == f"warm-{WARM_POD}"


def warm_pod(**changes: Any) -> dict[str, Any]:
    pod = pod_json(ready=True)
    pod["metadata"]["name"] = WARM_POD
    pod["metadata"]["labels"][labels.WARM_POD_UID] = WARM_UID
    pod["metadata"].update(changes)
    return pod


def running_warm(children: plan.Children) -> plan.Plan:
    """A pass of a sandbox that started warm on WARM_POD, with ``children`` observed."""
    first = run(snapshot())
    base = applied(first, plan.Children())
    status = {
        **_dump(first),
        "phase": "Running",
        "podName": WARM_POD,
        "warmPodRef": {"name": "py-3"},
        "startTime": "2025-06-01T12:09:00Z",
    }
    observed = dataclasses.replace(
        base,
        service=None,
        service_account=None,
        pod=children.pod,
        warm_service=children.warm_service,
    )
    return run(snapshot(finalizers=FIN, status=status, children=observed))


def owner() -> owner_module.Owner:
    return owner_module.owner_of(snapshot().sandbox, settings=settings_module.SandboxOptions())


def test_an_adopted_warm_service_is_the_sandboxs_service_and_endpoint() -> None:
    adopted = service_render.render_warm_service(owner(), pod_name=WARM_POD, warm_pod_uid=WARM_UID)
    result = running_warm(plan.Children(pod=warm_pod(), warm_service=adopted))
    assert summary(result) == []  # nothing to write: no own Service, no ServiceAccount
    assert result.status.phase == "Running"
    assert result.status.endpoint == f"warm-{WARM_POD}.team-a.svc.cluster.local"
    assert adopted["spec"]["selector"] == {labels.WARM_POD_UID: WARM_UID}
    assert adopted["metadata"]["labels"][owner_module.SANDBOX_UID] == owner().uid


def test_a_missing_warm_service_is_re_created_for_the_sandbox() -> None:
    result = running_warm(plan.Children(pod=warm_pod()))
    creates = [a for a in result.actions if a.verb is plan.Verb.CREATE]
    assert [(a.kind, a.name) for a in creates] == [(plan.Kind.SERVICE, f"warm-{WARM_POD}")]
    body = creates[0].body
    assert body is not None
    assert body["spec"]["selector"] == {labels.WARM_POD_UID: WARM_UID}
    assert body["metadata"]["ownerReferences"][0]["kind"] == "Sandbox"
    assert result.status.endpoint == f"warm-{WARM_POD}.team-a.svc.cluster.local"


def adopted_as_prepared() -> dict[str, Any]:
    """The pool manager's Service after a claim re-owned it: its labels as prepared (no
    sandbox label), the Sandbox's controller reference."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"warm-{WARM_POD}",
            "namespace": "team-a",
            "labels": {
                labels.APP: labels.APP_VALUE,
                owner_module.COMPONENT: "warm-service",
                labels.WARM_POD_UID: WARM_UID,
            },
            "ownerReferences": [owner_module.owner_reference(owner())],
        },
        "spec": service_render.service_spec(service_render.warm_selector(WARM_UID)),
    }


def test_a_prepared_service_re_owned_without_relabelling_is_the_sandboxs() -> None:
    adopted = adopted_as_prepared()
    assert owner_module.is_owned_by(adopted, owner=owner())
    result = running_warm(plan.Children(pod=warm_pod(), warm_service=adopted))
    assert summary(result) == []  # kept as it is: no relabel, no replace
    assert result.status.phase == "Running"
    assert result.status.endpoint == f"warm-{WARM_POD}.team-a.svc.cluster.local"


def test_deleting_a_warm_sandbox_deletes_the_re_owned_service() -> None:
    adopted = adopted_as_prepared()
    observed = plan.Children(pod=warm_pod(), warm_service=adopted)
    status = {"phase": "Running", "podName": WARM_POD, "warmPodRef": {"name": "py-3"}}
    result = run(
        snapshot(
            finalizers=FIN,
            status=status,
            children=observed,
            deleting=True,
        )
    )
    deletes = [(a.kind, a.name) for a in result.actions if a.verb is plan.Verb.DELETE]
    assert (plan.Kind.SERVICE, f"warm-{WARM_POD}") in deletes


def test_ownership_by_reference_needs_a_controller_reference_to_this_sandbox() -> None:
    def with_refs(*refs: dict[str, Any]) -> dict[str, Any]:
        found = adopted_as_prepared()
        found["metadata"]["ownerReferences"] = list(refs)
        return found

    ours = owner_module.owner_reference(owner())
    assert owner_module.is_owned_by(with_refs(ours), owner=owner())
    # still the WarmPod's (not claimed): not the sandbox's
    warm_ref = {**ours, "kind": "WarmPod", "name": "py-3", "uid": WARM_UID}
    assert not owner_module.is_owned_by(with_refs(warm_ref), owner=owner())
    # another sandbox's, a reference that is not the controller, another group's kind
    assert not owner_module.is_owned_by(with_refs({**ours, "uid": "other"}), owner=owner())
    assert not owner_module.is_owned_by(with_refs({**ours, "controller": False}), owner=owner())
    foreign = {**ours, "apiVersion": "example.com/v1"}
    assert not owner_module.is_owned_by(with_refs(foreign), owner=owner())
    assert not owner_module.is_owned_by(with_refs(), owner=owner())


def test_a_sandbox_label_naming_another_sandbox_wins_over_our_reference() -> None:
    """A label naming another sandbox is never overruled by a reference to this one."""
    found = adopted_as_prepared()
    found["metadata"]["labels"][owner_module.SANDBOX_UID] = "someone-else"
    assert not owner_module.is_owned_by(found, owner=owner())
    result = running_warm(plan.Children(pod=warm_pod(), warm_service=found))
    assert result.status.phase == "Failed"


def test_a_strangers_service_under_the_warm_name_is_a_name_conflict() -> None:
    stranger = service_render.render_warm_service(owner(), pod_name=WARM_POD, warm_pod_uid=WARM_UID)
    stranger["metadata"]["labels"][owner_module.SANDBOX_UID] = "someone-else"
    result = running_warm(plan.Children(pod=warm_pod(), warm_service=stranger))
    assert result.status.phase == "Failed"
    assert not [a for a in result.actions if a.verb is plan.Verb.CREATE]


def test_a_gone_warm_pods_service_goes_when_a_pod_of_the_sandboxs_own_replaces_it() -> None:
    """The warm pod was deleted by hand: the sandbox gets its own pod, account and Service,
    and the warm pod's Service (which selects only the gone pod) is deleted in that pass."""
    adopted = adopted_as_prepared()
    adopted["metadata"]["uid"] = "svc-uid"
    result = running_warm(plan.Children(pod=None, warm_service=adopted))
    creates = {(a.kind, a.name) for a in result.actions if a.verb is plan.Verb.CREATE}
    assert creates == {
        (plan.Kind.SERVICE_ACCOUNT, "sandbox-demo"),
        (plan.Kind.SERVICE, "sandbox-demo"),
        (plan.Kind.POD, "sandbox-demo"),
    }
    deletes = [(a.kind, a.name, a.uid) for a in result.actions if a.verb is plan.Verb.DELETE]
    assert deletes == [(plan.Kind.SERVICE, f"warm-{WARM_POD}", "svc-uid")]
    assert result.status.pod_name == "sandbox-demo"
    assert result.status.endpoint == "sandbox-demo.team-a.svc.cluster.local"


def test_a_gone_warm_pods_service_is_left_when_not_ours_or_already_going() -> None:
    stranger = adopted_as_prepared()
    stranger["metadata"]["ownerReferences"] = []
    going = adopted_as_prepared()
    going["metadata"]["deletionTimestamp"] = "2025-06-01T12:10:01Z"
    for found in (stranger, going):
        result = running_warm(plan.Children(pod=None, warm_service=found))
        assert not [a for a in result.actions if a.verb is plan.Verb.DELETE]
        assert result.status.phase == "Creating"  # the own pod is created, no conflict


def test_a_pod_adopted_before_pods_carried_the_label_keeps_the_sandboxs_own_service() -> None:
    pod = pod_json(ready=True)
    pod["metadata"]["name"] = WARM_POD
    result = running_warm(plan.Children(pod=pod))
    creates = [(a.kind, a.name) for a in result.actions if a.verb is plan.Verb.CREATE]
    assert creates == [(plan.Kind.SERVICE, "sandbox-demo")]
    assert result.status.endpoint == "sandbox-demo.team-a.svc.cluster.local"


def test_the_claims_first_wave_leaves_the_cold_only_children_to_a_cold_fallback() -> None:
    planned = run(snapshot())
    early, rest = warm.split_early(planned, likely_warm=True)
    assert {a.kind for a in early} == {None, plan.Kind.NETWORK_POLICY}  # finalizer, deny
    assert {a.kind for a in rest} == {
        plan.Kind.SERVICE_ACCOUNT,
        plan.Kind.SERVICE,
        plan.Kind.POD,
    }
    # Cold: the Service goes with the pod (which does not wait for it), not before it.
    cold_early, cold_rest = warm.split_early(planned)
    assert {a.kind for a in cold_early} == {
        None,
        plan.Kind.SERVICE_ACCOUNT,
        plan.Kind.NETWORK_POLICY,
    }
    assert {a.kind for a in cold_rest} == {plan.Kind.SERVICE, plan.Kind.POD}


def test_an_ended_warm_sandbox_keeps_its_policies_until_its_pod_is_gone() -> None:
    """A warm pod is found by ``status.podName`` alone (``observe.warm_pod_name``): the
    release must not clear it while the pod terminates, or the next pass, not seeing the
    pod, would delete the policies that still confine it."""
    first = run(snapshot())
    base = applied(first, plan.Children())
    running = {
        **_dump(first),
        "phase": "Running",
        "podName": WARM_POD,
        "warmPodRef": {"name": "py-3"},
        "startTime": "2025-06-01T12:04:00Z",
    }
    observed = dataclasses.replace(
        base,
        service=None,
        service_account=None,
        pod=warm_pod(),
        warm_service=adopted_as_prepared(),
    )
    spec = {"timeout": 360}
    ended = run(snapshot(spec=spec, finalizers=FIN, status=running, children=observed))
    assert ended.status.phase == "Terminated"
    assert {(a.kind, a.name) for a in ended.actions} == {
        (plan.Kind.POD, WARM_POD),
        (plan.Kind.SERVICE, f"warm-{WARM_POD}"),
    }
    # The pod terminates (its grace period): the next pass still finds it by its name.
    after = snapshot(spec=spec, finalizers=FIN, status=_dump(ended))
    assert observe.warm_pod_name(after.sandbox) == WARM_POD
    terminating = dataclasses.replace(
        observed, pod=warm_pod(deletionTimestamp="2025-06-01T12:10:01Z"), warm_service=None
    )
    waiting = run(dataclasses.replace(after, children=terminating))
    assert waiting.actions == ()
    assert waiting.status.pod_name == WARM_POD
    # Gone: now the policies go, and the status forgets the pod.
    gone = run(dataclasses.replace(after, children=dataclasses.replace(terminating, pod=None)))
    assert {a.kind for a in gone.actions} == {plan.Kind.NETWORK_POLICY}
    assert gone.status.pod_name is None
