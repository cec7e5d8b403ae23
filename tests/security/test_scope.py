"""The controllers' writes are confined to namespaces enabled for sandboxes (scope.yaml).

RBAC grants the sandbox reconciler and the pool manager their verbs cluster-wide; the
ValidatingAdmissionPolicy confines them. Each request below is made with the service's own
kubeconfig (its ServiceAccount token) through the real API server's admission, as a server
dry run (nothing is stored): in a namespace labelled ``llmsafespace.dev/sandboxes=enabled``
it is admitted, in any other (``kube-system`` included) refused with the policy's message;
namespaces are created and deleted only as isolation namespaces; the pool manager's exec
reaches no pod outside an enabled namespace. The administrator is not confined.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lss_dev import controlplane, fixtures_kube, identities
from lss_dev import platform as platform_mod

pytestmark = pytest.mark.integration

NOT_ENABLED = "is not enabled for LLMSafeSpace"
NOT_ISOLATION = "and delete only isolation namespaces"
CONTROLLERS = ("sandbox_reconciler", "pool_manager")


@pytest.fixture(scope="module")
def cp(platform: platform_mod.Platform) -> controlplane.ControlPlane:
    identities.apply_rbac(platform.control_plane)
    return platform.control_plane


@pytest.fixture(scope="module")
def namespaces(cp: controlplane.ControlPlane) -> Iterator[dict[str, str]]:
    """An enabled and a plain namespace (both Pod Security restricted)."""
    suffix = uuid.uuid4().hex[:8]
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    enabled = {"llmsafespace.dev/sandboxes": "enabled"}
    made = {
        "enabled": (f"scope-on-{suffix}", {**restricted, **enabled}),
        "plain": (f"scope-off-{suffix}", restricted),
        # Enabled, but a pod there would not be held to Pod Security restricted.
        "unrestricted": (f"scope-open-{suffix}", enabled),
        # Made by an earlier reconciler: isolation labels, not the enabled one.
        "old-isolation": (
            f"sandbox-old-{suffix}",
            {**restricted, "app": "llmsafespace", "llmsafespace.dev/sandbox-namespace": "x"},
        ),
    }
    found = {kind: name for kind, (name, _) in made.items()}
    for name, labels in made.values():
        _apply(
            cp,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        )
        # The account a sandbox pod runs as (admission looks it up, token or not).
        _apply(
            cp,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "sandbox-probe", "namespace": name},
            },
        )
    try:
        yield found
    finally:
        for name in found.values():
            cp.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _apply(cp: controlplane.ControlPlane, body: dict[str, Any]) -> None:
    subprocess.run(
        [str(cp.binaries["kubectl"]), f"--kubeconfig={cp.kubeconfig}", "create", "-f", "-"],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        check=True,
    )


def _as(
    cp: controlplane.ControlPlane, service: str, *args: str, body: Any = None
) -> subprocess.CompletedProcess[str]:
    kubeconfig = Path(identities.kubeconfigs(cp)[service])
    return subprocess.run(
        [str(cp.binaries["kubectl"]), f"--kubeconfig={kubeconfig}", *args],
        input=None if body is None else json.dumps(body),
        capture_output=True,
        text=True,
        check=False,
    )


def _pod(name: str, *, service_account: str = "sandbox-probe") -> dict[str, Any]:
    return fixtures_kube.restricted_pod_body(name, service_account=service_account)


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"x": "y"}, "ports": [{"port": 80}]},
    }


def _policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


@pytest.mark.parametrize("service", CONTROLLERS)
@pytest.mark.parametrize("make", [_pod, _service, _policy], ids=["pod", "service", "policy"])
def test_a_controllers_write_lands_only_in_an_enabled_namespace(
    cp: controlplane.ControlPlane,
    namespaces: dict[str, str],
    service: str,
    make: Any,
) -> None:
    body = make(f"probe-{uuid.uuid4().hex[:6]}")
    create = ("create", "-f", "-", "--dry-run=server", "-o", "name")
    for namespace in (namespaces["enabled"], namespaces["old-isolation"]):
        allowed = _as(cp, service, *create, f"--namespace={namespace}", body=body)
        assert allowed.returncode == 0, allowed.stderr
    for namespace in (namespaces["plain"], "kube-system", "default"):
        if make is _pod and namespace != namespaces["plain"]:
            # An account that exists there (admission looks it up before the policy).
            body = _pod(body["metadata"]["name"], service_account="default")
        refused = _as(cp, service, *create, f"--namespace={namespace}", body=body)
        assert refused.returncode != 0, f"{service} wrote in {namespace}"
        assert NOT_ENABLED in refused.stderr, refused.stderr
        assert "llmsafespace.dev/sandboxes=enabled" in refused.stderr


def test_a_privileged_service_accounts_pod_in_kube_system_is_refused(
    cp: controlplane.ControlPlane,
) -> None:
    """The takeover a leaked controller token allowed: a pod in kube-system (no Pod Security
    there) running as a controller's privileged account."""
    body = _pod("takeover", service_account="clusterrole-aggregation-controller")
    for service in CONTROLLERS:
        refused = _as(
            cp,
            service,
            "create",
            "-f",
            "-",
            "--dry-run=server",
            "--namespace=kube-system",
            body=body,
        )
        assert refused.returncode != 0
        assert NOT_ENABLED in refused.stderr, refused.stderr


