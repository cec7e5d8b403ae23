"""Least-privilege RBAC per service, checked by the real apiserver's authorizer.

Each service's manifest in deploy/rbac/ is applied to the platform, then ``kubectl auth
can-i --as=<the service account>`` must allow exactly what the service needs and deny the
rest (writes, Secrets, other API groups). The kubeconfigs the services run with locally
(``lss_dev.identities``) authenticate as those accounts.
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from lss_dev import identities
from lss_dev import platform as platform_mod

pytestmark = pytest.mark.integration

WATCHER = "system:serviceaccount:llmsafespace-system:llmsafespace-watcher"

WATCHER_ALLOWED = [
    (verb, resource)
    for verb in ("get", "list", "watch")
    for resource in (
        "sandboxes.llmsafespace.dev",
        "sandboxprofiles.llmsafespace.dev",
        "warmpools.llmsafespace.dev",
        "warmpods.llmsafespace.dev",
        "runtimeenvironments.llmsafespace.dev",
        "pods",
        "services",
        "serviceaccounts",
        "persistentvolumeclaims",
        "networkpolicies.networking.k8s.io",
    )
]
WATCHER_DENIED = [
    ("create", "pods"),
    ("delete", "pods"),
    ("patch", "sandboxes.llmsafespace.dev"),
    ("update", "sandboxes.llmsafespace.dev/status"),
    ("create", "warmpods.llmsafespace.dev"),
    ("get", "secrets"),
    ("list", "secrets"),
    ("list", "configmaps"),
    ("create", "pods/exec"),
    ("create", "serviceaccounts/token"),
    ("list", "nodes"),
]


RECONCILER = "system:serviceaccount:llmsafespace-system:llmsafespace-sandbox-reconciler"

RECONCILER_ALLOWED = [
    ("get", "sandboxes.llmsafespace.dev"),
    ("patch", "sandboxes.llmsafespace.dev"),
    ("update", "sandboxes.llmsafespace.dev/status"),
    ("patch", "sandboxes.llmsafespace.dev/status"),
    ("list", "runtimeenvironments.llmsafespace.dev"),
    ("get", "sandboxprofiles.llmsafespace.dev"),
    *(
        (verb, resource)
        for verb in ("get", "create", "delete")
        for resource in ("pods", "services", "serviceaccounts", "persistentvolumeclaims")
    ),
    *(
        (verb, resource)
        for verb in ("get", "create", "update", "delete")
        # ciliumnetworkpolicies.cilium.io has the same verbs; kubectl cannot ask about it
        # without Cilium's CRD installed (it resolves resource names through discovery).
        for resource in ("networkpolicies.networking.k8s.io",)
    ),
    ("get", "customresourcedefinitions.apiextensions.k8s.io/ciliumnetworkpolicies.cilium.io"),
    ("create", "events"),
    ("create", "namespaces"),
    ("delete", "namespaces"),
    # Warm starts: adopt the claimed pod and its Service, read and claim WarmPods, delete a
    # released one.
    ("patch", "pods"),
    ("patch", "services"),
    *((verb, "warmpods.llmsafespace.dev") for verb in ("get", "list", "delete")),
    ("patch", "warmpods.llmsafespace.dev/status"),
]
RECONCILER_DENIED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "pods/exec"),
    ("get", "pods/exec"),
    ("create", "pods/attach"),
    ("create", "pods/portforward"),
    ("create", "serviceaccounts/token"),
    ("list", "pods"),
    ("watch", "pods"),
    ("update", "pods"),
    # Children are read by their deterministic names, never listed.
    ("list", "networkpolicies.networking.k8s.io"),
    ("list", "services"),
    ("update", "sandboxes.llmsafespace.dev"),
    ("delete", "sandboxes.llmsafespace.dev"),
    ("create", "sandboxes.llmsafespace.dev"),
    ("patch", "warmpods.llmsafespace.dev"),
    ("create", "warmpods.llmsafespace.dev"),
    ("update", "warmpods.llmsafespace.dev/status"),
    ("update", "runtimeenvironments.llmsafespace.dev/status"),
    ("list", "configmaps"),
    ("list", "nodes"),
    ("get", "customresourcedefinitions.apiextensions.k8s.io/sandboxes.llmsafespace.dev"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
]


POOL_MANAGER = "system:serviceaccount:llmsafespace-system:llmsafespace-pool-manager"

POOL_MANAGER_ALLOWED = [
    ("get", "warmpools.llmsafespace.dev"),
    ("patch", "warmpools.llmsafespace.dev"),
    ("update", "warmpools.llmsafespace.dev/status"),
    *((verb, "warmpods.llmsafespace.dev") for verb in ("get", "list", "create", "delete")),
    ("update", "warmpods.llmsafespace.dev/status"),
    ("get", "sandboxprofiles.llmsafespace.dev"),
    ("list", "runtimeenvironments.llmsafespace.dev"),
    *((verb, "pods") for verb in ("get", "list", "create", "delete")),
    ("get", "serviceaccounts"),
    ("create", "serviceaccounts"),
    ("get", "networkpolicies.networking.k8s.io"),
    ("create", "networkpolicies.networking.k8s.io"),
    # The Service prepared with each warm pod.
    ("create", "services"),
    # Preload scripts run through a websocket exec: an HTTP GET, authorized as get on
    # pods/exec and (Kubernetes 1.30+) create as well.
    ("get", "pods/exec"),
    ("create", "pods/exec"),
    # Leaked-claim sweep: the sandbox a WarmPod is assigned to, by UID (list) and by name.
    ("get", "sandboxes.llmsafespace.dev"),
    ("list", "sandboxes.llmsafespace.dev"),
]
POOL_MANAGER_DENIED = [
    ("delete", "warmpools.llmsafespace.dev"),
    ("create", "warmpools.llmsafespace.dev"),
    ("update", "warmpods.llmsafespace.dev"),
    ("patch", "sandboxes.llmsafespace.dev"),
    ("update", "sandboxes.llmsafespace.dev/status"),
    ("update", "sandboxprofiles.llmsafespace.dev"),
    ("update", "pods"),
    ("patch", "pods"),
    ("create", "pods/attach"),
    ("create", "pods/portforward"),
    ("patch", "pods/ephemeralcontainers"),
    ("delete", "sandboxes.llmsafespace.dev"),
    ("get", "secrets"),
    ("list", "configmaps"),
    ("delete", "serviceaccounts"),
    ("create", "serviceaccounts/token"),
    ("delete", "networkpolicies.networking.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("list", "nodes"),
    # Its warm pods' Services go with their WarmPods (garbage collection), never by hand.
    ("delete", "services"),
    ("patch", "services"),
    ("get", "services"),
]


@pytest.fixture(scope="module")
def rbac_applied(platform: platform_mod.Platform) -> platform_mod.Platform:
    identities.apply_rbac(platform.control_plane)
    return platform


def _can(platform: platform_mod.Platform, who: str, verb: str, resource: str) -> str:
    subresource: list[str] = []
    if resource.startswith("customresourcedefinitions.") and "/" in resource:
        pass  # "<resource>/<name>": kubectl can-i takes a named object as is
    elif "/" in resource:
        resource, sub = resource.split("/", 1)
        subresource = [f"--subresource={sub}"]
    out = platform.control_plane.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        *subresource,
        "--all-namespaces",
        f"--as={who}",
        check=False,
    )
    return out.strip()


@pytest.mark.parametrize(("verb", "resource"), WATCHER_ALLOWED)
def test_watcher_may_read_what_it_watches(
    rbac_applied: platform_mod.Platform, verb: str, resource: str
) -> None:
    assert _can(rbac_applied, WATCHER, verb, resource) == "yes"


@pytest.mark.parametrize(("verb", "resource"), WATCHER_DENIED)
def test_watcher_may_not_write_or_read_secrets(
    rbac_applied: platform_mod.Platform, verb: str, resource: str
) -> None:
    assert _can(rbac_applied, WATCHER, verb, resource) == "no"


@pytest.mark.parametrize(("verb", "resource"), RECONCILER_ALLOWED)
def test_reconciler_may_do_what_it_does(
    rbac_applied: platform_mod.Platform, verb: str, resource: str
) -> None:
    assert _can(rbac_applied, RECONCILER, verb, resource) == "yes"


@pytest.mark.parametrize(("verb", "resource"), RECONCILER_DENIED)
def test_reconciler_may_not_read_secrets_exec_or_escalate(
    rbac_applied: platform_mod.Platform, verb: str, resource: str
) -> None:
    assert _can(rbac_applied, RECONCILER, verb, resource) == "no"


@pytest.mark.parametrize(("verb", "resource"), POOL_MANAGER_ALLOWED)
def test_pool_manager_may_do_what_it_needs(
    rbac_applied: platform_mod.Platform, verb: str, resource: str
) -> None:
    assert _can(rbac_applied, POOL_MANAGER, verb, resource) == "yes"


@pytest.mark.parametrize(("verb", "resource"), POOL_MANAGER_DENIED)
def test_pool_manager_may_do_nothing_else(
    rbac_applied: platform_mod.Platform, verb: str, resource: str
) -> None:
    assert _can(rbac_applied, POOL_MANAGER, verb, resource) == "no"


@pytest.mark.parametrize("service", sorted(identities.ACCOUNTS))
def test_each_service_runs_as_its_own_service_account(
    rbac_applied: platform_mod.Platform, service: str
) -> None:
    """The kubeconfig the local platform, the test harnesses and the benches give a service
    authenticates as that service's ServiceAccount, never as the administrator."""
    cp = rbac_applied.control_plane
    kubeconfig = Path(identities.kubeconfigs(cp)[service])
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(cp.binaries["kubectl"]), f"--kubeconfig={kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    whoami = kubectl("auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    account = identities.ACCOUNTS[service][1]
    assert user["username"] == f"system:serviceaccount:{identities.NAMESPACE}:{account}"
    assert "system:masters" not in user["groups"]
    secrets = kubectl("get", "secrets", "--all-namespaces")
    assert secrets.returncode != 0
    assert "forbidden" in secrets.stderr.lower()


def test_a_service_without_a_service_account_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'recycler' has no ServiceAccount"):
        identities.service_account("recycler")
