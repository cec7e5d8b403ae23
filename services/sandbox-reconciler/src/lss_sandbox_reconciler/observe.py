"""Read one Sandbox and its world from the API server into a frozen ``plan.Snapshot``.

What is read, per pass (independent reads run concurrently):

- the Sandbox (a get; gone → ``None``, nothing to do);
- its children by their deterministic names: ServiceAccount, Service, pod (gets), the claim
  only when ``storage.persistent``, the isolation namespace only under namespace isolation,
  and every NetworkPolicy (and CiliumNetworkPolicy) name a sandbox can have (gets, kept
  only when labelled with the sandbox's UID). No consistent list on this path: such a list
  waits up to 100 ms for the API server's watch cache (see ``_policies_by_name``);
- unless the sandbox is being deleted or is terminal (then the planner only releases): the
  RuntimeEnvironments (selected by ``language``/``version``, not by name: a list of the
  watch cache as it is, confirmed by a consistent list only when the sandbox's runtime does
  not resolve in it) and the SandboxProfile (a get at ``resolve.profile_key``);
- whether Cilium's ``CiliumNetworkPolicy`` CRD exists (egress mode ``auto``), cached for
  ``cilium_check_interval_seconds``;
- in ipblock mode, the egress domains' addresses via the event loop's ``getaddrinfo``,
  cached for ``dns_cache_seconds``; a domain that fails or times out resolves to nothing,
  and the planner then writes no rule for it (fail closed).

Round trips: without namespace isolation the children live in the Sandbox's own namespace
under names derived from its name, so the Sandbox get, the ServiceAccount, Service, cold-pod
and policy gets (the policies filtered by the UID once the Sandbox is read: an earlier
namesake's are not ours) and the RuntimeEnvironment list go out together: **one round
trip** for a sandbox without profile, PVC or warm pod; a second one only for the profile,
the claim, or a warm start's pod (``status.podName``) and the Service prepared with it
(``names.warm_service_name``; the cold-pod read then serves ``warm.remove_stray_cold_pod``).
The reads are no snapshot either way (they never were: children were read after the
Sandbox, and may change after). Under namespace
isolation the Sandbox is read first (its UID names the namespace).

This module decides nothing and writes nothing: it is the handler's input stage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from lss_common import errors
from lss_common.kube import client as client_module
from lss_common.kube import objects
from lss_common.models import kinds
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

    async def observe(
        self,
        *,
        namespace: str,
        name: str,
        fresh: bool = False,
        not_older_than: str | None = None,
    ) -> plan.Snapshot | None:
        """The snapshot of the Sandbox ``namespace/name``; ``None`` when it does not exist.

        ``fresh``: the hint announced the Sandbox's creation. Its children are then not read
        if the Sandbox proves new (:func:`is_new`): none can exist, and a claim's first pass
        spends its API server time on writes instead of seven reads of nothing
        (``Snapshot.children_assumed_absent``).

        ``not_older_than``: the resourceVersion of the Sandbox's own hint. The Sandbox is then
        read from the API server's watch cache at that version or newer
        (``objects.get_object``); its children are read as always.
        """
        kube = self._kube()
        cilium = await self.is_cilium_available()
        if self._options.namespace_isolation:
            return await self._observe_after_get(
                kube,
                namespace=namespace,
                name=name,
                cilium=cilium,
                fresh=fresh,
                not_older_than=not_older_than,
            )
        # One round trip: without namespace isolation every child lives in the Sandbox's
        # namespace under a name derived from the Sandbox's name, so they are read together
        # with the Sandbox (policies filtered by UID once it is known) and with the
        # RuntimeEnvironments.
        get_sandbox = objects.get_or_none(
            kube,
            resource=objects.SANDBOX,
            name=name,
            namespace=namespace,
            not_older_than=not_older_than,
            decode=sandbox_model.decode,
        )
        assumed_absent = False
        if fresh:
            found, runtimes = await asyncio.gather(get_sandbox, self._read_runtimes(kube))
            if found is None:
                return None
            assumed_absent = is_new(found)
            early = (
                _ByName.absent(names.pod_name(name))
                if assumed_absent
                else await self._read_by_name(kube, namespace=namespace, name=name, cilium=cilium)
            )
        else:
            found, early, runtimes = await asyncio.gather(
                get_sandbox,
                self._read_by_name(kube, namespace=namespace, name=name, cilium=cilium),
                self._read_runtimes(kube),
            )
        if found is None:
            return None
        obj = found
        releasing = _releasing(obj)
        uid = obj.metadata.uid or ""
        warm_pod = warm_pod_name(obj)
        persistent = bool(obj.spec.storage and obj.spec.storage.persistent)

        async def pod() -> dict[str, Any] | None:
            if warm_pod is None or warm_pod == early.pod_name:
                return early.pod
            return await objects.get_or_none(
                kube,
                resource=objects.POD,
                name=warm_pod,
                namespace=namespace,
                decode=objects.as_dict,
            )

        async def claim() -> dict[str, Any] | None:
            if not persistent or assumed_absent:
                return None
            return await objects.get_or_none(
                kube,
                resource=objects.PERSISTENT_VOLUME_CLAIM,
                name=names.claim_name(name),
                namespace=namespace,
                decode=objects.as_dict,
            )

        async def profile() -> profile_model.SandboxProfile | None:
            return None if releasing else await self._read_profile(kube, obj=obj)

        async def confirmed_runtimes() -> tuple[runtime_model.RuntimeEnvironment, ...]:
            if releasing:
                return ()
            return await self._confirmed_runtimes(kube, obj=obj, cached=runtimes)

        async def warm_service() -> dict[str, Any] | None:
            if warm_pod is None or warm_pod == early.pod_name:
                return None
            return await objects.get_or_none(
                kube,
                resource=objects.SERVICE,
                name=names.warm_service_name(warm_pod),
                namespace=namespace,
                decode=objects.as_dict,
            )

        async def shared() -> dict[str, dict[str, Any] | None]:
            if releasing or early.pod is not None or warm_pod is not None:
                return {}
            return await self._read_shared_claims(kube, obj=obj, namespace=namespace)

        (
            pod_found,
            pvc,
            profile_found,
            runtimes_found,
            warm_svc,
            shared_found,
        ) = await asyncio.gather(
            pod(), claim(), profile(), confirmed_runtimes(), warm_service(), shared()
        )
        children = plan.Children(
            service_account=early.service_account,
            service=early.service,
            claim=pvc,
            pod=pod_found,
            network_policies=_with_uid(early.network_policies, uid),
            cilium_policies=_with_uid(early.cilium_policies, uid),
            warm_service=warm_svc,
            foreign_policies=_foreign(early.network_policies, uid)
            | _foreign(early.cilium_policies, uid),
        )
        warm_started = warm_pod is not None and warm_pod != early.pod_name
        if releasing:
            if warm_started and early.pod is not None:
                # A cold pod beside the warm one (two replicas raced): released with it.
                children = dataclasses.replace(children, other_pods=(early.pod,))
            return plan.Snapshot(
                sandbox=obj,
                runtimes=(),
                profile=None,
                children=children,
                cilium_available=cilium,
                cold_pod=early.pod if warm_started else None,
                cold_pod_read=warm_started,
            )
        return plan.Snapshot(
            sandbox=obj,
            runtimes=runtimes_found,
            profile=profile_found,
            children=children,
            cilium_available=cilium,
            resolved=await self._resolved_for(obj, profile=profile_found, cilium=cilium),
            cold_pod=early.pod if warm_started else None,
            cold_pod_read=warm_started,
            shared_claims=shared_found,
            children_assumed_absent=assumed_absent,
        )

    async def exists(self, *, namespace: str, name: str) -> bool:
        """Whether the Sandbox ``namespace/name`` exists (one get)."""
        found = await objects.get_or_none(
            self._kube(),
            resource=objects.SANDBOX,
            name=name,
            namespace=namespace,
            decode=objects.as_dict,
        )
        return found is not None

    async def _observe_after_get(
        self,
        kube: client_module.Kube,
        *,
        namespace: str,
        name: str,
        cilium: bool,
        fresh: bool = False,
        not_older_than: str | None = None,
    ) -> plan.Snapshot | None:
        """Namespace isolation: the Sandbox first, since its UID names the children's
        namespace."""
        try:
            obj = await objects.get_object(
                kube,
                resource=objects.SANDBOX,
                name=name,
                namespace=namespace,
                not_older_than=not_older_than,
                decode=sandbox_model.decode,
            )
        except errors.NotFoundError:
            return None
        assumed_absent = fresh and is_new(obj)
        children_task = (
            _no_children() if assumed_absent else self._read_children(kube, obj=obj, cilium=cilium)
        )
        if _releasing(obj):
            children = await children_task
            return plan.Snapshot(
                sandbox=obj, runtimes=(), profile=None, children=children, cilium_available=cilium
            )

        async def runtimes_for() -> tuple[runtime_model.RuntimeEnvironment, ...]:
            cached = await self._read_runtimes(kube)
            return await self._confirmed_runtimes(kube, obj=obj, cached=cached)

        children, runtimes, profile = await asyncio.gather(
            children_task, runtimes_for(), self._read_profile(kube, obj=obj)
        )
        return plan.Snapshot(
            sandbox=obj,
            runtimes=runtimes,
            profile=profile,
            children=children,
            cilium_available=cilium,
            resolved=await self._resolved_for(obj, profile=profile, cilium=cilium),
            # No shared claims read: a pod in an isolation namespace can mount none
            # (``shared_volumes.check`` says so).
            children_assumed_absent=assumed_absent,
        )

    async def _read_shared_claims(
        self, kube: client_module.Kube, *, obj: sandbox_model.Sandbox, namespace: str
    ) -> dict[str, dict[str, Any] | None]:
        """The claims the sandbox names as shared volumes, by name (None: not found)."""
        storage = obj.spec.storage
        wanted = sorted({v.claim_name for v in (storage.shared_volumes or ())} if storage else ())
        found = await asyncio.gather(
            *(
                objects.get_or_none(
                    kube,
                    resource=objects.PERSISTENT_VOLUME_CLAIM,
                    name=claim_name,
                    namespace=namespace,
                    decode=objects.as_dict,
                )
                for claim_name in wanted
            )
        )
        return dict(zip(wanted, found, strict=True))

    async def _resolved_for(
        self,
        obj: sandbox_model.Sandbox,
        *,
        profile: profile_model.SandboxProfile | None,
        cilium: bool,
    ) -> dict[str, tuple[str, ...]]:
        mode = network.choose_egress_mode(self._options, cilium_available=cilium)
        if mode is not settings_module.EgressMode.IPBLOCK:
            return {}
        return await self.resolve_domains(egress_domains(obj, profile=profile))

    async def _read_by_name(
        self, kube: client_module.Kube, *, namespace: str, name: str, cilium: bool
    ) -> _ByName:
        """The children a Sandbox ``namespace/name`` would have, before its UID is known."""
        base = names.pod_name(name)  # pod, Service and ServiceAccount share it

        def get(resource: objects.ApiResource) -> Awaitable[dict[str, Any] | None]:
            return objects.get_or_none(
                kube, resource=resource, name=base, namespace=namespace, decode=objects.as_dict
            )

        async def cilium_policies() -> dict[str, dict[str, Any]]:
            if not cilium:
                return {}
            return await _policies_by_name(
                kube, resource=CILIUM_NETWORK_POLICY, namespace=namespace, sandbox_name=name
            )

        account, svc, pod, network_policies, cilium_found = await asyncio.gather(
            get(objects.SERVICE_ACCOUNT),
            get(objects.SERVICE),
            get(objects.POD),
            _policies_by_name(
                kube, resource=objects.NETWORK_POLICY, namespace=namespace, sandbox_name=name
            ),
            cilium_policies(),
        )
        return _ByName(
            pod_name=base,
            service_account=account,
            service=svc,
            pod=pod,
            network_policies=network_policies,
            cilium_policies=cilium_found,
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

        async def namespace() -> dict[str, Any] | None:
            if not owner.is_cross_namespace:
                return None
            return await objects.get_or_none(
                kube, resource=objects.NAMESPACE, name=ns, decode=objects.as_dict
            )

        async def claim() -> dict[str, Any] | None:
            if not persistent:
                return None
            return await objects.get_or_none(
                kube,
                resource=objects.PERSISTENT_VOLUME_CLAIM,
                name=names.claim_name(owner.name),
                namespace=ns,
                decode=objects.as_dict,
            )

        async def policies(resource: objects.ApiResource) -> dict[str, dict[str, Any]]:
            found = await _policies_by_name(
                kube, resource=resource, namespace=ns, sandbox_name=owner.name
            )
            return _with_uid(found, owner.uid)

        async def cilium_policies() -> dict[str, dict[str, Any]]:
            return await policies(CILIUM_NETWORK_POLICY) if cilium else {}

        def get(resource: objects.ApiResource) -> Awaitable[dict[str, Any] | None]:
            return objects.get_or_none(
                kube, resource=resource, name=base, namespace=ns, decode=objects.as_dict
            )

        (ns_obj, account, svc, pod, pvc), (network_policies, cilium_found) = await asyncio.gather(
            asyncio.gather(
                namespace(),
                get(objects.SERVICE_ACCOUNT),
                get(objects.SERVICE),
                objects.get_or_none(  # a warm start's pod has the WarmPod's pod name
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
            kube,
            resource=objects.RUNTIME_ENVIRONMENT,
            any_version=True,
            decode=runtime_model.decode,
        )
        return tuple(found.items)

    async def _confirmed_runtimes(
        self,
        kube: client_module.Kube,
        *,
        obj: sandbox_model.Sandbox,
        cached: tuple[runtime_model.RuntimeEnvironment, ...],
    ) -> tuple[runtime_model.RuntimeEnvironment, ...]:
        """``cached`` when the sandbox's runtime resolves in it, else a consistent list.

        The watch cache may lag etcd by milliseconds: a RuntimeEnvironment created just
        before the Sandbox could be missing from it, and a sandbox must not fail on that.
        """
        try:
            resolve.select_runtime(obj.spec.runtime, candidates=cached)
        except resolve.ResolveError:
            found = await objects.list_objects(
                kube, resource=objects.RUNTIME_ENVIRONMENT, decode=runtime_model.decode
            )
            return tuple(found.items)
        return cached

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
        return await objects.get_or_none(
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
            await objects.get_or_none(
                self._kube(),
                resource=CUSTOM_RESOURCE_DEFINITION,
                name=CILIUM_CRD_NAME,
                decode=objects.as_dict,
            )
            is not None
        )
        if self._cilium is None or self._cilium[0] != found:
            _log.info("cilium network policy support checked", extra={"available": found})
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
                infos = await loop.getaddrinfo(_absolute(domain), None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, ValueError) as error:
            # ValueError: a name the resolver refuses to encode (a label over 63 characters
            # is UnicodeError); the merge refuses such names first, this keeps a pass alive.
            _log.warning(
                "egress domain not resolved", extra={"domain": domain, "error": repr(error)}
            )
            # Not cached: the next pass tries again.
            return ()
        addresses = tuple(sorted({str(info[4][0]) for info in infos}))
        self._forget_resolved_before(now - self._reconcile.dns_cache_seconds)
        self._resolved.pop(domain, None)  # re-inserted last: the dict stays in time order
        self._resolved[domain] = (addresses, now)
        return addresses

    def _forget_resolved_before(self, oldest: float) -> None:
        """Drop answers too old to be reused: the domains come from specs, and one no
        sandbox names any more would otherwise stay for the life of the process. The dict
        is in resolution order (an entry is re-inserted when resolved again)."""
        while self._resolved:
            domain, (_, resolved_at) = next(iter(self._resolved.items()))
            if resolved_at >= oldest:
                return
            del self._resolved[domain]


def _absolute(domain: str) -> str:
    """The name as a fully qualified one (a trailing dot): the reconciler's own DNS search
    list (``<ns>.svc.cluster.local``, ...) must not turn a public name into an internal one.
    An IP literal stays as it is."""
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        return domain if domain.endswith(".") else f"{domain}."
    return domain


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


@dataclasses.dataclass(frozen=True, slots=True)
class _ByName:
    """Children read by the Sandbox's name (see ``Observer.observe``)."""

    pod_name: str
    service_account: dict[str, Any] | None
    service: dict[str, Any] | None
    pod: dict[str, Any] | None
    network_policies: dict[str, dict[str, Any]]
    cilium_policies: dict[str, dict[str, Any]]

    @classmethod
    def absent(cls, pod_name: str) -> _ByName:
        """No child (a new Sandbox's, not read)."""
        return cls(
            pod_name=pod_name,
            service_account=None,
            service=None,
            pod=None,
            network_policies={},
            cilium_policies={},
        )


