"""Child objects (pods, Services, NetworkPolicies, ServiceAccounts, PVCs) wake their owner's key.

Matrix:
- each child kind, owned by a Sandbox through a controller ownerReference: create, update and
  delete each produce a hint on ``sandbox/<ns>/<name>`` whose id is
  ``sandbox/<ns>/<name>/<child rv>/<child resource>``;
- a warm pod's pod (owned by a WarmPod) wakes the ``warmpod`` key;
- a child in another namespace names its Sandbox by labels and wakes that Sandbox's key;
- a pod re-owned from a WarmPod to a Sandbox wakes both;
- children without ``app=llmsafespace`` are not watched; labelled children with a foreign
  owner (a ConfigMap) are tracked but wake nobody.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats.aio.client
import pytest
from kubernetes_asyncio import client

from lss_common.models import labels
from lss_common.testing import eventually
from lss_watcher import settings as settings_module
from lss_watcher import testing

pytestmark = pytest.mark.integration

CHILD_KINDS = ["pod", "service", "networkpolicy", "serviceaccount", "persistentvolumeclaim"]


def owner_ref(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_body(
    kind: str,
    name: str,
    *,
    owners: list[dict[str, Any]] | None = None,
    extra_labels: dict[str, str] | None = None,
    labelled: bool = True,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {}}
    if labelled:
        metadata["labels"][labels.APP] = labels.APP_VALUE
    metadata["labels"].update(extra_labels or {})
    if owners:
        metadata["ownerReferences"] = owners
    if kind == "pod":
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "sandbox",
                        "image": "ghcr.io/llmsafespace/runtime-python:3.11",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            },
        }
    if kind == "service":
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {"selector": {"x": name}, "ports": [{"port": 8080}]},
        }
    if kind == "networkpolicy":
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata,
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
    if kind == "serviceaccount":
        return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
    if kind == "persistentvolumeclaim":
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata,
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    raise ValueError(kind)


class Children:
    """Typed create/patch/delete/read of the child kinds through kubernetes_asyncio."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.networking = client.NetworkingV1Api(api)

    def _ops(self, kind: str) -> tuple[Callable[..., Awaitable[Any]], ...]:
        core, net = self.core, self.networking
        table: dict[str, tuple[Callable[..., Awaitable[Any]], ...]] = {
            "pod": (
                core.create_namespaced_pod,
                core.patch_namespaced_pod,
                core.delete_namespaced_pod,
                core.read_namespaced_pod,
            ),
            "service": (
                core.create_namespaced_service,
                core.patch_namespaced_service,
                core.delete_namespaced_service,
                core.read_namespaced_service,
            ),
            "networkpolicy": (
                net.create_namespaced_network_policy,
                net.patch_namespaced_network_policy,
                net.delete_namespaced_network_policy,
                net.read_namespaced_network_policy,
            ),
            "serviceaccount": (
                core.create_namespaced_service_account,
                core.patch_namespaced_service_account,
                core.delete_namespaced_service_account,
                core.read_namespaced_service_account,
            ),
            "persistentvolumeclaim": (
                core.create_namespaced_persistent_volume_claim,
                core.patch_namespaced_persistent_volume_claim,
                core.delete_namespaced_persistent_volume_claim,
                core.read_namespaced_persistent_volume_claim,
            ),
        }
        return table[kind]

    async def create(self, kind: str, body: dict[str, Any], *, namespace: str | None = None) -> Any:
        return await self._ops(kind)[0](namespace or self.namespace, body)

    async def patch_labels(self, kind: str, name: str, values: dict[str, str]) -> Any:
        return await self._ops(kind)[1](name, self.namespace, {"metadata": {"labels": values}})

    async def delete(self, kind: str, name: str) -> None:
        await self._ops(kind)[2](name, self.namespace, grace_period_seconds=0)

    async def version(self, kind: str, name: str) -> str | None:
        try:
            obj = await self._ops(kind)[3](name, self.namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return str(obj.metadata.resource_version)


@pytest.fixture
def children(kube_api: client.ApiClient, namespace: str) -> Children:
    return Children(kube_api, namespace)


def child_version(received: testing.Received, *, source: str) -> int | None:
    """The child resourceVersion in an owner hint's id ``<key>/<child rv>/<source>``."""
    parts = (received.msg_id or "").split("/")
    if len(parts) == 5 and parts[4] == source:
        return int(parts[3])
    return None


@pytest.mark.parametrize("kind", CHILD_KINDS)
async def test_child_changes_wake_the_owning_sandbox(
    kind: str,
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    children: Children,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    ns = objects.namespace
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings),
    ):
        sandbox = await objects.create("sandboxes", testing.custom_body("sandbox", "sb"))
        owner = owner_ref("Sandbox", "sb", sandbox["metadata"]["uid"])
        name = f"{kind[:4]}-{uuid.uuid4().hex[:6]}"

        def from_child(r: testing.Received) -> int | None:
            return child_version(r, source=kind) if r.key == ("sandbox", ns, "sb") else None

        created = await children.create(kind, child_body(kind, name, owners=[owner]))
        created_version = int(created.metadata.resource_version)
        hint = await log.wait_for(
            lambda r: from_child(r) == created_version, describe=f"{kind} created → sandbox hint"
        )
        assert hint.event.event_type == "MODIFIED"
        assert hint.event.kind == "sandbox"

        patched = await children.patch_labels(kind, name, {"touched": "yes"})
        patched_version = int(patched.metadata.resource_version)
        await log.wait_for(
            lambda r: from_child(r) == patched_version, describe=f"{kind} updated → sandbox hint"
        )

        last_seen = int(await children.version(kind, name) or 0)
        await children.delete(kind, name)

        async def gone_and_announced() -> bool:
            if await children.version(kind, name) is not None:
                return False
            return any((from_child(r) or 0) > last_seen for r in log.received)

        await eventually.eventually(
            gone_and_announced, timeout_seconds=30, describe=f"{kind} deleted → sandbox hint"
        )


