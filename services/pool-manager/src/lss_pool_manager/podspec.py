"""The one door to the sandbox reconciler's pod-building code: warm pods are sandbox pods.

A warm pod must be exactly the pod a sandbox of the same runtime, security level, profile and
resources would get, so it is built by the same pure functions (``resolve``, ``merge``,
``render.pod``, the pod verdicts of ``lifecycle``), imported from ``lss_sandbox_reconciler``
here and nowhere else in this package. When those modules move to ``lss_common``, only the
imports below change.

What a warm pod lacks is a sandbox's identity. ``render.pod.render_pod`` names the pod after a
Sandbox and labels and owns it for one; :func:`render_warm_pod` renders it for a stand-in
owner and then replaces exactly the identity parts (name, labels, owner reference,
ServiceAccount). The rest of the manifest is untouched, which the unit tests check against
the pod the reconciler renders for a real stored Sandbox. The ideal shape is a ``render_pod``
that takes the identity (metadata and ServiceAccount) as arguments.

Pure: no I/O.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Collection, Mapping
from typing import Any, Final

from lss_common.logic import quantities
from lss_common.models import kinds, labels, parts
from lss_common.models import profile as profile_model
from lss_common.models import runtime as runtime_model
from lss_common.models import sandbox as sandbox_model
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import names
from lss_sandbox_reconciler import claim, lifecycle, merge, ready_queue, resolve
from lss_sandbox_reconciler import names as reconciler_names
from lss_sandbox_reconciler import settings as reconciler_settings
from lss_sandbox_reconciler.render import owner as owner_render
from lss_sandbox_reconciler.render import pod as pod_render
from lss_sandbox_reconciler.render import service as service_render

SandboxOptions = reconciler_settings.SandboxOptions
EffectiveSpec = merge.EffectiveSpec
PodState = lifecycle.PodState
PodVerdict = lifecycle.PodVerdict

#: The label every child of ours carries with what it is for (shared with sandbox children).
COMPONENT: Final = owner_render.COMPONENT
WARM_POD_COMPONENT: Final = "warmpod"
WARM_SERVICE_COMPONENT: Final = "warm-service"
POOL_COMPONENT: Final = "warmpool"
#: The UID of the WarmPool a WarmPod or warm pod belongs to: always fits a label value (a
#: pool name may not), and a re-created pool of the same name never selects old objects.
POOL_UID: Final = f"{kinds.GROUP}/warmpool-uid"
#: sha256 of the rendered pod spec without identity (see :func:`fingerprint`).
POD_SPEC_HASH: Final = ready_queue.POD_SPEC_HASH
#: The sandbox container every sandbox and warm pod runs (preload scripts exec into it).
CONTAINER: Final = pod_render.CONTAINER

# What the API server stores for a Sandbox that leaves these fields unset (schema defaults of
# deploy/crds/sandboxes.yaml): a warm pod is built for the sandbox that asks for nothing else.
_SANDBOX_SCHEMA_DEFAULTS: Final[dict[str, Any]] = {
    "timeout": sandbox_model.DEFAULT_TIMEOUT_SECONDS,
    "networkAccess": {"ingress": False},
    "filesystem": {"readOnlyRoot": True},
    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
}


def pool_as_sandbox(pool: warmpool_model.WarmPool) -> sandbox_model.Sandbox:
    """The stored Sandbox a warm pod of ``pool`` is built for (no identity of its own)."""
    spec = pool.spec
    resources = spec.resources or parts.ResourceLimits()
    body: dict[str, Any] = {
        **copy.deepcopy(_SANDBOX_SCHEMA_DEFAULTS),
        "runtime": spec.runtime,
        "securityLevel": spec.security_level or "standard",
    }
    limits = {
        key: value
        for key, value in (
            ("cpu", resources.cpu),
            ("memory", resources.memory),
            ("ephemeralStorage", resources.ephemeral_storage),
        )
        if value
    }
    if limits:
        body["resources"] = limits
    if spec.profile_ref is not None:
        body["profileRef"] = {"name": spec.profile_ref.name}
        if spec.profile_ref.namespace:
            body["profileRef"]["namespace"] = spec.profile_ref.namespace
    return sandbox_model.from_dict(
        {
            "apiVersion": kinds.API_VERSION,
            "kind": sandbox_model.KIND,
            "metadata": {
                "name": pool.metadata.name or "warmpool",
                "namespace": pool.metadata.namespace,
            },
            "spec": body,
        }
    )


def select_runtime(
    pool: warmpool_model.WarmPool, *, candidates: list[runtime_model.RuntimeEnvironment]
) -> runtime_model.RuntimeEnvironment:
    """The pool's RuntimeEnvironment, by the sandbox rule (``PermanentError`` otherwise)."""
    return resolve.select_runtime(pool.spec.runtime, candidates=candidates)


