"""Plan one reconcile pass of a Sandbox: the child writes and the status to reach (pure).

``plan_sandbox(snapshot, now=..., settings=...)`` reads a frozen :class:`Snapshot` (the
Sandbox, the RuntimeEnvironment candidates, its profile and its children as observed) and
returns a :class:`Plan`: idempotent actions in the order they must run, the complete status
the Sandbox should have afterwards, and when to look again. The handler applies the actions,
writes the status with the resourceVersion it read (only if it changed), and requeues.

Ordering: the finalizer first (no child may exist that the finalizer does not guard); then
namespace, ServiceAccount, policies (default deny before anything can run), Service, claim,
pod. Deletion runs the other way: the pod (with the Services that route to it) first, and
the policies, ServiceAccount, claim and namespace only once the pod is gone — a terminating
pod still runs for its grace period and stays behind its default-deny policy until it is
gone. The finalizer goes only once every child that is not retained is gone (DESIGN §3.6):
observed gone, or deleted at once by the same pass (the API server's answer to the delete
says so; a delete that is only pending keeps the finalizer). A failed delete leaves it in
place.

A child is *ours* only if it carries the sandbox's UID label (or, without one, a controller
reference to the Sandbox: a warm pod's re-owned Service); an object with our name that is not
ours is never adopted, replaced or deleted (``NameConflict``).

No I/O: ``now`` and the settings are arguments.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from lss_common.logic import conditions as conditions_logic
from lss_common.logic import finalizers
from lss_common.models import kinds, labels, meta
from lss_common.models import profile as profile_model
from lss_common.models import runtime as runtime_model
from lss_common.models import sandbox as sandbox_model
from lss_sandbox_reconciler import lifecycle, merge, names, resolve, shared_volumes
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import account, namespace, network, pod, service, volume
from lss_sandbox_reconciler.render import owner as owner_module

Phase = sandbox_model.Phase
ConditionType = lifecycle.ConditionType
Reason = lifecycle.Reason
Object = dict[str, Any]


class Kind(enum.StrEnum):
    """Kinds of child the plan writes (the handler maps each to an API resource)."""

    NAMESPACE = "Namespace"
    SERVICE_ACCOUNT = "ServiceAccount"
    NETWORK_POLICY = "NetworkPolicy"
    CILIUM_NETWORK_POLICY = "CiliumNetworkPolicy"
    SERVICE = "Service"
    PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"
    POD = "Pod"


class Verb(enum.StrEnum):
    """What an action does; each is idempotent."""

    ADD_FINALIZER = "add-finalizer"
    CREATE = "create"
    """Create if absent (AlreadyExists is success: the next pass observes it)."""
    REPLACE = "replace"
    """Replace with the observed resourceVersion (409: re-observe and re-plan)."""
    DELETE = "delete"
    """Delete with the observed UID as precondition (404 is success)."""
    REMOVE_FINALIZER = "remove-finalizer"
    """Remove our finalizer from the Sandbox — only if every DELETE of the same plan found
    its child gone at once (a pending one keeps it: the child is not gone yet)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """One write. Finalizer actions target the Sandbox itself (kind and name unused)."""

    verb: Verb
    kind: Kind | None = None
    namespace: str | None = None
    name: str | None = None
    body: Object | None = None
    uid: str | None = None
    resource_version: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Children:
    """The sandbox's children as observed (the API server's JSON), None when absent.

    Policies are those labelled with the sandbox's UID, by name.
    """

    namespace: Object | None = None
    service_account: Object | None = None
    service: Object | None = None
    claim: Object | None = None
    pod: Object | None = None
    network_policies: Mapping[str, Object] = dataclasses.field(default_factory=dict)
    cilium_policies: Mapping[str, Object] = dataclasses.field(default_factory=dict)
    warm_service: Object | None = None
    """The Service prepared with the warm pod the sandbox runs on (``warm-<pod>``), when
    the sandbox started warm."""
    foreign_policies: frozenset[str] = frozenset()
    """Names of policies found under the sandbox's policy names that are not its own (another
    sandbox's UID label, or none): creating ours would meet AlreadyExists and leave the pod
    with no policy at all."""
    other_pods: tuple[Object, ...] = ()
    """Pods of the sandbox's besides ``pod``, read on passes that release it: a cold pod
    beside the warm one it runs on, a stray claim's pod it adopted. Released like its pod
    (deleted first, everything else waits until they are gone)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one pass decides from, read by the handler just before planning."""

    sandbox: sandbox_model.Sandbox
    runtimes: tuple[runtime_model.RuntimeEnvironment, ...]
    """RuntimeEnvironment candidates (all, or those of the sandbox's language)."""
    profile: profile_model.SandboxProfile | None
    """The profile at ``resolve.profile_key`` (None: no profileRef, or not found)."""
    children: Children
    cilium_available: bool = False
    resolved: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """Egress domain → resolved addresses (ipblock mode)."""
    cold_pod: Object | None = None
    """For a sandbox that started warm: the pod at the cold pod's name, when ``cold_pod_read``
    (observe read it anyway; ``warm.remove_stray_cold_pod`` uses it). The planner ignores it."""
    cold_pod_read: bool = False
    shared_claims: Mapping[str, Object | None] = dataclasses.field(default_factory=dict)
    """Claim name → the shared volume's claim as read (None: not found); read only while the
    sandbox has no pod (``shared_volumes.check`` runs before one is created)."""
    children_assumed_absent: bool = False
    """The children were not read: the hint announced the Sandbox's creation and the Sandbox
    read is new (no finalizer, no phase past Pending), so none can exist — a child is created
    only with or after the finalizer. The apply treats AlreadyExists as a conflict then (the
    next pass reads everything)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of planning."""

    actions: tuple[Action, ...]
    status: sandbox_model.SandboxStatus
    status_changed: bool
    requeue_after_seconds: float | None


