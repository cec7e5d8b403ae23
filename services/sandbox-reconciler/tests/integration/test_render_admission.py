"""The rendered children are valid Kubernetes: on the real kube-apiserver, in a namespace
enforcing Pod Security ``restricted``, the first plan's creates (ServiceAccount, every
NetworkPolicy, Service, PVC, pod) are all admitted for each security level (standard, high →
gvisor, custom → the profile's level or the configured class, Localhost seccomp), with
persistent storage, ingress and resolved egress; the stored policies read back equal to the
rendered ones (no endless replace loop); and the same plan applied twice is AlreadyExists
only (deterministic names)."""

from __future__ import annotations

import datetime
from typing import Any

import prometheus_client
import pytest
from kubernetes_asyncio import client as k8s_client

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import sandbox as sandbox_model
from lss_common.observability import metrics
from lss_sandbox_reconciler import plan, testing
from lss_sandbox_reconciler import settings as settings_module

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
RESOURCES = {
    plan.Kind.SERVICE_ACCOUNT: objects.SERVICE_ACCOUNT,
    plan.Kind.NETWORK_POLICY: objects.NETWORK_POLICY,
    plan.Kind.SERVICE: objects.SERVICE,
    plan.Kind.PERSISTENT_VOLUME_CLAIM: objects.PERSISTENT_VOLUME_CLAIM,
    plan.Kind.POD: objects.POD,
}


@pytest.fixture
def kube(kube_api: k8s_client.ApiClient) -> client.Kube:
    return client.Kube(
        api=kube_api,
        request_timeout_seconds=10.0,
        metrics=metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
    )


CASES = {
    "standard": ({"securityLevel": "standard"}, None, None),
    "high": ({"securityLevel": "high"}, None, "gvisor"),
    "custom-profile-high": (
        {"securityLevel": "custom", "profileRef": {"name": "preset"}},
        {"securityLevel": "high"},
        "gvisor",
    ),
    "custom-configured-class": (
        {"securityLevel": "custom", "profileRef": {"name": "preset"}},
        {"securityLevel": "custom"},
        "kata",
    ),
    "everything": (
        {
            "securityLevel": "standard",
            "resources": {"cpu": "1500m", "memory": "1Gi", "cpuPinning": True},
            "networkAccess": {"ingress": True, "egress": [{"domain": "pypi.org"}]},
            "filesystem": {"readOnlyRoot": True, "writablePaths": ["/home/app"]},
            "storage": {"persistent": True, "volumeSize": "2Gi"},
            "securityContext": {
                "runAsUser": 2000,
                "runAsGroup": 2000,
                "seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/sb.json"},
            },
            "profileRef": {"name": "preset"},
        },
        {
            "networkPolicies": [
                # The public internet: every non-public range in ipBlock.except (IPv6
                # too: the API server checks each entry lies inside the cidr).
                {"type": "egress", "rules": [{"cidr": "0.0.0.0/0"}, {"cidr": "::/0"}]},
                {"type": "ingress", "rules": [{"cidr": "10.30.0.0/16"}]},
            ]
        },
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_rendered_children_are_admitted(kube: client.Kube, namespace: str, case: str) -> None:
    spec, profile_spec, runtime_class = CASES[case]
    created = await objects.create_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        body={
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "Sandbox",
            "metadata": {"name": "box"},
            "spec": {"runtime": "python:3.11", **spec},
        },
    )
    stored = sandbox_model.from_dict(created)
    options = settings_module.SandboxOptions(
        runtime_class_custom="kata", egress_mode=settings_module.EgressMode.IPBLOCK
    )
    snapshot = plan.Snapshot(
        sandbox=stored,
        runtimes=(testing.make_runtime(),),
        profile=testing.make_profile(namespace=namespace, spec=profile_spec)
        if profile_spec is not None
        else None,
        children=plan.Children(),
        resolved={"pypi.org": ("151.101.0.223", "151.101.64.223")},
    )
    result = plan.plan_sandbox(snapshot, now=NOW, settings=options)
    creates = [a for a in result.actions if a.verb is plan.Verb.CREATE]
    assert creates, "the first plan creates the children"
    stored_by_name: dict[tuple[plan.Kind, str], dict[str, Any]] = {}
    for action in creates:
        assert action.kind is not None
        assert action.body is not None
        body = await objects.create_object(
            kube, resource=RESOURCES[action.kind], namespace=action.namespace, body=action.body
        )
        stored_by_name[(action.kind, action.name or "")] = body

    pod = stored_by_name[(plan.Kind.POD, "sandbox-box")]
    assert pod["spec"].get("runtimeClassName") == runtime_class
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    for (kind, _name), body in stored_by_name.items():
        if kind is plan.Kind.NETWORK_POLICY:
            desired = next(a.body for a in creates if a.name == body["metadata"]["name"])
            assert desired is not None
            assert not plan.is_policy_outdated(body, desired), body["metadata"]["name"]
    if case == "everything":
        names_created = {name for kind, name in stored_by_name if kind is plan.Kind.NETWORK_POLICY}
        assert names_created == {
            "sandbox-box-deny",
            "sandbox-box-ingress",
            "sandbox-box-egress",
        }
        claim = stored_by_name[(plan.Kind.PERSISTENT_VOLUME_CLAIM, "sandbox-box-data")]
        assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"

    # Deterministic names: the same creates again only meet their own objects.
    for action in creates:
        with pytest.raises(errors.AlreadyExistsError):
            await objects.create_object(
                kube,
                resource=RESOURCES[action.kind or plan.Kind.POD],
                namespace=action.namespace,
                body=action.body,
            )


async def test_pod_violating_restricted_is_refused(kube: client.Kube, namespace: str) -> None:
    """Control: the namespace really enforces restricted, so the acceptance above means it."""
    created = await objects.create_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        body={
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "Sandbox",
            "metadata": {"name": "box"},
            "spec": {"runtime": "python:3.11"},
        },
    )
    snapshot = plan.Snapshot(
        sandbox=sandbox_model.from_dict(created),
        runtimes=(testing.make_runtime(),),
        profile=None,
        children=plan.Children(),
    )
    result = plan.plan_sandbox(snapshot, now=NOW, settings=settings_module.SandboxOptions())
    account = next(a.body for a in result.actions if a.kind is plan.Kind.SERVICE_ACCOUNT)
    await objects.create_object(
        kube, resource=objects.SERVICE_ACCOUNT, namespace=namespace, body=account
    )
    pod_body = next(a.body for a in result.actions if a.kind is plan.Kind.POD)
    assert pod_body is not None
    pod_body["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(errors.PermanentError, match="allowPrivilegeEscalation"):
        await objects.create_object(kube, resource=objects.POD, namespace=namespace, body=pod_body)
