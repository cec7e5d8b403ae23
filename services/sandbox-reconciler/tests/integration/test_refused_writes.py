"""Writes the API server refuses for good, end to end (real admission, real RBAC).

A ValidatingAdmissionPolicy, bound to this test's namespace only, refuses one kind of write
the reconciler makes (as an operator's policy or a missing RBAC rule would):

- a refused **delete** of the sandbox's deny policy: the Sandbox keeps its finalizer and its
  deny policy, shows ``Ready=False/CleanupFailed`` naming the policy, a Warning Event, and
  ``llmsafespace_sandbox_cleanup_failures_total{kind="NetworkPolicy"}`` counts it; once the
  policy is lifted, the deletion completes by itself (the refusal's re-check) and nothing is
  left;
- a refused **create** of the sandbox's ServiceAccount: no pod is created without it, the
  Sandbox shows ``Ready=False`` with the API server's reason and message and a Warning Event;
  once lifted, the sandbox runs without any edit;
- a refused **status write** of the Sandbox (its condition is refused too): Warning Events
  say so, one per re-check; once lifted, it runs;
- a refused **finalizer patch**: no pod without the finalizer, ``Ready=False/Forbidden`` and
  an Event; once lifted, it runs with the finalizer;
- a delete that **fails for a while** (500: an unreachable webhook), not refused: the
  finalizer stays, ``CleanupFailed``, retried with the consumer's backoff, then completes.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from typing import Any

import pytest
from reconciler_harness import Cluster, RunningReconciler, World, condition, pod_name

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import kinds, labels
from lss_common.testing import eventually
from lss_common.testing.admission import REFUSAL_MESSAGE as _MESSAGE
from lss_common.testing.admission import refusing
from lss_dev import fixtures_kube, webhook
from lss_dev import platform as platform_module
from lss_sandbox_reconciler import names

pytestmark = pytest.mark.integration

_RETRY = {"refused_write_retry_seconds": 1.0}


async def _create_then_delete(
    cluster: Cluster, resource: objects.ApiResource, body: dict[str, Any]
) -> None:
    """One create and one delete of an object of the test's own (a policy's probe)."""
    with contextlib.suppress(errors.AlreadyExistsError):
        await objects.create_object(
            cluster.kube, resource=resource, body=body, namespace=cluster.namespace
        )
    await objects.delete_object(
        cluster.kube,
        resource=resource,
        name=body["metadata"]["name"],
        namespace=cluster.namespace,
    )


def _policy_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": {"matchLabels": {"lss-test": "nothing"}},
            "policyTypes": ["Ingress"],
        },
    }


async def _wait_ready_reason(cluster: Cluster, name: str, *, reason: str) -> dict[str, Any]:
    """The Sandbox once its Ready condition has ``reason``."""

    async def shown() -> dict[str, Any] | None:
        obj = await cluster.sandbox(name)
        return obj if _ready_reason(obj) == reason else None

    found: dict[str, Any] = await eventually.eventually(
        shown, timeout_seconds=60, describe=f"{name}: Ready=False/{reason}"
    )
    return found


def _ready_reason(obj: dict[str, Any] | None) -> str | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or ():
        if item["type"] == "Ready":
            return str(item.get("reason"))
    return None


async def _warning_events(cluster: Cluster, sandbox: str) -> list[dict[str, Any]]:
    events = await objects.list_objects(
        cluster.kube,
        resource=objects.EVENT,
        namespace=cluster.namespace,
        field_selector=f"involvedObject.kind=Sandbox,involvedObject.name={sandbox}",
    )
    return [e for e in events.items if e.get("type") == "Warning"]


async def test_a_refused_delete_keeps_the_finalizer_and_shows_why(
    world: World, cluster: Cluster
) -> None:
    reconciler = await world.start_reconciler(reconcile_options=_RETRY)
    await world.start_watcher()
    await cluster.create_runtime()
    created = await cluster.create_sandbox("stuck", timeout=600)
    uid = created["metadata"]["uid"]
    await cluster.wait_phase("stuck", "Running")
    deny = names.policy_name("stuck", policy=names.Policy.DENY)
    probe_name = f"probe-{uuid.uuid4().hex[:6]}"

    probe = functools.partial(
        _create_then_delete, cluster, objects.NETWORK_POLICY, _policy_body(probe_name)
    )
    rule = {
        "apiGroups": ["networking.k8s.io"],
        "apiVersions": ["v1"],
        "operations": ["DELETE"],
        "resources": ["networkpolicies"],
    }
    async with refusing(cluster.kube, namespace=cluster.namespace, rule=rule, probe=probe):
        await cluster.delete_sandbox("stuck")

        obj = await _wait_ready_reason(cluster, "stuck", reason="CleanupFailed")
        ready = condition(obj, "Ready")
        assert ready["status"] == "False"
        assert deny in ready["message"], ready
        assert _MESSAGE in ready["message"], ready
        assert kinds.FINALIZER in obj["metadata"]["finalizers"]
        # The pod went first (it goes before its policies); the deny policy is still there.
        assert await cluster.child(objects.POD, pod_name("stuck")) is None
        assert (await cluster.children(uid))["NetworkPolicy"] == [deny]
        warnings = await _warning_events(cluster, "stuck")
        assert [e["reason"] for e in warnings] == ["CleanupFailed"], warnings
        assert deny in warnings[0]["message"]
        failures = reconciler.sample(
            "llmsafespace_sandbox_cleanup_failures_total", kind="NetworkPolicy"
        )
        assert failures >= 1
        refusals = reconciler.sample(
            "llmsafespace_sandbox_refused_writes_total", reason="CleanupFailed"
        )
        assert refusals >= 1
        # Re-checks meet the same refusal: still held, and the Event is not posted again.
        await eventually.eventually(
            lambda: _more_than(reconciler, failures),
            timeout_seconds=30,
            describe="a re-check of the refused delete",
        )
        held = await cluster.sandbox("stuck")
        assert held is not None
        assert kinds.FINALIZER in held["metadata"]["finalizers"]
        assert len(await _warning_events(cluster, "stuck")) == 1

    # Lifted: the next re-check deletes the policy, then the finalizer goes.
    await cluster.wait_gone("stuck")
    assert all(not found for found in (await cluster.children(uid)).values())


async def _more_than(reconciler: Any, count: float) -> bool:
    sample = reconciler.sample("llmsafespace_sandbox_cleanup_failures_total", kind="NetworkPolicy")
    return bool(sample > count)


@pytest.mark.parametrize(
    ("refusal", "reason"), [("Forbidden", "Forbidden"), ("Invalid", "WriteRejected")]
)
async def test_a_refused_create_shows_why_and_runs_once_allowed(
    world: World, cluster: Cluster, refusal: str, reason: str
) -> None:
    """``refusal``: the admission policy's answer (Forbidden: 403, Invalid: 422); ``reason``:
    the condition's and the Event's reason."""
    reconciler = await world.start_reconciler(reconcile_options=_RETRY)
    await world.start_watcher()
    await cluster.create_runtime()
    probe_name = f"probe-{uuid.uuid4().hex[:6]}"

    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": probe_name}}
    probe = functools.partial(_create_then_delete, cluster, objects.SERVICE_ACCOUNT, account)
    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["serviceaccounts"],
    }
    async with refusing(
        cluster.kube, namespace=cluster.namespace, rule=rule, probe=probe, reason=refusal
    ):
        await cluster.create_sandbox("blocked", timeout=600)

        obj = await _wait_ready_reason(cluster, "blocked", reason=reason)
        ready = condition(obj, "Ready")
        assert ready["status"] == "False"
        assert _MESSAGE in ready["message"], ready
        assert obj["status"].get("phase") != "Running"
        # The pod never exists without its ServiceAccount.
        assert await cluster.child(objects.POD, pod_name("blocked")) is None
        warnings = await _warning_events(cluster, "blocked")
        assert [e["reason"] for e in warnings] == [reason], warnings
        refusals = reconciler.sample("llmsafespace_sandbox_refused_writes_total", reason=reason)
        assert refusals >= 1

    # Lifted: the refusal's re-check creates the account, then the pod; no edit needed.
    obj = await cluster.wait_phase("blocked", "Running")
    assert condition(obj, "Ready")["status"] == "True"
    assert await cluster.child(objects.SERVICE_ACCOUNT, pod_name("blocked")) is not None


async def _refused_on_one_sandbox(
    world: World,
    cluster: Cluster,
    *,
    name: str,
    resource: str,
    probe_patch: dict[str, Any],
) -> contextlib.AbstractAsyncContextManager[None]:
    """``name`` created while no watcher runs, then its writes to ``resource`` (sandboxes or
    sandboxes/status) refused; the probe is a no-op patch of it by the test."""
    await world.start_reconciler(reconcile_options=_RETRY)
    await cluster.create_runtime()
    await cluster.create_sandbox(name, timeout=600)

    async def probe() -> None:
        await objects.patch_object(
            cluster.kube,
            resource=objects.SANDBOX,
            name=name,
            namespace=cluster.namespace,
            subresource="status" if resource.endswith("/status") else None,
            body=probe_patch,
        )

    rule = {
        "apiGroups": [kinds.GROUP],
        "apiVersions": ["*"],
        "operations": ["UPDATE"],
        "resources": [resource],
    }
    return refusing(
        cluster.kube,
        namespace=cluster.namespace,
        rule=rule,
        probe=probe,
        allow=f"object.metadata.name != '{name}'",
    )


async def test_a_refused_status_write_is_reported_by_events_and_retried(
    world: World, cluster: Cluster
) -> None:
    refused = await _refused_on_one_sandbox(
        world,
        cluster,
        name="mute",
        resource="sandboxes/status",
        probe_patch={"status": {}},
    )
    async with refused:
        await world.start_watcher()

        async def retried() -> list[dict[str, Any]] | None:
            found = await _warning_events(cluster, "mute")
            return found if len(found) >= 2 else None

        warnings = await eventually.eventually(
            retried, timeout_seconds=60, describe="two Warning Events (a re-check)"
        )
        assert {e["reason"] for e in warnings} == {"Forbidden"}
        assert all(_MESSAGE in e["message"] for e in warnings)
        obj = await cluster.sandbox("mute")
        assert obj is not None
        assert not (obj.get("status") or {}).get("phase")

    running = await cluster.wait_phase("mute", "Running")
    assert kinds.FINALIZER in running["metadata"]["finalizers"]


async def test_a_refused_finalizer_patch_creates_no_pod_and_shows_why(
    world: World, cluster: Cluster
) -> None:
    refused = await _refused_on_one_sandbox(
        world,
        cluster,
        name="unheld",
        resource="sandboxes",
        probe_patch={"metadata": {"labels": {"test.llmsafespace.dev/probe": "yes"}}},
    )
    async with refused:
        await world.start_watcher()

        obj = await _wait_ready_reason(cluster, "unheld", reason="Forbidden")
        assert _MESSAGE in condition(obj, "Ready")["message"]
        assert kinds.FINALIZER not in (obj["metadata"].get("finalizers") or [])
        # A pod never exists without the finalizer that guarantees its cleanup.
        assert await cluster.child(objects.POD, pod_name("unheld")) is None
        warnings = await _warning_events(cluster, "unheld")
        assert [e["reason"] for e in warnings] == ["Forbidden"], warnings

    running = await cluster.wait_phase("unheld", "Running")
    assert kinds.FINALIZER in running["metadata"]["finalizers"]
    assert await cluster.child(objects.POD, pod_name("unheld")) is not None


async def test_a_delete_failing_for_a_while_keeps_the_finalizer_and_is_retried(
    world: World, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Not refused but failing: a validating webhook that cannot be reached (failurePolicy
    Fail) makes the API server answer the deny policy's delete with a 500. The Sandbox keeps
    its finalizer and shows ``CleanupFailed``; the hint is retried with backoff (counted on
    each try), logged as a retried failure, not as a refusal; once the webhook is gone the
    deletion completes."""
    reconciler = await world.start_reconciler()
    await world.start_watcher()
    await cluster.create_runtime()
    created = await cluster.create_sandbox("flaky", timeout=600)
    uid = created["metadata"]["uid"]
    await cluster.wait_phase("flaky", "Running")
    deny = names.policy_name("flaky", policy=names.Policy.DENY)
    name = f"lss-test-unreachable-{uuid.uuid4().hex[:8]}"
    await objects.create_object(
        cluster.kube,
        resource=webhook.WEBHOOKS,
        # Nothing listens on port 1: every call fails.
        body=webhook.configuration(
            name,
            url="https://127.0.0.1:1/validate",
            rule={
                "apiGroups": ["networking.k8s.io"],
                "apiVersions": ["v1"],
                "operations": ["DELETE"],
                "resources": ["networkpolicies"],
            },
            namespace=cluster.namespace,
            timeout_seconds=1,
        ),
    )
    try:
        await cluster.delete_sandbox("flaky")

        obj = await _wait_ready_reason(cluster, "flaky", reason="CleanupFailed")
        assert deny in condition(obj, "Ready")["message"]
        assert kinds.FINALIZER in obj["metadata"]["finalizers"]
        # Retried with the consumer's backoff (not a refusal: no refused-write count).
        await eventually.eventually(
            lambda: (
                reconciler.sample(
                    "llmsafespace_sandbox_cleanup_failures_total", kind="NetworkPolicy"
                )
                >= 2
            ),
            timeout_seconds=60,
            describe="the delete tried again",
        )
        assert (
            reconciler.sample("llmsafespace_sandbox_refused_writes_total", reason="CleanupFailed")
            == 0
        )
        assert (await cluster.children(uid))["NetworkPolicy"] == [deny]
        messages = {record.getMessage() for record in caplog.records}
        assert "sandbox cleanup failed; retried" in messages
        assert "sandbox write refused" not in messages
    finally:
        await objects.delete_object(cluster.kube, resource=webhook.WEBHOOKS, name=name)
    await cluster.wait_gone("flaky")
    assert all(not found for found in (await cluster.children(uid)).values())


