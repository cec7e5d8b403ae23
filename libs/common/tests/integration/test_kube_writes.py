"""kube.writes against the real kube-apiserver. Matrix: status PUT and merge-patch through the
status subresource (spec untouched), both refused with ConflictError on a stale
resourceVersion; set_condition writes once, is a no-op when unchanged, and keeps
lastTransitionTime; create-if-absent twice returns the same object; finalizers added/removed
with resourceVersion (stale → conflict) and holding a deleted object until removed;
delete-if-present; Events posted and listed by involved object."""

from __future__ import annotations

import datetime
from typing import Any

import prometheus_client
import pytest
from kubernetes_asyncio import client as k8s_client

from lss_common import errors
from lss_common.kube import client, objects, writes
from lss_common.models import sandbox
from lss_common.testing import eventually

pytestmark = pytest.mark.integration

FINALIZER = "llmsafespace.dev/test-cleanup"
T0 = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture
def kube(kube_api: k8s_client.ApiClient) -> client.Kube:
    from lss_common.observability import metrics

    return client.Kube(
        api=kube_api,
        request_timeout_seconds=10.0,
        metrics=metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
    )


async def create_sandbox(kube: client.Kube, namespace: str, name: str = "sb") -> dict[str, Any]:
    return await objects.create_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        body={
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "Sandbox",
            "metadata": {"name": name},
            "spec": {"runtime": "python:3.11", "timeout": 60},
        },
    )


async def test_update_status_replaces_status_and_refuses_stale(
    kube: client.Kube, namespace: str
) -> None:
    created = await create_sandbox(kube, namespace)
    updated = await writes.update_status(
        kube,
        resource=objects.SANDBOX,
        obj=created,
        status={"phase": "Pending", "podName": "sb-pod"},
        decode=sandbox.decode,
    )
    assert isinstance(updated, sandbox.Sandbox)
    status = sandbox.status_of(updated)
    assert (status.phase, status.pod_name) == ("Pending", "sb-pod")
    # A full PUT drops fields that the new status leaves out.
    second = await writes.update_status(
        kube, resource=objects.SANDBOX, obj=updated, status=sandbox.SandboxStatus(phase="Creating")
    )
    assert second["status"] == {"phase": "Creating"}
    assert second["spec"]["timeout"] == 60
    with pytest.raises(errors.ConflictError):
        await writes.update_status(
            kube, resource=objects.SANDBOX, obj=created, status={"phase": "Failed"}
        )
    current = await objects.get_object(
        kube, resource=objects.SANDBOX, namespace=namespace, name="sb"
    )
    assert current["status"]["phase"] == "Creating"


async def test_status_subresource_ignores_spec_changes(kube: client.Kube, namespace: str) -> None:
    created = await create_sandbox(kube, namespace)
    changed_spec = {**created, "spec": {**created["spec"], "timeout": 900}}
    updated = await writes.update_status(
        kube, resource=objects.SANDBOX, obj=changed_spec, status={"phase": "Pending"}
    )
    assert updated["spec"]["timeout"] == 60
    assert updated["status"]["phase"] == "Pending"


async def test_patch_status_with_stale_version_is_a_conflict(
    kube: client.Kube, namespace: str
) -> None:
    created = await create_sandbox(kube, namespace)
    patched = await writes.patch_status(
        kube, resource=objects.SANDBOX, obj=created, patch={"phase": "Pending"}
    )
    assert patched["status"]["phase"] == "Pending"
    merged = await writes.patch_status(
        kube, resource=objects.SANDBOX, obj=patched, patch={"podName": "p"}
    )
    assert merged["status"] == {"phase": "Pending", "podName": "p"}
    with pytest.raises(errors.ConflictError):
        await writes.patch_status(
            kube, resource=objects.SANDBOX, obj=created, patch={"phase": "Failed"}
        )


def pod_body(name: str) -> dict[str, Any]:
    """A pod Pod Security ``restricted`` admits; kwok's nodes run it."""
    return {
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "c",
                    "image": "registry.invalid/none:1",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            ],
        },
    }


async def test_stale_status_write_on_a_pod_is_a_conflict(kube: client.Kube, namespace: str) -> None:
    pod = await objects.create_object(
        kube, resource=objects.POD, namespace=namespace, body=pod_body("p")
    )
    await objects.patch_object(
        kube,
        resource=objects.POD,
        namespace=namespace,
        name="p",
        body={"metadata": {"labels": {"touched": "yes"}}},
    )
    with pytest.raises(errors.ConflictError):
        await writes.patch_status(
            kube, resource=objects.POD, obj=pod, patch={"message": "stale write"}
        )


