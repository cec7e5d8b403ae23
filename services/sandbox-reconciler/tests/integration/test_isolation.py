"""Namespace-per-sandbox isolation (``sandbox.namespace_isolation``), end to end.

On a platform of its own (``private_platform``): the children live in a namespace per
sandbox, so the watcher must watch every namespace, which on the shared platform would make
this test's reconciler act on every other test's sandboxes. With isolation on:

- the sandbox runs in its own namespace ``sandbox-<uid>``, labelled with Pod Security
  ``restricted`` (and that is enforced: a non-compliant pod is refused there), naming its
  sandbox by labels; pod, Service, ServiceAccount and policy live there with the sandbox's
  labels and **no** owner references (Kubernetes ignores cross-namespace ones); nothing is
  created in the sandbox's own namespace; ``status.podNamespace`` and ``status.endpoint``
  point into the isolation namespace;
- a pod, Service and policy deleted by hand there are re-created (the watcher maps their
  changes to the sandbox by those labels); so is the isolation namespace itself, once its
  deletion has finished (nothing can be created in a terminating namespace);
- deleting the Sandbox deletes the namespace and everything in it — even an object someone
  else put there — and the finalizer goes only once the namespace is really gone; except
  with ``pvc_retention: retain``, where the namespace stays, holding only the retained claim.
"""

from __future__ import annotations

from typing import Any

import pytest
from reconciler_harness import Cluster, World, condition, pod_name

from lss_common import errors
from lss_common.kube import objects
from lss_common.models import kinds, labels
from lss_common.testing import eventually
from lss_common.testing.finalizers import hold_deletion, release_deletion
from lss_sandbox_reconciler import names
from lss_sandbox_reconciler.render import owner as owner_module

pytestmark = pytest.mark.integration

PREFIX = "sandbox-"


async def _start(world: World, cluster: Cluster, name: str) -> tuple[str, str]:
    """Reconciler (isolation on) and watcher running, sandbox ``name`` Running: (uid, ns)."""
    await world.start_reconciler(namespace_isolation=True, isolation_namespace_prefix=PREFIX)
    await world.start_watcher()
    await cluster.create_runtime()
    created = await cluster.create_sandbox(name, timeout=600)
    uid = created["metadata"]["uid"]
    await cluster.wait_phase(name, "Running")
    return uid, names.isolation_namespace(uid, prefix=PREFIX)


async def _get(
    cluster: Cluster, resource: objects.ApiResource, name: str, *, namespace: str | None
) -> dict[str, Any] | None:
    try:
        return await objects.get_object(
            cluster.kube, resource=resource, name=name, namespace=namespace
        )
    except errors.NotFoundError:
        return None


def _children(name: str) -> dict[str, tuple[objects.ApiResource, str]]:
    return {
        "Pod": (objects.POD, pod_name(name)),
        "Service": (objects.SERVICE, names.service_name(name)),
        "ServiceAccount": (objects.SERVICE_ACCOUNT, names.service_account_name(name)),
        "NetworkPolicy": (
            objects.NETWORK_POLICY,
            names.policy_name(name, policy=names.Policy.DENY),
        ),
    }