_CLUSTER_ROLES = objects.ApiResource(
    group="rbac.authorization.k8s.io",
    version="v1",
    plural="clusterroles",
    kind="ClusterRole",
    namespaced=False,
)
_RECONCILER_ROLE = "llmsafespace-sandbox-reconciler"


async def _set_rules(cluster: Cluster, rules: list[dict[str, Any]]) -> None:
    await objects.patch_object(
        cluster.kube, resource=_CLUSTER_ROLES, name=_RECONCILER_ROLE, body={"rules": rules}
    )


async def test_a_refused_read_says_so_and_is_retried(world: World, cluster: Cluster) -> None:
    """A read the pass needs is refused (the reconciler's role lost ``get`` on
    SandboxProfiles, as a broken RBAC deployment would have it): the Sandbox shows
    ``Ready=False/ReadRefused`` with the API server's message and a Warning Event, no pod is
    made, and the pass is tried again; once the rule is back, the sandbox runs without any
    edit. Before, the hint was acked and the sandbox waited for the watcher's resync."""
    reconciler = await world.start_reconciler(reconcile_options=_RETRY)
    await world.start_watcher()
    await cluster.create_runtime()
    await cluster.create_profile("tight", spec={})
    role = await objects.get_object(cluster.kube, resource=_CLUSTER_ROLES, name=_RECONCILER_ROLE)
    rules: list[dict[str, Any]] = role["rules"]
    await _set_rules(
        cluster, [r for r in rules if "sandboxprofiles" not in (r.get("resources") or ())]
    )
    try:
        await cluster.create_sandbox("unread", profileRef={"name": "tight"}, timeout=600)
        obj = await _wait_ready_reason(cluster, "unread", reason="ReadRefused")
        message = condition(obj, "Ready")["message"]
        assert "sandboxprofiles" in message
        assert "forbidden" in message
        assert [e["reason"] for e in await _warning_events(cluster, "unread")] == ["ReadRefused"]
        assert await cluster.child(objects.POD, pod_name("unread")) is None
        # Tried again (each re-check is refused again and counted).
        await eventually.eventually(
            lambda: (
                reconciler.sample("llmsafespace_sandbox_refused_writes_total", reason="ReadRefused")
                >= 2
            ),
            timeout_seconds=30,
            describe="the read tried again",
        )
    finally:
        await _set_rules(cluster, rules)
    running = await cluster.wait_phase("unread", "Running")
    assert condition(running, "Ready")["status"] == "True"