_STATUS_ENCODER: Final = msgspec.json.Encoder()


def plan_sandbox(
    snapshot: Snapshot, *, now: datetime.datetime, settings: settings_module.SandboxOptions
) -> Plan:
    """Plan one pass for ``snapshot.sandbox`` (see the module docstring)."""
    obj = snapshot.sandbox
    current = sandbox_model.status_of(obj)
    draft = _Draft(current=current, generation=obj.metadata.generation, now=now)
    try:
        owner = owner_module.owner_of(obj, settings=settings)
    except merge.SpecConflict as error:
        owner = None
        naming_error: merge.SpecConflict | None = error
    else:
        naming_error = None
    if obj.metadata.deletion_timestamp:
        return _plan_deletion(snapshot, draft=draft, owner=owner, settings=settings)
    draft.has_finalizer = finalizers.has_finalizer(
        obj.metadata.finalizers, finalizer=kinds.FINALIZER
    )
    if owner is None:
        assert naming_error is not None
        draft.fail(ConditionType.READY, reason=naming_error.reason, message=str(naming_error))
        return draft.finish()
    if lifecycle.is_terminal(current.phase):
        return _plan_release(snapshot, draft=draft, owner=owner, settings=settings)
    try:
        effective = _resolve_and_merge(snapshot, draft=draft, settings=settings)
    except resolve.ResolveError as error:
        if _is_started(snapshot):
            return _plan_unresolved(
                snapshot, draft=draft, owner=owner, error=error, settings=settings
            )
        draft.fail(error.condition_type, reason=error.reason, message=str(error))
        return _plan_release(snapshot, draft=draft, owner=owner, settings=settings)
    except merge.SpecConflict as error:
        draft.fail(_condition_for_field(error.field), reason=error.reason, message=str(error))
        return _plan_release(snapshot, draft=draft, owner=owner, settings=settings)
    if effective.shared_volumes and snapshot.children.pod is None:
        # Before a pod would mount them; a running pod keeps what it was allowed to mount.
        try:
            shared_volumes.check(
                effective, claims=snapshot.shared_claims, isolated=owner.is_cross_namespace
            )
        except merge.SpecConflict as error:
            draft.fail(ConditionType.READY, reason=error.reason, message=str(error))
            return _plan_release(snapshot, draft=draft, owner=owner, settings=settings)
    left = lifecycle.seconds_until_expiry(
        current.start_time, timeout_seconds=effective.timeout_seconds, now=now
    )
    if left is not None and left <= 0:
        return _plan_expiry(
            snapshot, draft=draft, owner=owner, timeout=effective.timeout_seconds, settings=settings
        )
    return _plan_running(snapshot, draft=draft, owner=owner, spec=effective, settings=settings)