def profile_key(
    pool: warmpool_model.WarmPool, *, shared_namespaces: Collection[str]
) -> tuple[str, str] | None:
    """``(namespace, name)`` of the pool's profile, by the sandbox rule; None without one."""
    return resolve.profile_key(pool_as_sandbox(pool), shared_namespaces=shared_namespaces)


def check_profile(
    found: profile_model.SandboxProfile | None, *, key: tuple[str, str]
) -> profile_model.SandboxProfile:
    """The profile, or ``PermanentError`` when it is missing or rejected."""
    return resolve.check_profile(found, key=key)


def effective_spec(
    pool: warmpool_model.WarmPool,
    *,
    profile: profile_model.SandboxProfile | None,
    runtime: runtime_model.RuntimeEnvironment,
    settings: reconciler_settings.SandboxOptions,
) -> merge.EffectiveSpec:
    """What a sandbox like the pool's would be built from (``PermanentError`` on conflicts)."""
    return merge.merge_spec(
        pool_as_sandbox(pool), profile=profile, runtime=runtime, settings=settings
    )


def warm_pod_spec(
    pool: warmpool_model.WarmPool,
    *,
    spec: merge.EffectiveSpec,
    profile_key: tuple[str, str] | None,
) -> warmpod_model.WarmPodSpec:
    """The WarmPod's record of what its pod is built from (matched exactly by claims).

    Quantities are canonical (``"0.5"`` and ``"500m"`` are one value, recorded ``500m``).
    """
    return warmpod_model.WarmPodSpec(
        pool_ref=warmpod_model.PoolRef(
            name=pool.metadata.name or "", namespace=pool.metadata.namespace
        ),
        runtime=pool.spec.runtime,
        security_level=spec.security_level,
        resources=warmpod_model.WarmPodResources(
            cpu=quantities.format_cpu(quantities.cpu_millicores(spec.cpu_limit, field="cpu")),
            memory=quantities.format_memory(quantities.memory_bytes(spec.memory, field="memory")),
            ephemeral_storage=quantities.format_memory(spec.ephemeral_storage_bytes),
        ),
        profile_ref=(
            parts.ProfileRef(namespace=profile_key[0], name=profile_key[1])
            if profile_key is not None
            else None
        ),
    )


def _label_if_fits(value: str) -> str | None:
    return value if names.is_valid(value) else None


def warm_pod_labels(
    *, pool_name: str, pool_uid: str, warm_pod_name: str | None = None
) -> dict[str, str]:
    """Labels of a WarmPod (``warm_pod_name`` None) or of its pod."""
    result = {labels.APP: labels.APP_VALUE, POOL_UID: pool_uid}
    if warm_pod_name is None:
        result[COMPONENT] = WARM_POD_COMPONENT
        # Informational (the watcher maps a WarmPod to its pool by spec.poolRef).
        pool_label = _label_if_fits(pool_name)
        if pool_label:
            result[labels.WARM_POOL_NAME] = pool_label
        return result
    result[COMPONENT] = WARM_POD_COMPONENT
    # The watcher maps the pod to its WarmPod by the owner reference; the label also does
    # when it fits. No pool-name label on pods: pod changes wake the WarmPod, whose status
    # change then wakes the pool, instead of waking the pool twice.
    warm_pod_label = _label_if_fits(warm_pod_name)
    if warm_pod_label:
        result[labels.WARM_POD_NAME] = warm_pod_label
    return result


def owner_reference(*, kind: str, name: str, uid: str) -> dict[str, Any]:
    """A controller owner reference to one of our kinds (same namespace)."""
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
    }


def render_warm_pod(
    spec: merge.EffectiveSpec,
    *,
    warm_pod: warmpod_model.WarmPod,
    pool_uid: str,
    settings: reconciler_settings.SandboxOptions,
) -> dict[str, Any]:
    """The warm pod: the sandbox pod of ``spec`` with the WarmPod's identity instead."""
    meta = warm_pod.metadata
    if not meta.name or not meta.namespace or not meta.uid:
        raise ValueError("a stored WarmPod has a name, a namespace and a UID")
    stand_in = owner_render.Owner(
        name=meta.name, namespace=meta.namespace, uid=meta.uid, child_namespace=meta.namespace
    )
    pod = pod_render.render_pod(spec, owner=stand_in, settings=settings)
    pool_name = warm_pod.spec.pool_ref.name
    metadata: dict[str, Any] = {
        "name": names.pod_name(meta.name, uid=meta.uid),
        "namespace": meta.namespace,
        "labels": {
            **warm_pod_labels(pool_name=pool_name, pool_uid=pool_uid, warm_pod_name=meta.name),
            # Its Service selects it by this label, before and after a sandbox adopts it.
            labels.WARM_POD_UID: meta.uid,
        },
        "ownerReferences": [owner_reference(kind=warmpod_model.KIND, name=meta.name, uid=meta.uid)],
    }
    annotations = pod["metadata"].get("annotations")
    if annotations:
        metadata["annotations"] = dict(annotations)
    pod["metadata"] = metadata
    pod["spec"]["serviceAccountName"] = names.service_account_name(pool_name)
    return pod