async def test_a_refused_read_of_a_released_sandbox_is_retried_not_dropped(
    world: World, cluster: Cluster
) -> None:
    """A hint of a sandbox this replica released (a late hint of its children's deletion)
    asks the API server whether a namesake exists; that read refused (the role lost ``get``
    on Sandboxes) is a refused read like any other: counted and looked at again. Before, the
    refusal escaped the pass: logged as a permanent failure, the hint acknowledged without a
    retry."""
    reconciler = await world.start_reconciler(reconcile_options=_RETRY)
    await world.start_watcher()
    await cluster.create_runtime()
    await cluster.create_sandbox("gone", timeout=600)
    await cluster.wait_phase("gone", "Running")
    await objects.delete_object(
        cluster.kube, resource=objects.SANDBOX, namespace=cluster.namespace, name="gone"
    )
    await eventually.eventually(
        lambda: _absent(cluster, "gone"), timeout_seconds=60, describe="the sandbox released"
    )
    role = await objects.get_object(cluster.kube, resource=_CLUSTER_ROLES, name=_RECONCILER_ROLE)
    rules: list[dict[str, Any]] = role["rules"]
    without_get = [
        {**rule, "verbs": [verb for verb in rule["verbs"] if verb != "get"]}
        if rule.get("resources") == ["sandboxes"]
        else rule
        for rule in rules
    ]
    assert without_get != rules
    await _set_rules(cluster, without_get)
    try:
        before = reconciler.sample(
            "llmsafespace_sandbox_refused_writes_total", reason="ReadRefused"
        )

        async def refused_twice() -> bool:
            await world.hint(namespace=cluster.namespace, name="gone")
            return (
                reconciler.sample("llmsafespace_sandbox_refused_writes_total", reason="ReadRefused")
                >= before + 2
            )

        await eventually.eventually(
            refused_twice, timeout_seconds=30, describe="the refused read counted and retried"
        )
    finally:
        await _set_rules(cluster, rules)