async def test_isolated_sandbox_runs_in_its_own_namespace(
    private_world: World, private_cluster: Cluster
) -> None:
    cluster = private_cluster
    uid, isolation = await _start(private_world, cluster, "iso")
    obj = await cluster.sandbox("iso")
    assert obj is not None
    status = obj["status"]
    assert status["podName"] == pod_name("iso")
    assert status["podNamespace"] == isolation
    assert status["endpoint"] == f"{names.service_name('iso')}.{isolation}.svc.cluster.local"
    for condition_type in ("Ready", "PodScheduled", "RuntimeResolved", "NetworkReady"):
        assert condition(obj, condition_type)["status"] == "True", condition_type
    ties = {
        labels.APP: labels.APP_VALUE,
        owner_module.SANDBOX_UID: uid,
        labels.SANDBOX_NAME: "iso",
        labels.SANDBOX_NAMESPACE: cluster.namespace,
    }

    namespace = await _get(cluster, objects.NAMESPACE, isolation, namespace=None)
    assert namespace is not None
    ns_labels = namespace["metadata"]["labels"]
    assert ns_labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns_labels["pod-security.kubernetes.io/enforce-version"] == "latest"
    assert ties.items() <= ns_labels.items()
    assert "ownerReferences" not in namespace["metadata"]

    for kind, (resource, name) in _children("iso").items():
        child = await _get(cluster, resource, name, namespace=isolation)
        assert child is not None, kind
        assert ties.items() <= child["metadata"]["labels"].items(), kind
        # Kubernetes ignores (and garbage-collects by) owner references across namespaces.
        assert "ownerReferences" not in child["metadata"], kind
    pod = await _get(cluster, objects.POD, pod_name("iso"), namespace=isolation)
    assert pod is not None
    assert pod["spec"]["serviceAccountName"] == names.service_account_name("iso")
    # Nothing of the sandbox's lives in its own namespace.
    assert await cluster.children(uid) == {
        "Pod": [],
        "Service": [],
        "ServiceAccount": [],
        "NetworkPolicy": [],
        "PersistentVolumeClaim": [],
    }

    # The namespace enforces ``restricted`` itself: a pod without the contract is refused.
    with pytest.raises(errors.PermanentError, match="PodSecurity"):
        await objects.create_object(
            cluster.kube,
            resource=objects.POD,
            namespace=isolation,
            body={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "not-restricted"},
                "spec": {
                    "serviceAccountName": names.service_account_name("iso"),
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "c", "image": "busybox"}],
                },
            },
        )


async def test_children_deleted_by_hand_in_the_isolation_namespace_come_back(
    private_world: World, private_cluster: Cluster
) -> None:
    cluster = private_cluster
    _, isolation = await _start(private_world, cluster, "keep")
    wanted = {kind: child for kind, child in _children("keep").items() if kind != "ServiceAccount"}
    before: dict[str, str] = {}
    for kind, (resource, name) in wanted.items():
        found = await _get(cluster, resource, name, namespace=isolation)
        assert found is not None, kind
        before[kind] = found["metadata"]["uid"]
        await objects.delete_object(cluster.kube, resource=resource, name=name, namespace=isolation)

    async def recreated() -> bool:
        for kind, (resource, name) in wanted.items():
            found = await _get(cluster, resource, name, namespace=isolation)
            if found is None or found["metadata"]["uid"] == before[kind]:
                return False
            if found["metadata"].get("deletionTimestamp"):
                return False
        obj = await cluster.sandbox("keep")
        return bool(obj and condition(obj, "Ready")["status"] == "True")

    await eventually.eventually(
        recreated,
        timeout_seconds=60,
        describe="pod, Service and deny policy re-created in the isolation namespace",
    )
    obj = await cluster.sandbox("keep")
    assert obj is not None
    assert obj["status"]["phase"] == "Running"
    assert obj["status"]["podNamespace"] == isolation


async def test_isolation_namespace_deleted_by_hand_comes_back(
    private_world: World, private_cluster: Cluster
) -> None:
    """While the namespace terminates nothing can be created in it (403); once it is gone,
    the namespace and every child are created again and the sandbox runs again."""
    cluster = private_cluster
    _, isolation = await _start(private_world, cluster, "nsdel")
    before = await _get(cluster, objects.NAMESPACE, isolation, namespace=None)
    assert before is not None
    await objects.delete_object(cluster.kube, resource=objects.NAMESPACE, name=isolation)

    async def back() -> bool:
        namespace = await _get(cluster, objects.NAMESPACE, isolation, namespace=None)
        if namespace is None or namespace["metadata"]["uid"] == before["metadata"]["uid"]:
            return False
        for resource, name in _children("nsdel").values():
            child = await _get(cluster, resource, name, namespace=isolation)
            if child is None or child["metadata"].get("deletionTimestamp"):
                return False
        obj = await cluster.sandbox("nsdel")
        return bool(obj and condition(obj, "Ready")["status"] == "True")

    await eventually.eventually(
        back, timeout_seconds=60, describe="isolation namespace and children re-created"
    )
    obj = await cluster.sandbox("nsdel")
    assert obj is not None
    assert obj["status"]["phase"] == "Running"
    assert obj["status"]["podNamespace"] == isolation