def _plan_expiry(
    snapshot: Snapshot,
    *,
    draft: _Draft,
    owner: owner_module.Owner,
    timeout: int,
    settings: settings_module.SandboxOptions,
) -> Plan:
    """The lifetime is over: Terminated (Expired), and its children released."""
    draft.phase = Phase.TERMINATED
    draft.set(
        ConditionType.READY,
        status=conditions_logic.FALSE,
        reason=Reason.EXPIRED,
        message=f"the lifetime of {timeout} s is over",
    )
    return _plan_release(snapshot, draft=draft, owner=owner, settings=settings)


# -- the status under construction ----------------------------------------------------------


class _Draft:
    """Mutable scratch state of one planning call; frozen into a Plan by ``finish``."""

    def __init__(
        self,
        *,
        current: sandbox_model.SandboxStatus,
        generation: int | None,
        now: datetime.datetime,
    ) -> None:
        self.current = current
        self.generation = generation
        self.now = now
        self.actions: list[Action] = []
        self.conditions: list[meta.Condition] = list(current.conditions or ())
        self.phase: str = current.phase or Phase.PENDING
        self.pod_name = current.pod_name
        self.pod_namespace = current.pod_namespace
        self.endpoint = current.endpoint
        self.start_time = current.start_time
        self.requeue: list[float] = []
        self.has_finalizer = True
        self.needs_finalizer = False

    def set(self, condition_type: str, *, status: str, reason: str, message: str) -> None:
        self.conditions = conditions_logic.set_condition(
            self.conditions,
            condition_type=condition_type,
            status=status,
            reason=reason,
            message=message,
            now=self.now,
            observed_generation=self.generation,
        )

    def fail(self, condition_type: str, *, reason: str, message: str) -> None:
        self.phase = Phase.FAILED
        self.set(condition_type, status=conditions_logic.FALSE, reason=reason, message=message)
        if condition_type != ConditionType.READY:
            self.set(
                ConditionType.READY, status=conditions_logic.FALSE, reason=reason, message=message
            )

    def requeue_after(self, seconds: float | None) -> None:
        if seconds is not None:
            self.requeue.append(max(seconds, 0.0))

    def finish(self) -> Plan:
        actions = self.actions
        if not self.has_finalizer and (
            self.needs_finalizer or any(a.verb is Verb.CREATE for a in actions)
        ):
            # Only a sandbox that gets children needs the finalizer; a sandbox that fails
            # before creating any costs no write for it. A running sandbox always needs it,
            # even when its children exist already (the apply may write the finalizer and the
            # children concurrently, and that patch can meet a 409).
            actions = [Action(Verb.ADD_FINALIZER), *actions]
        status = msgspec.structs.replace(
            self.current,
            phase=str(self.phase),
            observed_generation=self.generation,
            conditions=self.conditions or None,
            pod_name=self.pod_name,
            pod_namespace=self.pod_namespace,
            endpoint=self.endpoint,
            start_time=self.start_time,
        )
        changed = _STATUS_ENCODER.encode(status) != _STATUS_ENCODER.encode(self.current)
        return Plan(
            actions=tuple(actions),
            status=status,
            status_changed=changed,
            requeue_after_seconds=min(self.requeue) if self.requeue else None,
        )


def _is_started(snapshot: Snapshot) -> bool:
    """Whether the sandbox runs (or is starting) on a pod of its own already."""
    phase = sandbox_model.status_of(snapshot.sandbox).phase
    return phase in (Phase.RUNNING, Phase.CREATING) and snapshot.children.pod is not None


def _plan_unresolved(
    snapshot: Snapshot,
    *,
    draft: _Draft,
    owner: owner_module.Owner,
    error: resolve.ResolveError,
    settings: settings_module.SandboxOptions,
) -> Plan:
    """A started sandbox whose runtime or profile cannot be resolved any more: deleted and
    re-created by an operator (a GitOps re-sync), marked unavailable, joined by a second one
    of its version. What it runs was resolved when it started: it keeps its pod and children
    as they are and says why it is not reconciled (the condition), and its lifetime still
    ends it. Failing it (as a new sandbox of that spec fails) killed every running sandbox
    of a runtime for an operator's routine change."""
    obj = snapshot.sandbox
    timeout = (
        obj.spec.timeout if obj.spec.timeout is not None else sandbox_model.DEFAULT_TIMEOUT_SECONDS
    )
    left = lifecycle.seconds_until_expiry(
        draft.current.start_time, timeout_seconds=timeout, now=draft.now
    )
    if left is not None and left <= 0:
        return _plan_expiry(snapshot, draft=draft, owner=owner, timeout=timeout, settings=settings)
    draft.set(
        error.condition_type,
        status=conditions_logic.FALSE,
        reason=error.reason,
        message=f"{error}; the sandbox keeps running as it started (new sandboxes of this "
        "spec fail until it is fixed)",
    )
    draft.requeue_after(left)
    return draft.finish()