def is_new(obj: sandbox_model.Sandbox) -> bool:
    """A Sandbox no pass has given children yet: no finalizer (every child is created with
    or after it), not being deleted, no phase past Pending and no warm pod."""
    status = sandbox_model.status_of(obj)
    return (
        not obj.metadata.deletion_timestamp
        and kinds.FINALIZER not in (obj.metadata.finalizers or ())
        and status.phase in (None, "", sandbox_model.Phase.PENDING)
        and status.warm_pod_ref is None
        and not status.pod_name
    )


async def _no_children() -> plan.Children:
    return plan.Children()


POLICY_NAMES: Final[dict[str, tuple[names.Policy, ...]]] = {
    objects.NETWORK_POLICY.kind: (
        names.Policy.DENY,
        names.Policy.INGRESS,
        names.Policy.EGRESS,
    ),
    CILIUM_NETWORK_POLICY.kind: (names.Policy.FQDN,),
}
"""Every policy a sandbox can have, by kind: the reconciler only ever creates these names."""


async def _policies_by_name(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    namespace: str,
    sandbox_name: str,
) -> dict[str, dict[str, Any]]:
    """The sandbox's policies of one kind that exist, by name (not filtered by owner yet).

    Gets by name, never a list: since Kubernetes 1.31 a list without a resourceVersion is a
    consistent read served by the watch cache, which first waits until it has caught up with
    etcd's current revision. When the last write was to another resource the cache learns
    that revision only from etcd's progress notification, requested every 100 ms, so such a
    list took ≈ 95 ms here after any unrelated write, and every pass paid it. A get by name
    is read from etcd directly (≈ 2 ms), and the names are deterministic.
    """
    wanted = [
        names.policy_name(sandbox_name, policy=policy) for policy in POLICY_NAMES[resource.kind]
    ]

    found = await asyncio.gather(
        *(
            objects.get_or_none(
                kube, resource=resource, name=name, namespace=namespace, decode=objects.as_dict
            )
            for name in wanted
        )
    )
    return {name: item for name, item in zip(wanted, found, strict=True) if item is not None}