async def test_set_condition_writes_once_and_keeps_transition_time(
    kube: client.Kube, namespace: str
) -> None:
    created = await create_sandbox(kube, namespace)
    first = await writes.set_condition(
        kube,
        resource=objects.SANDBOX,
        obj=created,
        condition_type="RuntimeResolved",
        status="False",
        reason="RuntimeNotFound",
        message="no RuntimeEnvironment python:3.11",
        now=T0,
        decode=sandbox.decode,
    )
    assert first is not None
    [condition] = sandbox.status_of(first).conditions or []
    assert condition.last_transition_time == "2025-06-01T12:00:00Z"
    assert condition.observed_generation == 1
    unchanged = await writes.set_condition(
        kube,
        resource=objects.SANDBOX,
        obj=first,
        condition_type="RuntimeResolved",
        status="False",
        reason="RuntimeNotFound",
        message="no RuntimeEnvironment python:3.11",
        now=T0 + datetime.timedelta(minutes=1),
    )
    assert unchanged is None
    reworded = await writes.set_condition(
        kube,
        resource=objects.SANDBOX,
        obj=first,
        condition_type="RuntimeResolved",
        status="False",
        reason="RuntimeNotFound",
        message="still missing",
        now=T0 + datetime.timedelta(minutes=2),
        decode=sandbox.decode,
    )
    assert reworded is not None
    [condition] = sandbox.status_of(reworded).conditions or []
    assert condition.message == "still missing"
    assert condition.last_transition_time == "2025-06-01T12:00:00Z"


async def test_create_if_absent_twice(kube: client.Kube, namespace: str) -> None:
    body = {"metadata": {"name": "sandbox-sa", "labels": {"app": "lss"}}}
    first, created = await writes.create_if_absent(
        kube, resource=objects.SERVICE_ACCOUNT, namespace=namespace, body=body
    )
    second, created_again = await writes.create_if_absent(
        kube, resource=objects.SERVICE_ACCOUNT, namespace=namespace, body=body
    )
    assert (created, created_again) == (True, False)
    assert second["metadata"]["uid"] == first["metadata"]["uid"]


async def test_create_if_absent_needs_a_name(kube: client.Kube, namespace: str) -> None:
    with pytest.raises(ValueError, match="deterministic"):
        await writes.create_if_absent(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            body={"metadata": {"generateName": "x-"}},
        )


async def test_finalizer_add_remove_and_hold_on_delete(kube: client.Kube, namespace: str) -> None:
    cm = await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body={"metadata": {"name": "f"}}
    )
    added = await writes.add_finalizer(
        kube, resource=objects.CONFIG_MAP, obj=cm, finalizer=FINALIZER
    )
    assert added is not None
    assert added["metadata"]["finalizers"] == [FINALIZER]
    assert (
        await writes.add_finalizer(
            kube, resource=objects.CONFIG_MAP, obj=added, finalizer=FINALIZER
        )
        is None
    )
    # A finalizer computed from a stale read never lands.
    with pytest.raises(errors.ConflictError):
        await writes.add_finalizer(
            kube, resource=objects.CONFIG_MAP, obj=cm, finalizer="llmsafespace.dev/other"
        )
    await objects.delete_object(kube, resource=objects.CONFIG_MAP, namespace=namespace, name="f")
    held = await objects.get_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, name="f"
    )
    assert held["metadata"]["deletionTimestamp"]
    removed = await writes.remove_finalizer(
        kube, resource=objects.CONFIG_MAP, obj=held, finalizer=FINALIZER
    )
    assert removed is not None
    with pytest.raises(errors.NotFoundError):
        await objects.get_object(kube, resource=objects.CONFIG_MAP, namespace=namespace, name="f")


async def test_remove_absent_finalizer_is_no_write(kube: client.Kube, namespace: str) -> None:
    cm = await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body={"metadata": {"name": "n"}}
    )
    assert (
        await writes.remove_finalizer(
            kube, resource=objects.CONFIG_MAP, obj=cm, finalizer=FINALIZER
        )
        is None
    )


async def test_finalizer_on_a_model(kube: client.Kube, namespace: str) -> None:
    created = sandbox.from_dict(await create_sandbox(kube, namespace))
    added = await writes.add_finalizer(
        kube, resource=objects.SANDBOX, obj=created, finalizer=FINALIZER, decode=sandbox.decode
    )
    assert added is not None
    assert added.metadata.finalizers == [FINALIZER]
    removed = await writes.remove_finalizer(
        kube, resource=objects.SANDBOX, obj=added, finalizer=FINALIZER, decode=sandbox.decode
    )
    assert removed is not None
    assert not removed.metadata.finalizers


