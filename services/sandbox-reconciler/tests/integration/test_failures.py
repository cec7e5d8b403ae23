"""Every failure path ends with its documented condition, and the reconciler never crashes.

- pod fates (kwok stages keyed on the image): ImagePullBackOff → Failed/ImagePullBackOff;
  CrashLoopBackOff and a pod that fails → Failed/PodFailed; a request no node fits, past the
  (short) unschedulable deadline → Failed/Unschedulable with PodScheduled False. A failed
  sandbox's children are released (terminal, like a Pod).
- a pod that never becomes Ready stays Creating (Ready False, PodNotReady); deleting the
  sandbox while Creating removes it and every child.
- invalid input the schema cannot catch: unknown runtime (RuntimeNotFound), a runtime the
  validator marked unavailable (RuntimeUnavailable), a missing profile (ProfileNotFound), a
  profile in another namespace (ProfileNamespaceForbidden), a contradictory profile
  (ProfileConflict), egress to the cluster's or the cloud's own network (a ``.svc`` name, a
  profile CIDR on the metadata address: EgressNotAllowed), a Localhost seccomp profile not
  installed for sandboxes (SeccompProfileNotAllowed) or climbing out of the seccomp root
  (InvalidSpec): Failed with the condition naming the field, no child and no finalizer
  created, and the same reconciler goes on to run a valid sandbox afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from reconciler_harness import Cluster, World, condition, pod_name

from lss_common import errors
from lss_common.kube import objects, writes
from lss_common.models import kinds
from lss_common.testing import eventually
from lss_dev import controlplane
from lss_sandbox_reconciler import names

pytestmark = pytest.mark.integration

EMPTY = {
    "Pod": [],
    "Service": [],
    "ServiceAccount": [],
    "NetworkPolicy": [],
    "PersistentVolumeClaim": [],
}


async def _released(cluster: Cluster, uid: str) -> None:
    async def released() -> bool:
        return await cluster.children(uid) == EMPTY

    await eventually.eventually(released, timeout_seconds=60, describe=f"children of {uid} gone")


async def test_pod_failures_end_failed_with_their_reason(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    world = await running(unschedulable_deadline_seconds=2.0)
    cases = {
        "pull": ("image-pull-backoff", {}, "ImagePullBackOff"),
        "crash": ("crash-loop", {}, "PodFailed"),
        "fail": ("fail", {}, "PodFailed"),
        "huge": (None, {"resources": {"cpu": "100", "memory": "1Gi"}}, "Unschedulable"),
    }
    uids: dict[str, str] = {}
    for index, (name, (fate, extra, _)) in enumerate(cases.items()):
        runtime = await cluster.create_runtime(
            image=controlplane.FATE_IMAGES[fate]
            if fate
            else "ghcr.io/llmsafespace/runtime-python:3.11",
            version=f"{index}.0",
        )
        created = await cluster.create_sandbox(name, **{"runtime": runtime, **extra})
        uids[name] = created["metadata"]["uid"]
    for name, (_, _, reason) in cases.items():
        obj = await cluster.wait_phase(name, "Failed")
        ready = condition(obj, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", reason), name
        assert ready["message"]
        if reason == "Unschedulable":
            assert condition(obj, "PodScheduled")["reason"] == "Unschedulable"
        await _released(cluster, uids[name])
    reconciler = world.reconcilers[0]
    await reconciler.counted("llmsafespace_sandbox_failed_total", 2, reason="PodFailed")
    for name in cases:
        await cluster.delete_sandbox(name)
    for name in cases:
        await cluster.wait_gone(name)


async def test_never_ready_stays_creating_and_delete_while_creating(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    await running()
    runtime = await cluster.create_runtime(image=controlplane.FATE_IMAGES["never-ready"])
    created = await cluster.create_sandbox("slow", runtime=runtime)
    uid = created["metadata"]["uid"]

    async def running_not_ready() -> bool:
        obj = await cluster.sandbox("slow")
        pod = await cluster.child(objects.POD, "sandbox-slow")
        return bool(
            obj
            and obj.get("status", {}).get("phase") == "Creating"
            and condition(obj, "Ready")["reason"] == "PodNotReady"
            and pod
            and pod["status"].get("phase") == "Running"
        )

    await eventually.eventually(
        running_not_ready, timeout_seconds=60, describe="pod Running but not Ready; Creating"
    )
    await cluster.delete_sandbox("slow")
    await cluster.wait_gone("slow")
    assert await cluster.children(uid) == EMPTY


async def test_invalid_input_gives_a_clear_condition(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    world = await running()
    runtime = await cluster.create_runtime()
    unavailable = await cluster.create_runtime(version="9.0")
    await objects.patch_object(
        cluster.kube,
        resource=objects.RUNTIME_ENVIRONMENT,
        name=f"{cluster.language}-9-0",
        subresource="status",
        body={"status": {"available": False}},
    )
    await cluster.create_profile("other-language", spec={"language": "ruby"})
    await cluster.create_profile(
        "metadata-egress",
        spec={"networkPolicies": [{"type": "egress", "rules": [{"cidr": "169.254.169.254/32"}]}]},
    )
    cases = {
        "unknown-runtime": (
            {"runtime": f"{cluster.language}:0.1"},
            "RuntimeResolved",
            "RuntimeNotFound",
            "spec.runtime",
        ),
        "unavailable": ({"runtime": unavailable}, "RuntimeResolved", "RuntimeUnavailable", None),
        "missing-profile": (
            {"profileRef": {"name": "nope"}},
            "ProfileResolved",
            "ProfileNotFound",
            "spec.profileRef",
        ),
        "foreign-profile": (
            {"profileRef": {"name": "other-language", "namespace": "kube-system"}},
            "ProfileResolved",
            "ProfileNamespaceForbidden",
            "spec.profileRef.namespace",
        ),
        "contradictory": (
            {"profileRef": {"name": "other-language"}},
            "ProfileResolved",
            "ProfileConflict",
            "spec.profileRef",
        ),
        # Egress never opens the cluster's or the cloud's own network.
        "internal-domain": (
            {"networkAccess": {"egress": [{"domain": "kubernetes.default.svc"}]}},
            "Ready",
            "EgressNotAllowed",
            "spec.networkAccess.egress[0].domain",
        ),
        "metadata-cidr": (
            {"profileRef": {"name": "metadata-egress"}},
            "ProfileResolved",
            "EgressNotAllowed",
            "networkPolicies[0].rules[0]",
        ),
        # A node's seccomp profiles for other workloads are not the tenant's to pick.
        "foreign-seccomp": (
            {"securityContext": {"seccompProfile": _localhost("profiles/audit.json")}},
            "Ready",
            "SeccompProfileNotAllowed",
            "spec.securityContext.seccompProfile",
        ),
        "climbing-seccomp": (
            {"securityContext": {"seccompProfile": _localhost("llmsafespace/../audit.json")}},
            "Ready",
            "InvalidSpec",
            "spec.securityContext.seccompProfile",
        ),
    }
    for name, (spec, _, _, _) in cases.items():
        await cluster.create_sandbox(name, **{"runtime": runtime, **spec})
    for name, (_, condition_type, reason, field) in cases.items():
        obj = await cluster.wait_phase(name, "Failed")
        found = condition(obj, condition_type)
        assert (found["status"], found["reason"]) == ("False", reason), name
        assert condition(obj, "Ready")["reason"] == reason
        if field is not None:
            assert field in found["message"], found["message"]
        # Nothing was built, so nothing is guarded: no finalizer write at all.
        assert kinds.FINALIZER not in (obj["metadata"].get("finalizers") or [])
        assert await cluster.children(obj["metadata"]["uid"]) == EMPTY
    # The reconciler is still healthy and runs a valid sandbox.
    await cluster.create_sandbox("valid", runtime=runtime)
    await cluster.wait_phase("valid", "Running")
    reconciler = world.reconcilers[0]
    errors = reconciler.sample(
        "llmsafespace_bus_messages_total", stream=world.nats.events_stream, outcome="error"
    )
    assert errors == 0


async def test_a_strangers_object_under_a_new_sandboxs_child_name_is_never_taken(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    """A new sandbox's first pass does not read its children (none can exist yet); when one
    does — here a Service someone else made under the child name — that pass's create meets
    AlreadyExists, the pass reads everything again, and the sandbox fails with NameConflict.
    The stranger's Service is left as it was, and no pod remains (the first pass's pod,
    created beside the Service, is released with the rest; the Failed status is written
    before the release)."""
    world = await running()
    runtime = await cluster.create_runtime()
    stranger = {
        "metadata": {"name": pod_name("taken"), "labels": {"team": "other"}},
        "spec": {"selector": {"app": "other"}, "ports": [{"port": 80, "targetPort": 80}]},
    }
    before = await objects.create_object(
        cluster.kube, resource=objects.SERVICE, namespace=cluster.namespace, body=stranger
    )
    await cluster.create_sandbox("taken", runtime=runtime)
    obj = await cluster.wait_phase("taken", "Failed")
    found = condition(obj, "Ready")
    assert found["reason"] == "NameConflict"
    assert "Service" in found["message"]
    after = await cluster.child(objects.SERVICE, pod_name("taken"))
    assert after is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    await _released(cluster, obj["metadata"]["uid"])
    assert await cluster.child(objects.POD, pod_name("taken")) is None
    reconciler = world.reconcilers[0]
    assert reconciler.sample("llmsafespace_sandbox_conflicts_total") >= 1


async def test_a_failed_sandbox_stays_failed_when_its_release_is_interrupted(
    running: Callable[..., Awaitable[World]],
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pass that fails a sandbox (its pod failed) deletes the pod and its Service; the
    Service's delete fails this time (an outage). The Failed status is written before any
    delete, so the next passes release the rest and never take the terminating pod for one
    to wait for and re-create: the sandbox stays Failed, with no new pod. (Written after the
    deletes, the status was lost with the failed delete, the next pass read "pod being
    deleted" — Creating — and, the pod gone, created a new one.)"""
    world = await running()
    runtime = await cluster.create_runtime(image=controlplane.FATE_IMAGES["fail"], version="7.0")
    real = writes.delete
    failed: list[str] = []

    async def service_delete_fails_once(kube: Any, *, resource: Any, **kwargs: Any) -> Any:
        if resource is objects.SERVICE and not failed:
            failed.append(kwargs["name"])
            raise errors.RetryableError("the API server answered 503")
        return await real(kube, resource=resource, **kwargs)

    monkeypatch.setattr(writes, "delete", service_delete_fails_once)
    created = await cluster.create_sandbox("doomed", runtime=runtime)
    obj = await cluster.wait_phase("doomed", "Failed")
    assert condition(obj, "Ready")["reason"] == "PodFailed"
    await _released(cluster, created["metadata"]["uid"])
    assert failed == [names.service_name("doomed")]
    again = await cluster.sandbox("doomed")
    assert again is not None
    assert again["status"]["phase"] == "Failed"
    assert await cluster.child(objects.POD, names.pod_name("doomed")) is None
    # One pod ever: the failed pass's lost status did not revive the sandbox with another.
    reconciler = world.reconcilers[0]
    assert (
        reconciler.sample("llmsafespace_sandbox_api_writes_total", kind="Pod", verb="create") == 1
    )


def _localhost(path: str) -> dict[str, str]:
    return {"type": "Localhost", "localhostProfile": path}
