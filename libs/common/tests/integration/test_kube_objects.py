"""kube.objects against the real kube-apiserver. Matrix: create/get/replace/patch/delete a
ConfigMap as dicts and as msgspec structs; list with selectors across pages; 404 on get and
delete; 409 AlreadyExists on create; 409 Conflict on a stale replace and a stale patch; delete
preconditions; 422 from core validation and from the Sandbox CRD schema names the field;
403 from Pod Security admission; a response our model cannot decode names the JSON path;
request metrics are counted by verb and result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import prometheus_client
import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.observability import metrics
from lss_common.testing import eventually
from lss_dev import identities
from lss_dev import platform as platform_mod

pytestmark = pytest.mark.integration


class ConfigMapView(msgspec.Struct, rename="camel"):
    """A trimmed ConfigMap, decoded straight from the response bytes."""

    metadata: dict[str, Any]
    data: dict[str, str] = {}


_decode_config_map = msgspec.json.Decoder(ConfigMapView).decode


class WrongMeta(msgspec.Struct):
    name: int


class WrongView(msgspec.Struct):
    """A model that disagrees with the server: names are strings."""

    metadata: WrongMeta


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


@pytest.fixture
def kube(
    kube_api: k8s_client.ApiClient, registry: prometheus_client.CollectorRegistry
) -> client.Kube:
    return client.Kube(
        api=kube_api,
        request_timeout_seconds=10.0,
        metrics=metrics.KubeMetrics.register(registry),
    )


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "lss-test"}},
        "data": data,
    }


async def test_create_get_patch_replace_delete(kube: client.Kube, namespace: str) -> None:
    created = await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body=config_map("cm", a="1")
    )
    assert created["metadata"]["namespace"] == namespace
    fetched = await objects.get_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, name="cm", decode=_decode_config_map
    )
    assert isinstance(fetched, ConfigMapView)
    assert fetched.data == {"a": "1"}
    patched = await objects.patch_object(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        name="cm",
        body={"data": {"b": "2"}},
    )
    assert patched["data"] == {"a": "1", "b": "2"}
    replaced = await objects.replace_object(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        name="cm",
        body={**patched, "data": {"c": "3"}},
        decode=_decode_config_map,
    )
    assert replaced.data == {"c": "3"}
    await objects.delete_object(kube, resource=objects.CONFIG_MAP, namespace=namespace, name="cm")
    with pytest.raises(errors.NotFoundError, match=f"ConfigMap {namespace}/cm not found"):
        await objects.get_object(kube, resource=objects.CONFIG_MAP, namespace=namespace, name="cm")
    with pytest.raises(errors.NotFoundError):
        await objects.delete_object(
            kube, resource=objects.CONFIG_MAP, namespace=namespace, name="cm"
        )


async def test_get_not_older_than_a_version_sees_that_change(
    kube: client.Kube, namespace: str
) -> None:
    """A read at a hint's resourceVersion (served from the watch cache) shows the change the
    hint announced, every time, including a deletion."""
    created = await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body=config_map("seen", n="0")
    )
    current = created
    for n in range(1, 21):
        current = await objects.patch_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            name="seen",
            body={"data": {"n": str(n)}},
        )
        read = await objects.get_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            name="seen",
            not_older_than=current["metadata"]["resourceVersion"],
        )
        assert read["data"]["n"] == str(n)
        assert read["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
    await objects.delete_object(kube, resource=objects.CONFIG_MAP, namespace=namespace, name="seen")
    after = await objects.list_objects(kube, resource=objects.CONFIG_MAP, namespace=namespace)
    with pytest.raises(errors.NotFoundError):
        await objects.get_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            name="seen",
            not_older_than=after.resource_version,
        )
    gone = await objects.get_or_none(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        name="seen",
        not_older_than=after.resource_version,
    )
    assert gone is None
    assert (
        await objects.get_or_none(
            kube, resource=objects.CONFIG_MAP, namespace=namespace, name="never"
        )
        is None
    )


async def test_get_not_older_than_a_future_version_is_retryable(
    kube: client.Kube, namespace: str
) -> None:
    """A version the API server has not reached (a hint from a server that is ahead, or a
    corrupt one) is not waited for forever: the server gives up and the caller retries."""
    created = await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body=config_map("ahead")
    )
    future = str(int(created["metadata"]["resourceVersion"]) + 10_000_000)
    with pytest.raises(errors.RetryableError, match="ConfigMap"):
        await objects.get_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            name="ahead",
            not_older_than=future,
        )


async def test_struct_bodies_are_accepted(kube: client.Kube, namespace: str) -> None:
    body = ConfigMapView(metadata={"name": "from-struct"}, data={"k": "v"})
    created = await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body=body
    )
    assert created["data"] == {"k": "v"}


async def test_list_follows_pages_and_selectors(kube: client.Kube, namespace: str) -> None:
    for index in range(5):
        await objects.create_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            body=config_map(f"cm-{index}", i=str(index)),
        )
    await objects.create_object(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        body={"metadata": {"name": "unlabelled"}},
    )
    listed = await objects.list_objects(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        label_selector="app=lss-test",
        page_size=2,
        decode=_decode_config_map,
    )
    assert sorted(item.metadata["name"] for item in listed.items) == [f"cm-{i}" for i in range(5)]
    assert listed.resource_version
    everything = await objects.list_objects(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        field_selector="metadata.name=unlabelled",
    )
    assert [item["metadata"]["name"] for item in everything.items] == ["unlabelled"]
    across = await objects.list_objects(
        kube, resource=objects.CONFIG_MAP, label_selector="app=lss-test", page_size=3
    )
    assert {item["metadata"]["namespace"] for item in across.items} >= {namespace}


async def test_create_twice_is_already_exists(kube: client.Kube, namespace: str) -> None:
    body = config_map("dup")
    await objects.create_object(kube, resource=objects.CONFIG_MAP, namespace=namespace, body=body)
    with pytest.raises(errors.AlreadyExistsError, match="dup already exists"):
        await objects.create_object(
            kube, resource=objects.CONFIG_MAP, namespace=namespace, body=body
        )


async def test_stale_replace_and_patch_are_conflicts(kube: client.Kube, namespace: str) -> None:
    first = await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body=config_map("cas", v="0")
    )
    stale_version = first["metadata"]["resourceVersion"]
    await objects.patch_object(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        name="cas",
        body={"data": {"v": "1"}},
    )
    with pytest.raises(errors.ConflictError):
        await objects.replace_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            name="cas",
            body={**first, "data": {"v": "stale"}},
        )
    with pytest.raises(errors.ConflictError):
        await objects.patch_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            name="cas",
            body={"metadata": {"resourceVersion": stale_version}, "data": {"v": "stale"}},
        )
    current = await objects.get_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, name="cas"
    )
    assert current["data"] == {"v": "1"}


async def test_delete_preconditions(kube: client.Kube, namespace: str) -> None:
    created = await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body=config_map("pre")
    )
    with pytest.raises(errors.ConflictError):
        await objects.delete_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            name="pre",
            uid="00000000-0000-0000-0000-000000000000",
        )
    await objects.delete_object(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        name="pre",
        uid=created["metadata"]["uid"],
        resource_version=created["metadata"]["resourceVersion"],
    )


async def test_core_validation_422_names_the_field(kube: client.Kube, namespace: str) -> None:
    with pytest.raises(errors.InvalidObjectError) as raised:
        await objects.create_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            body=config_map("Not_A_Valid_Name"),
        )
    assert raised.value.field == "metadata.name"
    assert "metadata.name" in str(raised.value)


async def test_crd_schema_422_names_the_field(kube: client.Kube, namespace: str) -> None:
    body = {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "Sandbox",
        "metadata": {"name": "too-long"},
        "spec": {"runtime": "python:3.11", "timeout": 99999},
    }
    with pytest.raises(errors.InvalidObjectError) as raised:
        await objects.create_object(kube, resource=objects.SANDBOX, namespace=namespace, body=body)
    assert raised.value.field == "spec.timeout"
    assert "spec.timeout" in str(raised.value)


async def test_pod_security_rejection_is_permanent_forbidden(
    kube: client.Kube, namespace: str
) -> None:
    # No securityContext at all: valid for the API, refused by the namespace's "restricted".
    unhardened = {
        "metadata": {"name": "unhardened"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]},
    }
    with pytest.raises(errors.PermanentError) as raised:
        await objects.create_object(
            kube, resource=objects.POD, namespace=namespace, body=unhardened
        )
    assert raised.value.reason == "Forbidden"
    assert "PodSecurity" in str(raised.value)


async def test_undecodable_response_names_the_path(kube: client.Kube, namespace: str) -> None:
    await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body=config_map("text", n="x")
    )
    with pytest.raises(errors.InvalidObjectError) as raised:
        await objects.get_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            name="text",
            decode=msgspec.json.Decoder(WrongView).decode,
        )
    assert raised.value.field == "metadata.name"
    assert "text" in str(raised.value)


async def test_requests_are_counted(
    kube: client.Kube, namespace: str, registry: prometheus_client.CollectorRegistry
) -> None:
    with pytest.raises(errors.NotFoundError):
        await objects.get_object(
            kube, resource=objects.CONFIG_MAP, namespace=namespace, name="absent"
        )
    await objects.create_object(
        kube, resource=objects.CONFIG_MAP, namespace=namespace, body=config_map("counted")
    )

    def sample(verb: str, result: str) -> float | None:
        return registry.get_sample_value(
            "llmsafespace_kube_requests_total",
            {"verb": verb, "resource": "configmaps", "result": result},
        )

    assert sample("get", "not_found") == 1
    assert sample("create", "ok") == 1
    assert (
        registry.get_sample_value(
            "llmsafespace_kube_request_duration_seconds_count", {"verb": "get"}
        )
        == 1
    )


async def test_a_role_the_authorizer_cannot_find_is_retryable_and_a_denial_is_not(
    platform: platform_mod.Platform,
    kube: client.Kube,
    namespace: str,
    tmp_path: Path,
) -> None:
    """An API server answers 403 "RBAC: clusterrole ... not found" while its RBAC caches load
    after a start (and for a binding to a role that does not exist, made here): retryable. A
    role that simply does not allow the request stays a permanent refusal while the API server
    is ready, and is retryable while it is not."""
    account = "no-role-yet"
    await objects.create_object(
        kube,
        resource=objects.SERVICE_ACCOUNT,
        namespace=namespace,
        body={"metadata": {"name": account}},
    )
    binding = f"{namespace}-missing-role"
    platform.control_plane.kubectl(
        "create",
        "clusterrolebinding",
        binding,
        f"--clusterrole={namespace}-does-not-exist",
        f"--serviceaccount={namespace}:{account}",
    )
    try:
        path = identities.account_kubeconfig(
            platform.control_plane, account, namespace=namespace, path=tmp_path / "kubeconfig"
        )
        configuration = k8s_client.Configuration()
        await k8s_config.load_kube_config(config_file=str(path), client_configuration=configuration)
        async with k8s_client.ApiClient(configuration) as api:
            as_account = client.Kube(
                api=api,
                request_timeout_seconds=10.0,
                metrics=metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
            )
            with pytest.raises(errors.RetryableError) as unresolved:
                await objects.get_object(
                    as_account, resource=objects.CONFIG_MAP, namespace=namespace, name="x"
                )
            assert "could not resolve the caller's roles" in str(unresolved.value)
            platform.control_plane.kubectl("delete", "clusterrolebinding", binding)
            binding = ""
            # No binding at all: RBAC denies, nothing to resolve, and the API server is
            # ready (/readyz): a refusal for good.
            with pytest.raises(errors.PermanentError) as denied:
                await objects.get_object(
                    as_account, resource=objects.CONFIG_MAP, namespace=namespace, name="x"
                )
            assert denied.value.reason == "Forbidden"
            # The same denial while the API server is not ready (etcd stopped: its readiness
            # check fails, while the authorizer still answers from its caches, as when it has
            # just started and its RBAC informers have not synced): no verdict yet.
            with platform.control_plane.paused("etcd"):
                # The API server caches its etcd check's answer for a moment: until it says so.
                await eventually.eventually(
                    lambda: _not_ready(as_account),
                    timeout_seconds=30,
                    describe="the API server not ready",
                )
                with pytest.raises(errors.RetryableError) as unready:
                    await objects.get_object(
                        as_account, resource=objects.CONFIG_MAP, namespace=namespace, name="x"
                    )
            assert "not ready yet" in str(unready.value)
            assert "cannot get resource" in str(unready.value)
    finally:
        if binding:
            platform.control_plane.kubectl("delete", "clusterrolebinding", binding)


async def _not_ready(kube: client.Kube) -> bool:
    return not await client.is_api_server_ready(kube)
