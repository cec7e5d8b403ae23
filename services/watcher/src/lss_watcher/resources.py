"""The table of what the watcher lists and watches, and where each lives on the API server (pure).

Five custom kinds, each with its own hint key (RuntimeEnvironment is cluster-scoped), and
the child kinds selected by the children's label (``app=llmsafespace``), whose changes are
announced on their owners' keys: pods, Services, NetworkPolicies, ServiceAccounts, PVCs, and
Cilium's CiliumNetworkPolicies where that CRD is installed (optional). Sandbox and WarmPool
changes also publish their committed status. No I/O here: ``watching.py`` turns a row into
list and watch requests.
"""

from __future__ import annotations

import dataclasses
import enum

from lss_common.models import kinds
from lss_watcher import settings as settings_module


class Name(enum.StrEnum):
    """Every watched resource, as the token used in metrics labels, logs and message ids."""

    SANDBOX = kinds.SANDBOX.singular
    SANDBOX_PROFILE = kinds.SANDBOX_PROFILE.singular
    WARM_POOL = kinds.WARM_POOL.singular
    WARM_POD = kinds.WARM_POD.singular
    RUNTIME_ENVIRONMENT = kinds.RUNTIME_ENVIRONMENT.singular
    POD = "pod"
    SERVICE = "service"
    NETWORK_POLICY = "networkpolicy"
    SERVICE_ACCOUNT = "serviceaccount"
    PERSISTENT_VOLUME_CLAIM = "persistentvolumeclaim"
    CILIUM_NETWORK_POLICY = "ciliumnetworkpolicy"


@dataclasses.dataclass(frozen=True, slots=True)
class WatchedResource:
    """One list+watch target."""

    name: Name
    group: str
    """API group; empty for the core group."""
    version: str
    plural: str
    namespaced: bool
    own_kind: str | None
    """The hint kind token of the object itself (``sandbox``...); None for children, whose
    changes are announced on their owners' keys only."""
    publishes_status: bool
    """Whether committed status goes to LSS_STATUS (Sandbox and WarmPool)."""
    label_selector: str | None
    namespace: str | None
    """Watch only this namespace; None: all namespaces (or cluster-wide)."""
    optional: bool = False
    """The API server may not serve it (a CRD that is not installed, such as Cilium's): a
    404 on the list is not an error, and the list is retried now and then."""

    @property
    def collection_path(self) -> str:
        """The URL path that lists (and, with ``watch=true``, watches) the resource."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and self.namespace is not None:
            return f"{prefix}/namespaces/{self.namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"


def _custom(resource: kinds.Resource, *, namespace: str | None) -> WatchedResource:
    return WatchedResource(
        name=Name(resource.singular),
        group=kinds.GROUP,
        version=kinds.VERSION,
        plural=resource.plural,
        namespaced=resource.namespaced,
        own_kind=resource.singular,
        publishes_status=resource in (kinds.SANDBOX, kinds.WARM_POOL),
        label_selector=None,
        namespace=namespace if resource.namespaced else None,
    )


def _child(
    name: Name,
    *,
    group: str,
    plural: str,
    selector: str,
    namespace: str | None,
    version: str = "v1",
    optional: bool = False,
) -> WatchedResource:
    return WatchedResource(
        name=name,
        group=group,
        version=version,
        plural=plural,
        namespaced=True,
        own_kind=None,
        publishes_status=False,
        label_selector=selector,
        namespace=namespace,
        optional=optional,
    )


def watched_resources(options: settings_module.WatcherOptions) -> tuple[WatchedResource, ...]:
    """Every resource the watcher lists and watches, for these options."""
    namespace = options.namespace
    selector = options.child_label_selector
    return (
        *(_custom(resource, namespace=namespace) for resource in kinds.ALL),
        _child(Name.POD, group="", plural="pods", selector=selector, namespace=namespace),
        _child(Name.SERVICE, group="", plural="services", selector=selector, namespace=namespace),
        _child(
            Name.NETWORK_POLICY,
            group="networking.k8s.io",
            plural="networkpolicies",
            selector=selector,
            namespace=namespace,
        ),
        _child(
            Name.SERVICE_ACCOUNT,
            group="",
            plural="serviceaccounts",
            selector=selector,
            namespace=namespace,
        ),
        _child(
            Name.PERSISTENT_VOLUME_CLAIM,
            group="",
            plural="persistentvolumeclaims",
            selector=selector,
            namespace=namespace,
        ),
        # Written instead of NetworkPolicies for egress by domain where Cilium is installed.
        _child(
            Name.CILIUM_NETWORK_POLICY,
            group="cilium.io",
            version="v2",
            plural="ciliumnetworkpolicies",
            selector=selector,
            namespace=namespace,
            optional=True,
        ),
    )