def _with_uid(found: dict[str, dict[str, Any]], uid: str) -> dict[str, dict[str, Any]]:
    """The policies labelled with the sandbox ``uid`` (an earlier namesake's are not ours)."""
    return {
        name: item
        for name, item in found.items()
        if ((item.get("metadata") or {}).get("labels") or {}).get(owner_module.SANDBOX_UID) == uid
    }


def _foreign(found: dict[str, dict[str, Any]], uid: str) -> frozenset[str]:
    """Names of the policies under the sandbox's policy names that are not its own: another
    sandbox's (a dotted or long name is hashed, and a plain name can equal the hash), an
    earlier namesake's, or nobody's of ours."""
    return frozenset(name for name in found if name not in _with_uid(found, uid))


def _releasing(obj: sandbox_model.Sandbox) -> bool:
    """Deleted or terminal: the planner only releases (no runtime, no profile needed)."""
    return bool(obj.metadata.deletion_timestamp) or lifecycle.is_terminal(
        sandbox_model.status_of(obj).phase
    )


def warm_pod_name(obj: sandbox_model.Sandbox) -> str | None:
    """The pod of a sandbox that started warm (``status.podName``); None for cold ones."""
    status = sandbox_model.status_of(obj)
    return status.pod_name if status.warm_pod_ref is not None else None