def _condition_for_field(field: str) -> str:
    if field.startswith("spec.profileRef"):
        return ConditionType.PROFILE_RESOLVED
    if field.startswith("spec.runtime"):
        return ConditionType.RUNTIME_RESOLVED
    return ConditionType.READY


# -- resolution -----------------------------------------------------------------------------


def _resolve_and_merge(
    snapshot: Snapshot, *, draft: _Draft, settings: settings_module.SandboxOptions
) -> merge.EffectiveSpec:
    obj = snapshot.sandbox
    runtime = resolve.select_runtime(obj.spec.runtime, candidates=snapshot.runtimes)
    draft.set(
        ConditionType.RUNTIME_RESOLVED,
        status=conditions_logic.TRUE,
        reason=Reason.RESOLVED,
        message=f"RuntimeEnvironment {runtime.metadata.name}",
    )
    key = resolve.profile_key(obj, shared_namespaces=settings.shared_profile_namespaces)
    found: profile_model.SandboxProfile | None = None
    if key is not None:
        found = resolve.check_profile(snapshot.profile, key=key)
        draft.set(
            ConditionType.PROFILE_RESOLVED,
            status=conditions_logic.TRUE,
            reason=Reason.RESOLVED,
            message=f"SandboxProfile {key[0]}/{key[1]}",
        )
    # A pod that exists was admitted with its seccomp profile: it is not judged again.
    return merge.merge_spec(
        obj,
        profile=found,
        runtime=runtime,
        settings=settings,
        started=snapshot.children.pod is not None,
    )


# -- desired children -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Desired:
    kind: Kind
    body: Object
    observed: Object | None


def _name_of(obj: Object) -> str:
    return str(obj["metadata"]["name"])


def _warm_pod_uid(pod: Object | None) -> str | None:
    found = ((pod or {}).get("metadata") or {}).get("labels") or {}
    value = found.get(labels.WARM_POD_UID)
    return str(value) if value else None


def _is_deleting(obj: Object) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_policy_outdated(observed: Object, desired: Object) -> bool:
    """Whether the policy differs from ours: its spec, or a label or annotation of ours.
    Labels and annotations others added (a mutating webhook, a policy engine) are theirs:
    compared for equality, they made the policy look outdated on every pass."""
    observed_meta = observed.get("metadata") or {}
    desired_meta = desired["metadata"]
    return bool(
        observed.get("spec") != desired["spec"]
        or not _includes(observed_meta.get("labels"), desired_meta.get("labels"))
        or not _includes(observed_meta.get("annotations"), desired_meta.get("annotations"))
    )


def _includes(found: Mapping[str, str] | None, ours: Mapping[str, str] | None) -> bool:
    found = found or {}
    return all(found.get(key) == value for key, value in (ours or {}).items())


def policy_replacement(observed: Object, desired: Object) -> Object:
    """The body that replaces ``observed`` with ``desired``: ours for the spec, our labels,
    annotations and owner, keeping what others added to the metadata — their labels and
    annotations, and their finalizers (a CNI's, which a full PUT of ours would have
    dropped)."""
    observed_meta = observed.get("metadata") or {}
    desired_meta = desired["metadata"]
    metadata = {
        **desired_meta,
        "labels": {**(observed_meta.get("labels") or {}), **desired_meta.get("labels", {})},
        "annotations": {
            **(observed_meta.get("annotations") or {}),
            **desired_meta.get("annotations", {}),
        },
    }
    if observed_meta.get("finalizers"):
        metadata["finalizers"] = list(observed_meta["finalizers"])
    return {**desired, "metadata": metadata}