async def test_warm_pods_pod_wakes_the_warm_pod_and_reowning_wakes_both(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    children: Children,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    ns = objects.namespace
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings),
    ):
        warmpod = await objects.create("warmpods", testing.custom_body("warmpod", "wp"))
        sandbox = await objects.create("sandboxes", testing.custom_body("sandbox", "sb"))
        wp_owner = owner_ref("WarmPod", "wp", warmpod["metadata"]["uid"])
        created = await children.create("pod", child_body("pod", "wp-pod", owners=[wp_owner]))
        version = int(created.metadata.resource_version)
        await log.wait_for(
            lambda r: r.key == ("warmpod", ns, "wp") and child_version(r, source="pod") == version,
            describe="the warm pod's pod wakes the WarmPod",
        )
        # The claim: the Sandbox becomes the controller, the WarmPod stays an owner.
        sb_owner = owner_ref("Sandbox", "sb", sandbox["metadata"]["uid"])
        reowned = await children.core.patch_namespaced_pod(
            "wp-pod",
            ns,
            {"metadata": {"ownerReferences": [sb_owner, {**wp_owner, "controller": False}]}},
        )
        reowned_version = int(reowned.metadata.resource_version)
        for key in (("sandbox", ns, "sb"), ("warmpod", ns, "wp")):
            await log.wait_for(
                lambda r, key=key: (
                    r.key == key and child_version(r, source="pod") == reowned_version
                ),
                describe=f"re-owning wakes {key}",
            )
        # Dropping the WarmPod reference still wakes it once more (its previous owner).
        dropped = await children.core.patch_namespaced_pod(
            "wp-pod", ns, {"metadata": {"ownerReferences": [sb_owner]}}
        )
        dropped_version = int(dropped.metadata.resource_version)
        await log.wait_for(
            lambda r: (
                r.key == ("warmpod", ns, "wp") and child_version(r, source="pod") == dropped_version
            ),
            describe="the previous owner hears about its pod leaving",
        )


async def test_cross_namespace_child_wakes_its_sandbox_by_labels(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    children: Children,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    # All namespaces: the child lives in the test namespace, its Sandbox elsewhere.
    settings = make_settings()
    cleanup_streams(settings)
    home = f"home-{uuid.uuid4().hex[:6]}"
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings),
    ):
        created = await children.create(
            "service",
            child_body(
                "service",
                "isolated",
                extra_labels={labels.SANDBOX_NAME: "far.away", labels.SANDBOX_NAMESPACE: home},
            ),
        )
        version = int(created.metadata.resource_version)
        received = await log.wait_for(
            lambda r: r.key == ("sandbox", home, "far.away"),
            describe="the labelled child wakes the sandbox in its home namespace",
        )
        assert child_version(received, source="service") == version


async def test_a_retained_claim_of_a_long_named_sandbox_wakes_it_by_annotation(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    children: Children,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    """A retained claim has no owner reference, and a sandbox name over 63 characters fits
    no label: the claim names it by annotation, and its changes wake that sandbox (they
    waited for the resync)."""
    settings = make_settings()
    cleanup_streams(settings)
    long_name = "retained-" + "x" * 70
    body = child_body("persistentvolumeclaim", "sandbox-long-data")
    body["metadata"]["annotations"] = {labels.SANDBOX_NAME_ANNOTATION: long_name}
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings),
    ):
        created = await children.create("persistentvolumeclaim", body)
        namespace = created.metadata.namespace
        received = await log.wait_for(
            lambda r: r.key == ("sandbox", namespace, long_name),
            describe="the annotated claim wakes its sandbox",
        )
        assert child_version(received, source="persistentvolumeclaim") == int(
            created.metadata.resource_version
        )


async def test_unlabelled_and_foreign_children_wake_nobody(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    children: Children,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings) as running,
    ):
        await children.create(
            "serviceaccount", child_body("serviceaccount", "plain", labelled=False)
        )
        # A real owner: the garbage collector deletes dependents whose owners do not exist.
        config_map = await children.core.create_namespaced_config_map(
            objects.namespace, {"metadata": {"name": "cm"}, "data": {}}
        )
        foreign = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "cm",
            "uid": config_map.metadata.uid,
        }
        await children.create(
            "serviceaccount", child_body("serviceaccount", "foreign", owners=[foreign])
        )
        # A marker after both: once its hint is in, the two earlier changes were processed.
        await objects.create("sandboxes", testing.custom_body("sandbox", "marker"))
        await log.wait_for(
            lambda r: r.key == ("sandbox", objects.namespace, "marker"), describe="the marker"
        )
        await eventually.eventually(
            lambda: (
                running.sample("llmsafespace_watcher_objects_tracked", kind="serviceaccount") == 1
            ),
            timeout_seconds=10,
            describe="only the labelled service account is tracked",
        )
    assert [r.key for r in log.received] == [("sandbox", objects.namespace, "marker")]