async def _absent(cluster: Cluster, name: str) -> bool:
    return await cluster.sandbox(name) is None


async def test_a_refused_pod_create_is_said_once_however_often_it_is_re_checked(
    world: World, cluster: Cluster
) -> None:
    """A pod create refused (an admission policy, as a quota or a missing RuntimeClass would)
    is said once: one Warning Event, however often it is re-checked, and no status write on a
    re-check that meets the same refusal (the status is written after the create while the
    Sandbox reports a problem, not beside it, where it moved the condition off the refusal and
    the refusal moved it back: two writes per re-check)."""
    reconciler = await world.start_reconciler(reconcile_options=_RETRY)
    await world.start_watcher()
    await cluster.create_runtime()
    probe_name = f"probe-{uuid.uuid4().hex[:6]}"
    # Admissible under Pod Security restricted once the refusal is lifted.
    probe_pod = fixtures_kube.restricted_pod_body(probe_name)
    probe = functools.partial(_create_then_delete, cluster, objects.POD, probe_pod)
    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["pods"],
    }
    async with refusing(cluster.kube, namespace=cluster.namespace, rule=rule, probe=probe):
        await cluster.create_sandbox("quota", timeout=600)
        await _wait_ready_reason(cluster, "quota", reason="Forbidden")

        # Three re-checks at least, each meeting the refusal again.
        def rechecked() -> bool:
            refused = reconciler.sample(
                "llmsafespace_sandbox_refused_writes_total", reason="Forbidden"
            )
            return refused >= 3

        await eventually.eventually(rechecked, timeout_seconds=30, describe="3 re-checks")
        status_writes = _status_writes(reconciler)
        refused = reconciler.sample("llmsafespace_sandbox_refused_writes_total", reason="Forbidden")

        def three_more() -> bool:
            again = reconciler.sample(
                "llmsafespace_sandbox_refused_writes_total", reason="Forbidden"
            )
            return again >= refused + 3

        await eventually.eventually(three_more, timeout_seconds=30, describe="3 more re-checks")
        assert _status_writes(reconciler) == status_writes
        assert _ready_reason(await cluster.sandbox("quota")) == "Forbidden"
        warnings = await _warning_events(cluster, "quota")
        assert [e["reason"] for e in warnings] == ["Forbidden"], warnings
        assert (warnings[0].get("count") or 1) == 1
    obj = await cluster.wait_phase("quota", "Running")
    assert condition(obj, "Ready")["status"] == "True"