def _plan_running(
    snapshot: Snapshot,
    *,
    draft: _Draft,
    owner: owner_module.Owner,
    spec: merge.EffectiveSpec,
    settings: settings_module.SandboxOptions,
) -> Plan:
    children = snapshot.children
    mode = network.choose_egress_mode(settings, cilium_available=snapshot.cilium_available)
    policies = network.render_policies(
        spec, owner=owner, settings=settings, egress_mode=mode, resolved=snapshot.resolved
    )
    ns_name = owner.child_namespace
    # Policies sit between these two groups: the pod never runs without its default deny.
    first: list[_Desired] = []
    ns_body = namespace.render_namespace(owner)
    if ns_body is not None:
        first.append(_Desired(Kind.NAMESPACE, ns_body, children.namespace))
    # A warm pod runs as its pool's ServiceAccount (a pod's account is immutable): an
    # account of the sandbox's own would be an object nothing uses, so a sandbox served by a
    # warm pod gets none. One is created whenever the pod to create is the sandbox's own.
    serving_warm = children.pod is not None and _name_of(children.pod) != names.pod_name(owner.name)
    if not serving_warm:
        first.append(
            _Desired(
                Kind.SERVICE_ACCOUNT,
                account.render_service_account(owner),
                children.service_account,
            )
        )
    # A warm pod keeps the Service it was prepared with (adopted with the pod, selecting the
    # pod's WarmPod-UID label); a pod adopted before pods carried that label, and a cold
    # pod, are served by the sandbox's own Service.
    warm_pod_uid = _warm_pod_uid(children.pod) if serving_warm else None
    if warm_pod_uid is not None:
        assert children.pod is not None
        service_body = service.render_warm_service(
            owner, pod_name=_name_of(children.pod), warm_pod_uid=warm_pod_uid
        )
        served_by: Object | None = children.warm_service
    else:
        service_body = service.render_service(owner)
        served_by = children.service
    last = [_Desired(Kind.SERVICE, service_body, served_by)]
    claim = volume.render_claim(spec, owner=owner, settings=settings)
    if claim is not None:
        last.append(_Desired(Kind.PERSISTENT_VOLUME_CLAIM, claim, children.claim))
    last.append(
        _Desired(Kind.POD, pod.render_pod(spec, owner=owner, settings=settings), children.pod)
    )

    taken = sorted(
        children.foreign_policies & {*policies.network_policies, *policies.cilium_policies}
    )
    if taken:
        draft.fail(
            ConditionType.READY,
            reason=Reason.NAME_CONFLICT,
            message=f"NetworkPolicy {taken[0]} exists and belongs to another sandbox (or to no "
            "sandbox); delete it or rename this sandbox",
        )
        return _plan_release(snapshot, draft=draft, owner=owner, settings=settings)
    for desired in (*first, *last):
        if desired.observed is not None and not owner_module.is_owned_by(
            desired.observed, owner=owner
        ):
            draft.fail(
                ConditionType.READY,
                reason=Reason.NAME_CONFLICT,
                message=f"{desired.kind} {_name_of(desired.body)} exists and belongs to "
                "another sandbox; delete it or rename this sandbox",
            )
            return _plan_release(snapshot, draft=draft, owner=owner, settings=settings)
    verdict = lifecycle.classify_pod(
        children.pod,
        now=draft.now,
        unschedulable_deadline_seconds=settings.unschedulable_deadline_seconds,
    )
    if verdict.state is lifecycle.PodState.FAILED:
        _apply_verdict(draft, verdict=verdict, spec=spec)
        return _plan_release(snapshot, draft=draft, owner=owner, settings=settings)

    if children.namespace is not None and _is_deleting(children.namespace):
        # The isolation namespace is being deleted (by hand: ours goes only with the
        # sandbox). The API server refuses every create in it (403), which would read as a
        # refused write and leave the sandbox unattended; so write nothing in it and look
        # again until it is gone, then the next pass re-creates it and everything in it.
        waiting = True
    else:
        waiting = _sync_children(
            first, last, policies=policies, children=children, namespace=ns_name, into=draft.actions
        )
    if waiting:
        draft.requeue_after(settings.deletion_poll_seconds)
    _drop_unused_warm_service(children, serving=served_by, owner=owner, into=draft.actions)

    # A warm start's pod keeps the name it was created under (status.podName, warmPodRef).
    draft.pod_name = (
        _name_of(children.pod) if children.pod is not None else names.pod_name(owner.name)
    )
    draft.pod_namespace = ns_name
    draft.endpoint = service.service_endpoint(
        _name_of(service_body), namespace=ns_name, cluster_domain=settings.cluster_domain
    )
    if policies.unresolved_domains:
        draft.set(
            ConditionType.NETWORK_READY,
            status=conditions_logic.FALSE,
            reason=Reason.EGRESS_UNRESOLVED,
            message="no usable address yet for "
            + ", ".join(policies.unresolved_domains)
            + "; egress to them stays denied",
        )
    else:
        draft.set(
            ConditionType.NETWORK_READY,
            status=conditions_logic.TRUE,
            reason=Reason.POLICIES_APPLIED,
            message=f"default deny (DNS and API allowed) plus "
            f"{len(policies.network_policies) - 1} more allowance(s) ({mode.value} egress)",
        )
    if mode is settings_module.EgressMode.IPBLOCK and spec.egress_domains:
        draft.requeue_after(settings.egress_refresh_interval_seconds)

    _apply_verdict(draft, verdict=verdict, spec=spec)
    draft.needs_finalizer = True
    return draft.finish()


