"""The sandbox's own claim (``storage.persistent``) and its retention, end to end.

The retention policy is the reconciler's setting ``sandbox.pvc_retention``
(docs/decisions-sandbox.md §4): ``delete`` (default) — the claim carries a controller owner
reference and goes with the sandbox, and the finalizer stays until it is really gone;
``retain`` — the claim has no owner reference (garbage collection must not take it either),
still names its sandbox by labels, never holds the finalizer and outlives the sandbox. Both
when the Sandbox is deleted and when its lifetime ends (Terminated: the children are
released, the object stays), for each policy, read back from the API server.

kwok has no storage provisioner. Claims that should bind get a PersistentVolume made for
them (pre-bound by ``claimRef``, a storage class of the test's own): the real
PersistentVolume controller binds them, the real scheduler then places the pod, and the
sandbox runs. A claim nobody can bind stays Pending; the scheduler then reports the pod
Unschedulable ("unbound immediate PersistentVolumeClaims"), so the sandbox stays Creating
with ``PodScheduled=False/Unschedulable`` until ``unschedulable_deadline_seconds``, then ends
``Failed/Unschedulable`` and its claim is released per the policy like any other child.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from reconciler_harness import Cluster, World, condition

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import kinds, labels
from lss_common.testing import eventually
from lss_common.testing.finalizers import hold_deletion, release_deletion
from lss_sandbox_reconciler import names
from lss_sandbox_reconciler.render import owner as owner_module

pytestmark = pytest.mark.integration

PERSISTENT_VOLUME = objects.ApiResource(
    group="", version="v1", plural="persistentvolumes", kind="PersistentVolume", namespaced=False
)
RETENTIONS = ("delete", "retain")
SIZE = "2Gi"


class Volumes:
    """PersistentVolumes made for this test's claims (cluster-scoped: deleted afterwards)."""

    def __init__(self, kube: client.Kube, *, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.names: list[str] = []

    async def provide(self, *, claim: str, storage_class: str) -> None:
        """A volume only ``claim`` can bind (class of its own, pre-bound by claimRef)."""
        name = f"pv-{uuid.uuid4().hex[:12]}"
        await objects.create_object(
            self.kube,
            resource=PERSISTENT_VOLUME,
            body={
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": SIZE},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": storage_class,
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": f"/tmp/{name}"},
                    "claimRef": {"namespace": self.namespace, "name": claim},
                },
            },
        )
        self.names.append(name)

    async def cleanup(self) -> None:
        for name in self.names:
            with contextlib.suppress(errors.LssError):
                await objects.delete_object(self.kube, resource=PERSISTENT_VOLUME, name=name)


@pytest.fixture
async def volumes(kube: client.Kube, namespace: str) -> AsyncIterator[Volumes]:
    found = Volumes(kube, namespace=namespace)
    try:
        yield found
    finally:
        await found.cleanup()


async def _create_persistent(
    cluster: Cluster, volumes: Volumes | None, name: str, *, lifetime_seconds: int
) -> tuple[str, str]:
    """A sandbox with its own claim (bound when ``volumes`` is given): (uid, storage class)."""
    storage_class = f"lss-{uuid.uuid4().hex[:8]}"
    if volumes is not None:
        await volumes.provide(claim=names.claim_name(name), storage_class=storage_class)
    created = await cluster.create_sandbox(
        name,
        timeout=lifetime_seconds,
        storage={"persistent": True, "volumeSize": SIZE, "storageClass": storage_class},
    )
    return created["metadata"]["uid"], storage_class


def _assert_claim(
    claim: dict[str, Any], *, name: str, uid: str, storage_class: str, retention: str
) -> None:
    """The claim as stored: size, class, labels, and an owner reference exactly when deleted
    with the sandbox."""
    assert claim["spec"]["resources"]["requests"]["storage"] == SIZE
    assert claim["spec"]["storageClassName"] == storage_class
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    claim_labels = claim["metadata"]["labels"]
    assert claim_labels[owner_module.SANDBOX_UID] == uid
    assert claim_labels[labels.SANDBOX_NAME] == name
    assert claim_labels[labels.APP] == labels.APP_VALUE
    if retention == "delete":
        assert [
            (o["kind"], o["uid"], o.get("controller")) for o in claim["metadata"]["ownerReferences"]
        ] == [("Sandbox", uid, True)]
    else:
        assert "ownerReferences" not in claim["metadata"]