def render_warm_service(warm_pod: warmpod_model.WarmPod) -> dict[str, Any]:
    """The Service prepared with a warm pod (``warm-<pod>``): the agent port of the pod,
    selected by its WarmPod-UID label, owned by the WarmPod. A sandbox that claims the pod
    adopts the Service with it (its owner reference only), so the claim creates no Service
    and neither its endpoints nor their labels change
    (``lss_sandbox_reconciler.render.service``).

    Its labels outlive the claim, so they name no pool: ``app`` (the watcher's selector), the
    component and the WarmPod's UID. The owner reference is what ties it to the WarmPod, then
    to the Sandbox; a pool label would wake the pool at every change of a sandbox's Service."""
    meta = warm_pod.metadata
    if not meta.name or not meta.namespace or not meta.uid:
        raise ValueError("a stored WarmPod has a name, a namespace and a UID")
    pod_name = names.pod_name(meta.name, uid=meta.uid)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": reconciler_names.warm_service_name(pod_name),
            "namespace": meta.namespace,
            "labels": {
                labels.APP: labels.APP_VALUE,
                COMPONENT: WARM_SERVICE_COMPONENT,
                labels.WARM_POD_UID: meta.uid,
            },
            "ownerReferences": [
                owner_reference(kind=warmpod_model.KIND, name=meta.name, uid=meta.uid)
            ],
        },
        "spec": service_render.service_spec(service_render.warm_selector(meta.uid)),
    }


def fingerprint(pod: dict[str, Any]) -> str:
    """sha256 of a pod's spec without its identity (ServiceAccount), as 64 hex characters.

    Equal fingerprints mean identical pods apart from names, labels and owners: a claim can
    compare the sandbox's rendered pod with the warm pod's recorded one in one string. The
    reconciler's claim computes it with the very same function.
    """
    return claim.pod_spec_hash(pod)


def render_service_account(pool: warmpool_model.WarmPool) -> dict[str, Any]:
    """The pool's ServiceAccount: no token is ever mounted, no role is bound to it."""
    meta = pool.metadata
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _pool_child_metadata(pool, name=names.service_account_name(meta.name or "")),
        "automountServiceAccountToken": False,
    }


def render_deny_policy(pool: warmpool_model.WarmPool) -> dict[str, Any]:
    """Default-deny, both directions, for the pool's pods (INVENTORY §10.5.11).

    Unclaimed warm pods have no sandbox policies yet; this keeps them isolated. A claimed pod
    also gets its sandbox's allowances (policies add up), so it is harmless after the claim.
    """
    meta = pool.metadata
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _pool_child_metadata(pool, name=names.policy_name(meta.name or "")),
        "spec": {
            "podSelector": {"matchLabels": {POOL_UID: meta.uid}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def pool_owner_uid(obj: Mapping[str, Any]) -> str | None:
    """The UID of the WarmPool that controls ``obj`` (a pool's child); None if none does."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("kind") == warmpool_model.KIND and ref.get("controller"):
            uid = ref.get("uid")
            return None if uid is None else str(uid)
    return None


def _pool_child_metadata(pool: warmpool_model.WarmPool, *, name: str) -> dict[str, Any]:
    meta = pool.metadata
    if not meta.name or not meta.namespace or not meta.uid:
        raise ValueError("a stored WarmPool has a name, a namespace and a UID")
    return {
        "name": name,
        "namespace": meta.namespace,
        "labels": {
            labels.APP: labels.APP_VALUE,
            COMPONENT: POOL_COMPONENT,
            POOL_UID: meta.uid,
        },
        "ownerReferences": [
            owner_reference(kind=warmpool_model.KIND, name=meta.name, uid=meta.uid)
        ],
    }


def classify_pod(
    pod: dict[str, Any] | None,
    *,
    now: datetime.datetime,
    unschedulable_deadline_seconds: float,
) -> lifecycle.PodVerdict:
    """The sandbox reconciler's verdict on a pod (same failure rules for warm pods)."""
    return lifecycle.classify_pod(
        pod, now=now, unschedulable_deadline_seconds=unschedulable_deadline_seconds
    )