def test_a_pod_only_under_pod_security_restricted_tokenless_as_its_own_account(
    cp: controlplane.ControlPlane, namespaces: dict[str, str]
) -> None:
    create = ("create", "-f", "-", "--dry-run=server", "-o", "name")
    unrestricted = _as(
        cp, "pool_manager", *create, f"--namespace={namespaces['unrestricted']}", body=_pod("p")
    )
    assert unrestricted.returncode != 0
    assert "does not enforce Pod Security restricted" in unrestricted.stderr, unrestricted.stderr
    token = _pod("t")
    token["spec"]["automountServiceAccountToken"] = True
    other = _pod("o", service_account="default")
    for body in (token, other):
        refused = _as(
            cp, "sandbox_reconciler", *create, f"--namespace={namespaces['enabled']}", body=body
        )
        assert refused.returncode != 0
        assert "mount no ServiceAccount token" in refused.stderr, refused.stderr


def test_deleting_its_own_child_is_allowed_anywhere_nothing_else(
    cp: controlplane.ControlPlane, namespaces: dict[str, str]
) -> None:
    """A namespace that lost its label must not hold a sandbox's finalizer for ever."""
    ours = _service(f"ours-{uuid.uuid4().hex[:6]}")
    ours["metadata"]["labels"] = {"app": "llmsafespace"}
    theirs = _service(f"theirs-{uuid.uuid4().hex[:6]}")
    for body in (ours, theirs):
        body["metadata"]["namespace"] = namespaces["plain"]
        _apply(cp, body)
    delete = ("delete", "service", f"--namespace={namespaces['plain']}", "--dry-run=server")
    allowed = _as(cp, "sandbox_reconciler", *delete, ours["metadata"]["name"])
    assert allowed.returncode == 0, allowed.stderr
    refused = _as(cp, "sandbox_reconciler", *delete, theirs["metadata"]["name"])
    assert refused.returncode != 0
    assert NOT_ENABLED in refused.stderr, refused.stderr


def test_namespaces_are_created_and_deleted_only_as_isolation_namespaces(
    cp: controlplane.ControlPlane, namespaces: dict[str, str]
) -> None:
    name = f"sandbox-{uuid.uuid4().hex[:8]}"
    isolation: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "app": "llmsafespace",
                "llmsafespace.dev/sandbox-namespace": "team-a",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }
    create = ("create", "-f", "-", "--dry-run=server", "-o", "name")
    allowed = _as(cp, "sandbox_reconciler", *create, body=isolation)
    assert allowed.returncode == 0, allowed.stderr
    # An isolation namespace without Pod Security restricted would take privileged pods.
    privileged = {**isolation, "metadata": {**isolation["metadata"]}}
    privileged["metadata"]["labels"] = {
        **isolation["metadata"]["labels"],
        "pod-security.kubernetes.io/enforce": "privileged",
    }
    refused_open = _as(cp, "sandbox_reconciler", *create, body=privileged)
    assert refused_open.returncode != 0
    assert NOT_ISOLATION in refused_open.stderr, refused_open.stderr
    plain = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"x-{name}"}}
    refused = _as(cp, "sandbox_reconciler", *create, body=plain)
    assert refused.returncode != 0
    assert NOT_ISOLATION in refused.stderr, refused.stderr
    # A tenant's namespace, enabled or not (default and kube-system the API server protects).
    for victim in (namespaces["enabled"], namespaces["plain"]):
        deleted = _as(cp, "sandbox_reconciler", "delete", "namespace", victim, "--dry-run=server")
        assert deleted.returncode != 0, f"the reconciler could delete {victim}"
        assert NOT_ISOLATION in deleted.stderr, deleted.stderr


def test_the_pool_managers_exec_reaches_no_pod_outside_an_enabled_namespace(
    cp: controlplane.ControlPlane, namespaces: dict[str, str]
) -> None:
    """``pods/exec`` is granted cluster-wide (RBAC cannot narrow it to warm pods); the scope
    refuses the exec itself in any other namespace, before it reaches a kubelet."""
    name = f"target-{uuid.uuid4().hex[:6]}"
    body = _pod(name)
    body["metadata"]["namespace"] = namespaces["plain"]
    _apply(cp, body)
    refused = _as(
        cp,
        "pool_manager",
        "exec",
        f"--namespace={namespaces['plain']}",
        name,
        "--",
        "true",
    )
    assert refused.returncode != 0
    assert NOT_ENABLED in refused.stderr, refused.stderr


def test_the_administrator_is_not_confined(
    cp: controlplane.ControlPlane, namespaces: dict[str, str]
) -> None:
    admin = subprocess.run(
        [
            str(cp.binaries["kubectl"]),
            f"--kubeconfig={cp.kubeconfig}",
            "create",
            "-f",
            "-",
            "--dry-run=server",
            f"--namespace={namespaces['plain']}",
        ],
        input=json.dumps(_service("admin-probe")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert admin.returncode == 0, admin.stderr