def _drop_unused_warm_service(
    children: Children,
    *,
    serving: Object | None,
    owner: owner_module.Owner,
    into: list[Action],
) -> None:
    """Delete the Service prepared with a warm pod once it no longer serves the sandbox.

    Its warm pod is gone (deleted by hand, evicted) and a pod of the sandbox's own replaces
    it: the Service selects only the gone pod's WarmPod-UID label, so it would route
    nowhere until the sandbox is deleted. It is read only while ``status.podName`` names the
    warm pod, so it goes in the pass that moves the sandbox to its own pod; should that
    delete fail, the garbage collector still removes it with the sandbox (it is ours).
    """
    found = children.warm_service
    if (
        found is None
        or found is serving
        or _is_deleting(found)
        or not owner_module.is_owned_by(found, owner=owner)
    ):
        return
    metadata = found.get("metadata") or {}
    into.append(
        Action(
            Verb.DELETE,
            kind=Kind.SERVICE,
            namespace=metadata.get("namespace"),
            name=metadata.get("name"),
            uid=metadata.get("uid"),
        )
    )


def _sync_children(
    first: list[_Desired],
    last: list[_Desired],
    *,
    policies: network.Policies,
    children: Children,
    namespace: str,
    into: list[Action],
) -> bool:
    """Create ``first``, sync the policies, create ``last``; True when a child is being
    deleted (wait, then re-create it)."""
    waiting = False
    for desired in first:
        waiting |= _ensure(desired, namespace=namespace, into=into)
    _sync_policies(
        Kind.NETWORK_POLICY,
        desired=policies.network_policies,
        observed=children.network_policies,
        namespace=namespace,
        into=into,
    )
    _sync_policies(
        Kind.CILIUM_NETWORK_POLICY,
        desired=policies.cilium_policies,
        observed=children.cilium_policies,
        namespace=namespace,
        into=into,
    )
    for desired in last:
        waiting |= _ensure(desired, namespace=namespace, into=into)
    return waiting


def _ensure(desired: _Desired, *, namespace: str, into: list[Action]) -> bool:
    """Create the child if absent; True when it is being deleted (wait, then re-create)."""
    if desired.observed is None:
        into.append(
            Action(
                Verb.CREATE,
                kind=desired.kind,
                namespace=None if desired.kind is Kind.NAMESPACE else namespace,
                name=_name_of(desired.body),
                body=desired.body,
            )
        )
        return False
    return _is_deleting(desired.observed)


def _sync_policies(
    kind: Kind,
    *,
    desired: Mapping[str, Object],
    observed: Mapping[str, Object],
    namespace: str,
    into: list[Action],
) -> None:
    for name, body in desired.items():
        found = observed.get(name)
        if found is None:
            into.append(Action(Verb.CREATE, kind=kind, namespace=namespace, name=name, body=body))
        elif not _is_deleting(found) and is_policy_outdated(found, body):
            into.append(
                Action(
                    Verb.REPLACE,
                    kind=kind,
                    namespace=namespace,
                    name=name,
                    body=policy_replacement(found, body),
                    resource_version=(found.get("metadata") or {}).get("resourceVersion"),
                )
            )
    for name, found in observed.items():
        if name not in desired and not _is_deleting(found):
            into.append(
                Action(
                    Verb.DELETE,
                    kind=kind,
                    namespace=namespace,
                    name=name,
                    uid=(found.get("metadata") or {}).get("uid"),
                )
            )