async def test_delete_if_present(kube: client.Kube, namespace: str) -> None:
    await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body={"metadata": {"name": "d"}}
    )
    assert await writes.delete_if_present(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, name="d"
    )
    assert not await writes.delete_if_present(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, name="d"
    )


async def test_delete_says_whether_the_object_is_gone_at_once(
    kube: client.Kube, namespace: str
) -> None:
    """The answer to a delete tells gone from pending, for each shape the API server answers
    with: a Status (ConfigMap, NetworkPolicy, custom resources), the object as it was
    (ServiceAccount, Service), the object marked for deletion (finalizers; a pod's grace)."""
    cm = objects.CONFIG_MAP
    for resource, body in (
        (cm, {"metadata": {"name": "plain"}}),
        (objects.SERVICE_ACCOUNT, {"metadata": {"name": "account"}}),
        (
            objects.SERVICE,
            {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 8080}]}},
        ),
        (
            objects.NETWORK_POLICY,
            {"metadata": {"name": "policy"}, "spec": {"podSelector": {}}},
        ),
    ):
        await objects.create_object(kube, resource=resource, namespace=namespace, body=body)
        found = await writes.delete(
            kube, resource=resource, namespace=namespace, name=body["metadata"]["name"]
        )
        assert found is writes.Deletion.GONE, resource.kind
    sb = await create_sandbox(kube, namespace, "gone")
    assert (
        await writes.delete(kube, resource=objects.SANDBOX, namespace=namespace, name="gone")
        is writes.Deletion.GONE
    )
    held = {"metadata": {"name": "held", "finalizers": [FINALIZER]}}
    await objects.create_object(kube, resource=cm, namespace=namespace, body=held)
    assert (
        await writes.delete(kube, resource=cm, namespace=namespace, name="held")
        is writes.Deletion.PENDING
    )
    # Deleting it again while it is held: still pending; once released, absent.
    assert (
        await writes.delete(kube, resource=cm, namespace=namespace, name="held")
        is writes.Deletion.PENDING
    )
    current = await objects.get_object(kube, resource=cm, namespace=namespace, name="held")
    await writes.remove_finalizer(kube, resource=cm, obj=current, finalizer=FINALIZER)
    assert (
        await writes.delete(kube, resource=cm, namespace=namespace, name="held")
        is writes.Deletion.ABSENT
    )
    assert sb["metadata"]["uid"]


async def test_a_scheduled_pods_graceful_delete_is_pending(
    kube: client.Kube, namespace: str
) -> None:
    await objects.create_object(kube, resource=objects.POD, namespace=namespace, body=pod_body("g"))

    async def scheduled() -> bool:
        found = await objects.get_object(kube, resource=objects.POD, namespace=namespace, name="g")
        return bool(found["spec"].get("nodeName"))

    # An unscheduled pod is deleted at once (no kubelet to wait for); a scheduled one waits
    # for its grace period.
    await eventually.eventually(scheduled, timeout_seconds=30, describe="pod scheduled")
    assert (
        await writes.delete(kube, resource=objects.POD, namespace=namespace, name="g")
        is writes.Deletion.PENDING
    )


async def test_events_are_posted_about_the_object(kube: client.Kube, namespace: str) -> None:
    created = await create_sandbox(kube, namespace)
    posted = await writes.post_event(
        kube,
        involved=created,
        resource=objects.SANDBOX,
        reason="RuntimeNotFound",
        message="no RuntimeEnvironment matches python:3.11",
        event_type=writes.EventType.WARNING,
        reporting_controller="llmsafespace.dev/sandbox-reconciler",
        reporting_instance="test-pod",
        now=datetime.datetime.now(tz=datetime.UTC),
        action="Resolve",
    )
    assert posted
    events = await objects.list_objects(
        kube,
        resource=objects.EVENT,
        namespace=namespace,
        field_selector=f"involvedObject.name=sb,involvedObject.uid={created['metadata']['uid']}",
    )
    [event] = events.items
    assert (event["reason"], event["type"]) == ("RuntimeNotFound", "Warning")
    assert event["involvedObject"]["kind"] == "Sandbox"
    assert event["reportingComponent"] == "llmsafespace.dev/sandbox-reconciler"
    assert event["source"]["component"] == "llmsafespace.dev/sandbox-reconciler"


async def test_failed_event_post_is_reported_not_raised(kube: client.Kube, namespace: str) -> None:
    posted = await writes.post_event(
        kube,
        involved={"metadata": {"name": "x", "namespace": f"{namespace}-missing"}},
        resource=objects.CONFIG_MAP,
        reason="Test",
        message="the namespace does not exist",
        event_type=writes.EventType.NORMAL,
        reporting_controller="c",
        reporting_instance="i",
        now=datetime.datetime.now(tz=datetime.UTC),
    )
    assert posted is False