def _status_writes(reconciler: RunningReconciler) -> float:
    """Status writes the reconciler made (its own status PUTs and condition patches)."""
    return sum(
        reconciler.sample("llmsafespace_sandbox_api_writes_total", kind="SandboxStatus", verb=verb)
        for verb in ("update-status", "patch")
    )


async def test_a_sandbox_in_a_namespace_nobody_enabled_says_so(
    platform: platform_module.Platform, nats_url: str, kube: client.Kube
) -> None:
    """The controllers write pods, Services, ServiceAccounts and policies only in namespaces
    labelled ``llmsafespace.dev/sandboxes=enabled`` (deploy/rbac/scope.yaml, enforced by the
    API server for the services' own accounts). A Sandbox elsewhere gets no child and a
    ``Ready=False/Forbidden`` condition quoting the policy; once a platform team enables
    the namespace, it runs without any edit."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    pod_security = {
        k: v for k, v in fixtures_kube.PSS_LABELS.items() if k != labels.NAMESPACE_ENABLED
    }
    await objects.create_object(
        kube,
        resource=objects.NAMESPACE,
        body={"metadata": {"name": name, "labels": pod_security}},
    )
    world = World(platform=platform, nats_url=nats_url, namespace=name)
    cluster = Cluster(kube, namespace=name, language=f"lang{uuid.uuid4().hex[:8]}")
    try:
        await world.start_reconciler(reconcile_options=_RETRY)
        await world.start_watcher()
        await cluster.create_runtime()
        created = await cluster.create_sandbox("elsewhere", timeout=600)
        obj = await _wait_ready_reason(cluster, "elsewhere", reason="Forbidden")
        message = condition(obj, "Ready")["message"]
        assert "is not enabled for LLMSafeSpace" in message, message
        assert "llmsafespace.dev/sandboxes=enabled" in message
        assert not any((await cluster.children(created["metadata"]["uid"])).values())
        await objects.patch_object(
            kube,
            resource=objects.NAMESPACE,
            name=name,
            body={"metadata": {"labels": {labels.NAMESPACE_ENABLED: "enabled"}}},
        )
        await cluster.wait_phase("elsewhere", "Running")
    finally:
        await world.stop()
        await cluster.cleanup()
        with contextlib.suppress(errors.NotFoundError):
            await objects.delete_object(kube, resource=objects.NAMESPACE, name=name)