def _apply_verdict(
    draft: _Draft, *, verdict: lifecycle.PodVerdict, spec: merge.EffectiveSpec
) -> None:
    draft.requeue_after(verdict.recheck_after_seconds)
    if verdict.state is lifecycle.PodState.FAILED:
        if verdict.reason == Reason.UNSCHEDULABLE:
            draft.set(
                ConditionType.POD_SCHEDULED,
                status=conditions_logic.FALSE,
                reason=Reason.UNSCHEDULABLE,
                message=verdict.message,
            )
        draft.fail(ConditionType.READY, reason=verdict.reason, message=verdict.message)
        return
    if verdict.scheduled:
        draft.set(
            ConditionType.POD_SCHEDULED,
            status=conditions_logic.TRUE,
            reason=Reason.SCHEDULED,
            message="the pod is bound to a node",
        )
    elif verdict.state is lifecycle.PodState.UNSCHEDULABLE:
        draft.set(
            ConditionType.POD_SCHEDULED,
            status=conditions_logic.FALSE,
            reason=Reason.UNSCHEDULABLE,
            message=verdict.message,
        )
    else:
        draft.set(
            ConditionType.POD_SCHEDULED,
            status=conditions_logic.UNKNOWN,
            reason=Reason.POD_PENDING,
            message="the pod is not scheduled yet",
        )
    if verdict.state is lifecycle.PodState.READY:
        draft.phase = Phase.RUNNING
        if not draft.start_time:
            draft.start_time = meta.format_timestamp(draft.now)
        draft.set(
            ConditionType.READY,
            status=conditions_logic.TRUE,
            reason=Reason.POD_READY,
            message=verdict.message,
        )
        left = lifecycle.seconds_until_expiry(
            draft.start_time, timeout_seconds=spec.timeout_seconds, now=draft.now
        )
        draft.requeue_after(left)
        return
    # Once Running, a sandbox stays Running while its pod exists (Ready tells the rest);
    # a pod deleted by hand is re-created and the sandbox shows Creating until it is back.
    if draft.phase != Phase.RUNNING or verdict.state in (
        lifecycle.PodState.MISSING,
        lifecycle.PodState.DELETING,
    ):
        draft.phase = Phase.CREATING
    draft.set(
        ConditionType.READY,
        status=conditions_logic.FALSE,
        reason=verdict.reason,
        message=verdict.message,
    )
    if draft.start_time:
        left = lifecycle.seconds_until_expiry(
            draft.start_time, timeout_seconds=spec.timeout_seconds, now=draft.now
        )
        draft.requeue_after(left)


# -- release and deletion -------------------------------------------------------------------


def _owned_children(
    children: Children, *, owner: owner_module.Owner | None, retain_claim: bool
) -> list[tuple[Kind, Object]]:
    """Observed children of ours in deletion order (pod first, namespace last)."""
    found: list[tuple[Kind, Object | None]] = [
        (Kind.POD, children.pod),
        *((Kind.POD, p) for p in children.other_pods),
        (Kind.SERVICE, children.service),
        (Kind.SERVICE, children.warm_service),
        *((Kind.CILIUM_NETWORK_POLICY, p) for p in children.cilium_policies.values()),
        *((Kind.NETWORK_POLICY, p) for p in children.network_policies.values()),
        (Kind.SERVICE_ACCOUNT, children.service_account),
        (Kind.PERSISTENT_VOLUME_CLAIM, None if retain_claim else children.claim),
    ]
    result = [
        (kind, obj)
        for kind, obj in found
        if obj is not None and owner is not None and owner_module.is_owned_by(obj, owner=owner)
    ]
    retained_inside = retain_claim and children.claim is not None
    if (
        children.namespace is not None
        and owner is not None
        and owner_module.is_owned_by(children.namespace, owner=owner)
        and not retained_inside
    ):
        result.append((Kind.NAMESPACE, children.namespace))
    return result


_WITH_THE_POD: Final = frozenset({Kind.POD, Kind.SERVICE})
"""Released first: the pod, and the Services that only route to it."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Release:
    actions: list[Action]
    remaining: bool
    """Whether any owned, non-retained child still exists."""
    completes: bool
    """Whether ``actions`` delete every remaining child, none of them a pod: once they are
    all gone at once, nothing of the sandbox's remains."""
    pod_remains: bool
    """Whether the sandbox's pod still exists (possibly terminating)."""


