"""Least-privilege RBAC per service, checked by the real apiserver's authorizer.

Each service's manifest in deploy/rbac/ is applied to the platform, then ``kubectl auth
can-i --as=<the service account>`` must allow exactly what the service needs and deny the
rest (writes, Secrets, other API groups).
"""

from __future__ import annotations

import pytest

from lss_dev import paths
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


@pytest.fixture(scope="module")
def rbac_applied(platform: platform_mod.Platform) -> platform_mod.Platform:
    rbac = paths.repo_root() / "deploy" / "rbac"
    cp = platform.control_plane
    cp.kubectl("apply", "--server-side", "-f", str(rbac / "namespace.yaml"))
    cp.kubectl("apply", "--server-side", "-f", str(rbac / "watcher.yaml"))
    return platform


def _can(platform: platform_mod.Platform, who: str, verb: str, resource: str) -> str:
    subresource: list[str] = []
    if "/" in resource:
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
