"""Each service's own identity on the local platform, as deployed.

The services never run as the platform's administrator: ``deploy/rbac/`` (the manifests the
cluster install applies) is applied, and each service gets a kubeconfig holding a token of
its own ServiceAccount from the TokenRequest API. A permission a service needs but its
ClusterRole lacks therefore fails on the local platform too, in ``./lss up``, the end-to-end
test and the benches, instead of first in a cluster.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lss_dev import controlplane, kubeconfig, paths

NAMESPACE = "llmsafespace-system"

# service package suffix -> (its RBAC manifest in deploy/rbac, its ServiceAccount)
ACCOUNTS: dict[str, tuple[str, str]] = {
    "watcher": ("watcher.yaml", "llmsafespace-watcher"),
    "sandbox_reconciler": ("sandbox-reconciler.yaml", "llmsafespace-sandbox-reconciler"),
    "pool_manager": ("pool-manager.yaml", "llmsafespace-pool-manager"),
}

#: The ValidatingAdmissionPolicy confining the controllers' writes (deploy/rbac).
SCOPE = "scope.yaml"

#: The reconciler's namespace role for namespace-per-sandbox isolation, which the local
#: platform allows (its tests turn isolation on); a cluster applies it only with isolation.
ISOLATION = "sandbox-reconciler-isolation.yaml"

# TokenRequest's own bound applies (the API server has no --service-account-max-token-
# expiration here); a new token is issued whenever a service is started.
TOKEN_DURATION = "720h"

# Per control plane (state dir): RBAC applied and tokens issued once per process.
_issued: dict[Path, dict[str, str]] = {}
_issuing = threading.Lock()


def rbac_dir() -> Path:
    return paths.repo_root() / "deploy" / "rbac"


def apply_rbac(cp: controlplane.ControlPlane) -> None:
    """The system namespace, every service's ServiceAccount, roles and bindings, and the
    scope of the controllers' writes (namespaces enabled for sandboxes)."""
    cp.kubectl("apply", "--server-side", "-f", str(rbac_dir() / "namespace.yaml"))
    for manifest, _ in ACCOUNTS.values():
        cp.kubectl("apply", "--server-side", "-f", str(rbac_dir() / manifest))
    cp.kubectl("apply", "--server-side", "-f", str(rbac_dir() / ISOLATION))
    cp.kubectl("apply", "--server-side", "-f", str(rbac_dir() / SCOPE))


def service_account(service: str) -> str:
    try:
        return ACCOUNTS[service][1]
    except KeyError:
        raise ValueError(
            f"service {service!r} has no ServiceAccount: add its RBAC manifest to "
            f"{rbac_dir()} and to lss_dev.identities.ACCOUNTS"
        ) from None


def kubeconfig_for(cp: controlplane.ControlPlane, service: str) -> Path:
    """A kubeconfig authenticating as ``service``'s ServiceAccount (after ``apply_rbac``)."""
    return account_kubeconfig(
        cp,
        service_account(service),
        namespace=NAMESPACE,
        path=cp.state_dir / "identities" / f"{service}.kubeconfig",
    )


def account_kubeconfig(
    cp: controlplane.ControlPlane, account: str, *, namespace: str, path: Path
) -> Path:
    """A kubeconfig at ``path`` with a new token of ServiceAccount ``namespace/account``."""
    token = cp.kubectl(
        "create", "token", account, f"--namespace={namespace}", f"--duration={TOKEN_DURATION}"
    ).strip()
    if not token:
        raise RuntimeError(f"the API server issued no token for {namespace}/{account}")
    return kubeconfig.write_token(
        path,
        server=cp.server,
        ca=cp.pki.ca_cert,
        token=token,
        name="llmsafespace-dev",
        user=f"system:serviceaccount:{namespace}:{account}",
    )


def kubeconfigs(cp: controlplane.ControlPlane) -> dict[str, str]:
    """Every service's kubeconfig on ``cp``, by service package suffix (``"watcher"``...).

    Test harnesses run each service with its own; the RBAC is applied and the tokens issued
    once per process and control plane (a restarted API server keeps its signing key).
    """
    with _issuing:
        found = _issued.get(cp.state_dir)
        if found is None:
            apply_rbac(cp)
            found = {service: str(kubeconfig_for(cp, service)) for service in ACCOUNTS}
            _issued[cp.state_dir] = found
        return dict(found)