def _release(
    children: Children,
    *,
    owner: owner_module.Owner | None,
    settings: settings_module.SandboxOptions,
) -> _Release:
    """Deletes of the owned, non-retained children that may go now (see the module
    docstring: the pod and its Services first, the rest once the pod is gone)."""
    retain = settings.pvc_retention is settings_module.PvcRetention.RETAIN
    remaining = _owned_children(children, owner=owner, retain_claim=retain)
    pod_remains = any(kind is Kind.POD for kind, _ in remaining)
    actions: list[Action] = []
    waiting = pod_remains
    for kind, obj in remaining:
        if _is_deleting(obj):
            waiting = True
            continue
        if pod_remains and kind not in _WITH_THE_POD:
            continue
        metadata = obj.get("metadata") or {}
        actions.append(
            Action(
                Verb.DELETE,
                kind=kind,
                namespace=None if kind is Kind.NAMESPACE else metadata.get("namespace"),
                name=metadata.get("name"),
                uid=metadata.get("uid"),
            )
        )
    return _Release(
        actions=actions,
        remaining=bool(remaining),
        completes=not waiting,
        pod_remains=pod_remains,
    )


def _plan_release(
    snapshot: Snapshot,
    *,
    draft: _Draft,
    owner: owner_module.Owner | None,
    settings: settings_module.SandboxOptions,
) -> Plan:
    """Terminal phases: release every child, keep the object and its conditions."""
    release = _release(snapshot.children, owner=owner, settings=settings)
    draft.actions.extend(release.actions)
    failed_release = conditions_logic.find_condition(
        draft.conditions, condition_type=ConditionType.CHILDREN_RELEASED
    )
    if (
        failed_release is not None
        and failed_release.status == conditions_logic.FALSE
        and (not release.remaining or release.completes)
    ):
        # A delete that failed before has gone through since (or goes now).
        draft.set(
            ConditionType.CHILDREN_RELEASED,
            status=conditions_logic.TRUE,
            reason="Released",
            message="every child of the ended sandbox is released",
        )
    if not release.pod_remains:
        # Not before: a warm sandbox's pod is found by ``status.podName`` alone, and a pass
        # that did not see its terminating pod would release the policies that still
        # confine it.
        draft.pod_name = None
    draft.endpoint = None
    if release.remaining:
        draft.requeue_after(settings.deletion_poll_seconds)
    return draft.finish()


def _plan_deletion(
    snapshot: Snapshot,
    *,
    draft: _Draft,
    owner: owner_module.Owner | None,
    settings: settings_module.SandboxOptions,
) -> Plan:
    obj = snapshot.sandbox
    if not finalizers.has_finalizer(obj.metadata.finalizers, finalizer=kinds.FINALIZER):
        # Not ours to hold (any more): nothing to write, the object is going away.
        return Plan(
            actions=(), status=draft.current, status_changed=False, requeue_after_seconds=None
        )
    release = _release(snapshot.children, owner=owner, settings=settings)
    if not release.remaining:
        # Everything is gone: the finalizer goes, and a status write would only race the
        # object's disappearance.
        return Plan(
            actions=(Action(Verb.REMOVE_FINALIZER),),
            status=draft.current,
            status_changed=False,
            requeue_after_seconds=None,
        )
    if release.completes:
        # The last children go now; deleted at once (policies and accounts have no grace
        # period), the finalizer goes in the same pass. Should one be held (finalizers of
        # someone else's), the finalizer stays and the next pass, a hint or the requeue,
        # waits for it.
        return Plan(
            actions=(*release.actions, Action(Verb.REMOVE_FINALIZER)),
            status=draft.current,
            status_changed=False,
            requeue_after_seconds=settings.deletion_poll_seconds,
        )
    draft.actions.extend(release.actions)
    draft.phase = Phase.TERMINATING
    draft.endpoint = None
    draft.set(
        ConditionType.READY,
        status=conditions_logic.FALSE,
        reason=Reason.TERMINATING,
        message="deleting the sandbox's children",
    )
    draft.requeue_after(settings.deletion_poll_seconds)
    return draft.finish()