async def test_deletion_removes_the_namespace_and_everything_in_it(
    private_world: World, private_cluster: Cluster
) -> None:
    cluster = private_cluster
    _, isolation = await _start(private_world, cluster, "gone")
    # Someone else's object in the isolation namespace, whose deletion hangs until released:
    # the namespace cannot finish terminating before it is gone, and neither may the Sandbox.
    await objects.create_object(
        cluster.kube,
        resource=objects.CONFIG_MAP,
        namespace=isolation,
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stray"}},
    )
    await hold_deletion(
        cluster.kube, resource=objects.CONFIG_MAP, name="stray", namespace=isolation
    )
    await cluster.delete_sandbox("gone")

    async def children_gone_namespace_held() -> bool:
        for resource, name in _children("gone").values():
            if await _get(cluster, resource, name, namespace=isolation) is not None:
                return False
        namespace = await _get(cluster, objects.NAMESPACE, isolation, namespace=None)
        return bool(namespace and namespace["metadata"].get("deletionTimestamp"))

    await eventually.eventually(
        children_gone_namespace_held,
        timeout_seconds=60,
        describe="children deleted, isolation namespace terminating",
    )
    # Everything of ours is gone but the namespace still exists: the finalizer must hold.
    held = await cluster.sandbox("gone")
    assert held is not None
    assert kinds.FINALIZER in held["metadata"]["finalizers"]
    assert held["status"]["phase"] == "Terminating"
    assert condition(held, "Ready")["reason"] == "Terminating"

    await release_deletion(
        cluster.kube, resource=objects.CONFIG_MAP, name="stray", namespace=isolation
    )
    await cluster.wait_gone("gone")
    assert await _get(cluster, objects.NAMESPACE, isolation, namespace=None) is None


async def test_retained_claim_keeps_its_isolation_namespace(
    private_world: World, private_cluster: Cluster
) -> None:
    """With ``pvc_retention: retain`` the namespace would take the claim with it: it stays,
    holding the claim only, and the Sandbox still goes."""
    cluster = private_cluster
    await private_world.start_reconciler(
        namespace_isolation=True, isolation_namespace_prefix=PREFIX, pvc_retention="retain"
    )
    await private_world.start_watcher()
    await cluster.create_runtime()
    # kwok has no provisioner: the claim stays Pending and the sandbox Creating, which is
    # all this test needs (the claim exists).
    created = await cluster.create_sandbox("kept", timeout=600, storage={"persistent": True})
    isolation = names.isolation_namespace(created["metadata"]["uid"], prefix=PREFIX)
    claim_name = names.claim_name("kept")

    async def claim_exists() -> bool:
        found = await _get(
            cluster, objects.PERSISTENT_VOLUME_CLAIM, claim_name, namespace=isolation
        )
        return found is not None

    await eventually.eventually(claim_exists, timeout_seconds=60, describe="claim created")
    await cluster.delete_sandbox("kept")
    await cluster.wait_gone("kept")

    namespace = await _get(cluster, objects.NAMESPACE, isolation, namespace=None)
    assert namespace is not None
    assert not namespace["metadata"].get("deletionTimestamp")
    claim = await _get(cluster, objects.PERSISTENT_VOLUME_CLAIM, claim_name, namespace=isolation)
    assert claim is not None
    assert not claim["metadata"].get("deletionTimestamp")
    assert claim["metadata"]["labels"][labels.SANDBOX_NAMESPACE] == cluster.namespace
    for kind, (resource, name) in _children("kept").items():
        assert await _get(cluster, resource, name, namespace=isolation) is None, kind
