"""Read one Sandbox and its world from the API server into a frozen ``plan.Snapshot``.

What is read, per pass (independent reads run concurrently):

- the Sandbox (a get; gone → ``None``, nothing to do);
- its children by their deterministic names: ServiceAccount, Service, pod (gets), the claim
  only when ``storage.persistent``, the isolation namespace only under namespace isolation,
  and the NetworkPolicies (and CiliumNetworkPolicies) by the sandbox's UID label — the one
  list, because which policies exist varies;
- unless the sandbox is being deleted or is terminal (then the planner only releases): the
  RuntimeEnvironments (a list: they are selected by ``language``/``version``, not by name)
  and the SandboxProfile (a get at ``resolve.profile_key``);
- whether Cilium's ``CiliumNetworkPolicy`` CRD exists (egress mode ``auto``), cached for
  ``cilium_check_interval_seconds``;
- in ipblock mode, the egress domains' addresses via the event loop's ``getaddrinfo``,
  cached for ``dns_cache_seconds``; a domain that fails or times out resolves to nothing,
  and the planner then writes no rule for it (fail closed).

This module decides nothing and writes nothing: it is the handler's input stage.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from lss_common import errors
from lss_common.kube import client as client_module
from lss_common.kube import objects
from lss_common.models import profile as profile_model
from lss_common.models import runtime as runtime_model
from lss_common.models import sandbox as sandbox_model
from lss_common.runtime import clock as clock_module
from lss_sandbox_reconciler import lifecycle, merge, names, plan, resolve
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import network
from lss_sandbox_reconciler.render import owner as owner_module

_log = logging.getLogger(__name__)

T = TypeVar("T")

CILIUM_CRD_NAME: Final = "ciliumnetworkpolicies.cilium.io"
CUSTOM_RESOURCE_DEFINITION: Final = objects.ApiResource(
    group="apiextensions.k8s.io",
    version="v1",
    plural="customresourcedefinitions",
    kind="CustomResourceDefinition",
    namespaced=False,
)
CILIUM_NETWORK_POLICY: Final = objects.ApiResource(
    group="cilium.io",
    version="v2",
    plural="ciliumnetworkpolicies",
    kind=network.CILIUM_KIND,
    namespaced=True,
)


class Observer:
    """Reads snapshots; holds the two caches (Cilium presence, resolved domains)."""

    def __init__(
        self,
        kube: Callable[[], client_module.Kube],
        *,
        settings: settings_module.SandboxReconcilerSettings,
        clock: clock_module.Clock,
    ) -> None:
        # A callable: the connection exists only once the service has started it.
        self._kube = kube
        self._options = settings.sandbox
        self._reconcile = settings.reconcile
        self._clock = clock
        self._cilium: tuple[bool, float] | None = None
        self._resolved: dict[str, tuple[tuple[str, ...], float]] = {}

    async def observe(self, *, namespace: str, name: str) -> plan.Snapshot | None:
        """The snapshot of the Sandbox ``namespace/name``; ``None`` when it does not exist."""
        kube = self._kube()
        try:
            obj = await objects.get_object(
                kube,
                resource=objects.SANDBOX,
                name=name,
                namespace=namespace,
                decode=sandbox_model.decode,
            )
        except errors.NotFoundError:
            return None
        releasing = bool(obj.metadata.deletion_timestamp) or lifecycle.is_terminal(
            sandbox_model.status_of(obj).phase
        )
        cilium = await self.is_cilium_available()
        children_task = self._read_children(kube, obj=obj, cilium=cilium)
        if releasing:
            children = await children_task
            return plan.Snapshot(
                sandbox=obj, runtimes=(), profile=None, children=children, cilium_available=cilium
            )
        children, runtimes, profile = await asyncio.gather(
            children_task, self._read_runtimes(kube), self._read_profile(kube, obj=obj)
        )
        resolved: dict[str, tuple[str, ...]] = {}
        mode = network.choose_egress_mode(self._options, cilium_available=cilium)
        if mode is settings_module.EgressMode.IPBLOCK:
            resolved = await self.resolve_domains(egress_domains(obj, profile=profile))
        return plan.Snapshot(
            sandbox=obj,
            runtimes=runtimes,
            profile=profile,
            children=children,
            cilium_available=cilium,
            resolved=resolved,
        )

    # -- children ---------------------------------------------------------------------------

    async def _read_children(
        self, kube: client_module.Kube, *, obj: sandbox_model.Sandbox, cilium: bool
    ) -> plan.Children:
        try:
            owner = owner_module.owner_of(obj, settings=self._options)
        except merge.SpecConflict:
            # No valid child namespace: nothing can have been created (the planner reports it).
            return plan.Children()
        ns = owner.child_namespace
        base = names.pod_name(owner.name)  # pod, Service and ServiceAccount share it
        persistent = bool(obj.spec.storage and obj.spec.storage.persistent)
        selector = f"{owner_module.SANDBOX_UID}={owner.uid}"

        async def namespace() -> dict[str, Any] | None:
            if not owner.is_cross_namespace:
                return None
            return await _get_or_none(
                kube, resource=objects.NAMESPACE, name=ns, decode=objects.as_dict
            )

        async def claim() -> dict[str, Any] | None:
            if not persistent:
                return None
            return await _get_or_none(
                kube,
                resource=objects.PERSISTENT_VOLUME_CLAIM,
                name=names.claim_name(owner.name),
                namespace=ns,
                decode=objects.as_dict,
            )

        async def policies(resource: objects.ApiResource) -> dict[str, dict[str, Any]]:
            try:
                found = await objects.list_objects(
                    kube, resource=resource, namespace=ns, label_selector=selector
                )
            except errors.NotFoundError:
                return {}  # the isolation namespace (or Cilium's CRD) is not there
            return {item["metadata"]["name"]: item for item in found.items}

        async def cilium_policies() -> dict[str, dict[str, Any]]:
            return await policies(CILIUM_NETWORK_POLICY) if cilium else {}

        def get(resource: objects.ApiResource) -> Awaitable[dict[str, Any] | None]:
            return _get_or_none(
                kube, resource=resource, name=base, namespace=ns, decode=objects.as_dict
            )

        (ns_obj, account, svc, pod, pvc), (network_policies, cilium_found) = await asyncio.gather(
            asyncio.gather(
                namespace(),
                get(objects.SERVICE_ACCOUNT),
                get(objects.SERVICE),
                _get_or_none(  # a warm start's pod has the WarmPod's pod name
                    kube,
                    resource=objects.POD,
                    name=warm_pod_name(obj) or base,
                    namespace=ns,
                    decode=objects.as_dict,
                ),
                claim(),
            ),
            asyncio.gather(policies(objects.NETWORK_POLICY), cilium_policies()),
        )
        return plan.Children(
            namespace=ns_obj,
            service_account=account,
            service=svc,
            claim=pvc,
            pod=pod,
            network_policies=network_policies,
            cilium_policies=cilium_found,
        )

    # -- resolution inputs ------------------------------------------------------------------

    async def _read_runtimes(
        self, kube: client_module.Kube
    ) -> tuple[runtime_model.RuntimeEnvironment, ...]:
        found = await objects.list_objects(
            kube, resource=objects.RUNTIME_ENVIRONMENT, decode=runtime_model.decode
        )
        return tuple(found.items)

    async def _read_profile(
        self, kube: client_module.Kube, *, obj: sandbox_model.Sandbox
    ) -> profile_model.SandboxProfile | None:
        try:
            key = resolve.profile_key(
                obj, shared_namespaces=self._options.shared_profile_namespaces
            )
        except resolve.ResolveError:
            return None  # a forbidden namespace is never read; the planner says why
        if key is None:
            return None
        namespace, name = key
        return await _get_or_none(
            kube,
            resource=objects.SANDBOX_PROFILE,
            name=name,
            namespace=namespace,
            decode=profile_model.decode,
        )

    # -- Cilium -----------------------------------------------------------------------------

    async def is_cilium_available(self) -> bool:
        """Whether the CiliumNetworkPolicy CRD exists (only asked in egress mode ``auto``)."""
        mode = self._options.egress_mode
        if mode is not settings_module.EgressMode.AUTO:
            return mode is settings_module.EgressMode.CILIUM
        now = self._clock.monotonic()
        if self._cilium is not None and now - self._cilium[1] < (
            self._reconcile.cilium_check_interval_seconds
        ):
            return self._cilium[0]
        found = (
            await _get_or_none(
                self._kube(),
                resource=CUSTOM_RESOURCE_DEFINITION,
                name=CILIUM_CRD_NAME,
                decode=objects.as_dict,
            )
            is not None
        )
        if self._cilium is None or self._cilium[0] != found:
            _log.info("cilium network policies detected", extra={"available": found})
        self._cilium = (found, now)
        return found

    # -- DNS --------------------------------------------------------------------------------

    async def resolve_domains(self, domains: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """Domain → addresses (possibly empty) for every domain, in parallel."""
        results = await asyncio.gather(*(self._resolve(domain) for domain in domains))
        return dict(zip(domains, results, strict=True))

    async def _resolve(self, domain: str) -> tuple[str, ...]:
        now = self._clock.monotonic()
        cached = self._resolved.get(domain)
        if cached is not None and now - cached[1] < self._reconcile.dns_cache_seconds:
            return cached[0]
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._reconcile.dns_timeout_seconds):
                infos = await loop.getaddrinfo(domain, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as error:
            _log.warning(
                "egress domain not resolved", extra={"domain": domain, "error": repr(error)}
            )
            # Not cached: the next pass tries again.
            return ()
        addresses = tuple(sorted({str(info[4][0]) for info in infos}))
        self._resolved[domain] = (addresses, now)
        return addresses


def egress_domains(
    obj: sandbox_model.Sandbox, *, profile: profile_model.SandboxProfile | None
) -> tuple[str, ...]:
    """Every domain the sandbox or its profile allows egress to (sorted, unique)."""
    found = {rule.domain for rule in (obj.spec.network_access or _NO_NETWORK).egress or ()}
    if profile is not None:
        for policy in profile.spec.network_policies or ():
            if policy.type == profile_model.Direction.EGRESS:
                found.update(rule.domain for rule in policy.rules or () if rule.domain)
    return tuple(sorted(found))


_NO_NETWORK: Final = sandbox_model.NetworkAccess()


def warm_pod_name(obj: sandbox_model.Sandbox) -> str | None:
    """The pod of a sandbox that started warm (``status.podName``); None for cold ones."""
    status = sandbox_model.status_of(obj)
    return status.pod_name if status.warm_pod_ref is not None else None


async def _get_or_none(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    name: str,
    namespace: str | None = None,
    decode: Callable[[bytes], T],
) -> T | None:
    """The object, or ``None`` when it does not exist."""
    try:
        return await objects.get_object(
            kube, resource=resource, name=name, namespace=namespace, decode=decode
        )
    except errors.NotFoundError:
        return None