async def _wait_bound_and_running(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = await cluster.wait_phase(name, "Running")
    claim = await cluster.child(objects.PERSISTENT_VOLUME_CLAIM, names.claim_name(name))
    assert claim is not None
    assert claim["status"]["phase"] == "Bound"
    pod = await cluster.child(objects.POD, names.pod_name(name))
    assert pod is not None
    data = next(v for v in pod["spec"]["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == names.claim_name(name)
    return obj


async def _assert_retained(cluster: Cluster, name: str) -> dict[str, Any]:
    claim = await cluster.child(objects.PERSISTENT_VOLUME_CLAIM, names.claim_name(name))
    assert claim is not None, "the retained claim is gone"
    assert not claim["metadata"].get("deletionTimestamp")
    assert "ownerReferences" not in claim["metadata"]
    return claim


async def _wait_released(cluster: Cluster, uid: str, *, retention: str) -> None:
    """Every child of the sandbox gone, except a retained claim."""
    claims_kept = 0 if retention == "delete" else 1

    async def released() -> bool:
        found = await cluster.children(uid)
        claims = found.pop("PersistentVolumeClaim")
        return not any(found.values()) and len(claims) == claims_kept

    await eventually.eventually(released, timeout_seconds=60, describe="children released")


@pytest.mark.parametrize("retention", RETENTIONS)
async def test_claim_on_deletion(
    running: Callable[..., Awaitable[World]],
    cluster: Cluster,
    volumes: Volumes,
    retention: str,
) -> None:
    await running(pvc_retention=retention)
    await cluster.create_runtime()
    uid, storage_class = await _create_persistent(cluster, volumes, "data", lifetime_seconds=600)
    await _wait_bound_and_running(cluster, "data")
    claim_name = names.claim_name("data")
    claim = await cluster.child(objects.PERSISTENT_VOLUME_CLAIM, claim_name)
    assert claim is not None
    _assert_claim(claim, name="data", uid=uid, storage_class=storage_class, retention=retention)

    if retention == "delete":
        # The claim's deletion hangs: the Sandbox must wait for it (finalizer held).
        await hold_deletion(
            cluster.kube,
            resource=objects.PERSISTENT_VOLUME_CLAIM,
            name=claim_name,
            namespace=cluster.namespace,
        )
        await cluster.delete_sandbox("data")

        async def claim_deleting_rest_gone() -> bool:
            found = await cluster.children(uid)
            claim = await cluster.child(objects.PERSISTENT_VOLUME_CLAIM, claim_name)
            return bool(
                claim
                and claim["metadata"].get("deletionTimestamp")
                and found.pop("PersistentVolumeClaim") == [claim_name]
                and not any(found.values())
            )

        await eventually.eventually(
            claim_deleting_rest_gone, timeout_seconds=60, describe="claim held, rest gone"
        )
        held = await cluster.sandbox("data")
        assert held is not None
        assert kinds.FINALIZER in held["metadata"]["finalizers"]
        assert held["status"]["phase"] == "Terminating"
        await release_deletion(
            cluster.kube,
            resource=objects.PERSISTENT_VOLUME_CLAIM,
            name=claim_name,
            namespace=cluster.namespace,
        )
        await cluster.wait_gone("data")
        assert await cluster.child(objects.PERSISTENT_VOLUME_CLAIM, claim_name) is None
    else:
        await cluster.delete_sandbox("data")
        await cluster.wait_gone("data")
        await _wait_released(cluster, uid, retention=retention)
        kept = await _assert_retained(cluster, "data")
        _assert_claim(kept, name="data", uid=uid, storage_class=storage_class, retention=retention)
        # The retained claim keeps its name: a new sandbox of the same name is refused rather
        # than handed another sandbox's data, and the claim is left alone.
        await cluster.create_sandbox(
            "data", timeout=600, storage={"persistent": True, "storageClass": storage_class}
        )
        obj = await cluster.wait_phase("data", "Failed")
        assert condition(obj, "Ready")["reason"] == "NameConflict"
        assert claim_name in condition(obj, "Ready")["message"]
        # Nor may another sandbox mount it as a shared volume: it is not shared.
        await cluster.create_sandbox(
            "thief",
            storage={
                "sharedVolumes": [
                    {"claimName": claim_name, "mountPath": "/loot", "readOnly": False}
                ]
            },
        )
        thief = await cluster.wait_phase("thief", "Failed")
        refused = condition(thief, "Ready")
        assert refused["reason"] == "SharedVolumeNotAllowed"
        assert "spec.storage.sharedVolumes[0].claimName" in refused["message"]
        assert await cluster.child(objects.POD, names.pod_name("thief")) is None
        after = await _assert_retained(cluster, "data")
        assert after["metadata"]["uid"] == kept["metadata"]["uid"]
        assert after["metadata"]["labels"][owner_module.SANDBOX_UID] == uid


async def test_only_a_claim_shared_with_sandboxes_is_mounted(
    running: Callable[..., Awaitable[World]], cluster: Cluster, volumes: Volumes
) -> None:
    """A shared volume's claim must carry ``llmsafespace.dev/shareable``: ``read-only``
    admits read-only mounts only; a claim without it, or missing, fails the sandbox before
    any pod (``SharedVolumeNotAllowed`` naming the entry); a shared one is mounted."""
    await running()
    await cluster.create_runtime()
    storage_class = f"lss-{uuid.uuid4().hex[:8]}"
    for claim, shareable in (("datasets", labels.SHAREABLE_READ_ONLY), ("private", None)):
        await objects.create_object(
            cluster.kube,
            resource=objects.PERSISTENT_VOLUME_CLAIM,
            namespace=cluster.namespace,
            body={
                "metadata": {
                    "name": claim,
                    "labels": {labels.SHAREABLE: shareable} if shareable else {},
                },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": storage_class,
                    "resources": {"requests": {"storage": SIZE}},
                },
            },
        )
    await volumes.provide(claim="datasets", storage_class=storage_class)

    def shared(claim: str, *, read_only: bool) -> dict[str, Any]:
        mount = {"claimName": claim, "mountPath": "/shared", "readOnly": read_only}
        return {"sharedVolumes": [mount]}

    refusals = {
        "writer": (shared("datasets", read_only=False), "sharedVolumes[0].readOnly"),
        "private": (shared("private", read_only=True), "sharedVolumes[0].claimName"),
        "missing": (shared("nope", read_only=True), "sharedVolumes[0].claimName"),
    }
    for name, (storage, _) in refusals.items():
        await cluster.create_sandbox(name, storage=storage)
    await cluster.create_sandbox("reader", storage=shared("datasets", read_only=True))
    for name, (_, field) in refusals.items():
        obj = await cluster.wait_phase(name, "Failed")
        found = condition(obj, "Ready")
        assert found["reason"] == "SharedVolumeNotAllowed", name
        assert field in found["message"], found["message"]
        assert await cluster.child(objects.POD, names.pod_name(name)) is None
    await cluster.wait_phase("reader", "Running")
    pod = await cluster.child(objects.POD, names.pod_name("reader"))
    assert pod is not None
    mounted = next(v for v in pod["spec"]["volumes"] if v["name"] == "shared-0")
    assert mounted["persistentVolumeClaim"] == {"claimName": "datasets", "readOnly": True}


@pytest.mark.parametrize("retention", RETENTIONS)
async def test_claim_at_lifetime_expiry(
    running: Callable[..., Awaitable[World]],
    cluster: Cluster,
    volumes: Volumes,
    retention: str,
) -> None:
    await running(pvc_retention=retention)
    await cluster.create_runtime()
    uid, storage_class = await _create_persistent(cluster, volumes, "short", lifetime_seconds=2)
    obj = await cluster.wait_phase("short", "Terminated")
    assert obj["status"]["startTime"]  # it did run: the lifetime counts from Running
    assert condition(obj, "Ready")["reason"] == "Expired"
    await _wait_released(cluster, uid, retention=retention)
    if retention == "retain":
        kept = await _assert_retained(cluster, "short")
        _assert_claim(kept, name="short", uid=uid, storage_class=storage_class, retention=retention)
    # The Terminated object stays until deleted; deleting it changes nothing for the claim.
    await cluster.delete_sandbox("short")
    await cluster.wait_gone("short")
    if retention == "retain":
        await _assert_retained(cluster, "short")
    else:
        assert (
            await cluster.child(objects.PERSISTENT_VOLUME_CLAIM, names.claim_name("short")) is None
        )


async def test_unbound_claim_keeps_the_sandbox_creating(
    running: Callable[..., Awaitable[World]], cluster: Cluster
) -> None:
    default_class = f"lss-default-{uuid.uuid4().hex[:8]}"
    await running(unschedulable_deadline_seconds=3600, default_storage_class=default_class)
    await cluster.create_runtime()
    # No storageClass: the claim takes the configured default (a class nothing provides).
    await cluster.create_sandbox(
        "waiting", timeout=600, storage={"persistent": True, "volumeSize": SIZE}
    )

    async def unschedulable() -> dict[str, Any] | None:
        obj = await cluster.sandbox("waiting")
        if obj is None:
            return None
        scheduled = next(
            (c for c in obj["status"].get("conditions") or () if c["type"] == "PodScheduled"),
            None,
        )
        if scheduled is None or scheduled["reason"] != "Unschedulable":
            return None
        return obj

    obj: dict[str, Any] = await eventually.eventually(
        unschedulable, timeout_seconds=60, describe="the sandbox's pod reported unschedulable"
    )
    assert obj["status"]["phase"] == "Creating"
    assert condition(obj, "PodScheduled")["status"] == "False"
    assert "PersistentVolumeClaim" in condition(obj, "PodScheduled")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    claim = await cluster.child(objects.PERSISTENT_VOLUME_CLAIM, names.claim_name("waiting"))
    assert claim is not None
    assert claim["status"]["phase"] == "Pending"
    assert claim["spec"]["storageClassName"] == default_class
    assert claim["spec"]["resources"]["requests"]["storage"] == SIZE


@pytest.mark.parametrize("retention", RETENTIONS)
async def test_unbound_claim_fails_at_the_deadline_and_is_released(
    running: Callable[..., Awaitable[World]], cluster: Cluster, retention: str
) -> None:
    await running(unschedulable_deadline_seconds=2, pvc_retention=retention)
    await cluster.create_runtime()
    uid, _ = await _create_persistent(cluster, None, "never", lifetime_seconds=600)
    obj = await cluster.wait_phase("never", "Failed")
    ready = condition(obj, "Ready")
    assert ready["reason"] == "Unschedulable"
    assert "PersistentVolumeClaim" in ready["message"]
    await _wait_released(cluster, uid, retention=retention)
    if retention == "retain":
        claim = await _assert_retained(cluster, "never")
        assert claim["status"]["phase"] == "Pending"
