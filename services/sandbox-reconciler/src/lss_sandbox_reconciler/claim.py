"""Whether a sandbox may start warm, which WarmPods match it, and which one to try (pure).

Matching (DESIGN §3.7, §5) is exact, in the sandbox's namespace, on what the WarmPod
records: ``runtime``, effective ``securityLevel``, resolved profile ``(namespace, name)``
and canonical resources (``500m``/``512Mi``/``1Gi``, as the pool manager writes them) — and
then on the **pod-spec hash**: the sandbox's cold pod is rendered by the same code as a warm
pod (``render.pod``) and hashed the same way (:func:`pod_spec_hash`). The record alone is
necessary, not sufficient: a sandbox with another UID, writable paths, ``readOnlyRoot`` or
seccomp profile builds another pod from the same runtime, level, profile and resources. One
string comparison settles it; a `high` sandbox can never get a `standard` pod (level and
RuntimeClass both differ).

What a warm pod cannot take starts cold (:func:`cold_reason`): a persistent ``/data`` claim
or shared volumes (volumes cannot be added to a running pod), and namespace isolation (the
pod lives in the pool's namespace, not the sandbox's own one).

The pick spreads replicas: a random one among the first ``spread`` candidates (oldest Ready
first), so two replicas claiming at once rarely try the same WarmPod.

A claim left behind by a pass that died after its CAS is *stray* once its sandbox can no
longer take it (:func:`is_stray_claim`); the reconciler then gives it back, with its pod
when that pod is not the one the sandbox runs on (:func:`may_discard_pod`).

No I/O: the caller supplies the rendered pod, the queue's candidates and the random source.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any, TypeVar

from lss_common.logic import owners, quantities
from lss_common.models import parts
from lss_common.models import sandbox as sandbox_model
from lss_common.models import warmpod as warmpod_model
from lss_sandbox_reconciler import lifecycle, merge
from lss_sandbox_reconciler import ready_queue as ready_queue_module
from lss_sandbox_reconciler.render import owner as owner_module

T = TypeVar("T")


class ColdReason(enum.StrEnum):
    """Why a sandbox starts cold without looking for a warm pod."""

    PERSISTENT = "persistent-storage"
    SHARED_VOLUMES = "shared-volumes"
    NAMESPACE_ISOLATION = "namespace-isolation"


@dataclasses.dataclass(frozen=True, slots=True)
class Wanted:
    """What a WarmPod must record (and hash) to serve one sandbox."""

    namespace: str
    runtime: str
    security_level: str
    profile: tuple[str, str] | None
    resources: warmpod_model.WarmPodResources
    spec_hash: str


def pod_spec_hash(pod: dict[str, Any]) -> str:
    """sha256 of a pod's spec without its identity (ServiceAccount), as 64 hex characters.

    The pool manager hashes its warm pods with this function (``podspec.fingerprint``), so
    equal hashes mean identical pods apart from names, labels and owners.
    """
    body = copy.deepcopy(pod.get("spec") or {})
    body.pop("serviceAccountName", None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def canonical_resources(spec: merge.EffectiveSpec) -> warmpod_model.WarmPodResources:
    """The resources as a WarmPod records them (one spelling per quantity)."""
    return warmpod_model.WarmPodResources(
        cpu=quantities.format_cpu(quantities.cpu_millicores(spec.cpu_limit, field="cpu")),
        memory=quantities.format_memory(quantities.memory_bytes(spec.memory, field="memory")),
        ephemeral_storage=quantities.format_memory(spec.ephemeral_storage_bytes),
    )


def cold_reason(spec: merge.EffectiveSpec, *, owner: owner_module.Owner) -> ColdReason | None:
    """Why the sandbox cannot start warm at all; None when it may look for a warm pod."""
    if spec.persistent:
        return ColdReason.PERSISTENT
    if spec.shared_volumes:
        return ColdReason.SHARED_VOLUMES
    if owner.is_cross_namespace:
        return ColdReason.NAMESPACE_ISOLATION
    return None


def wanted_for(
    obj: sandbox_model.Sandbox,
    *,
    spec: merge.EffectiveSpec,
    profile: tuple[str, str] | None,
    cold_pod: dict[str, Any],
) -> Wanted:
    """What the sandbox ``obj`` needs of a WarmPod; ``cold_pod`` is its rendered pod."""
    return Wanted(
        namespace=obj.metadata.namespace or "",
        runtime=obj.spec.runtime,
        security_level=spec.security_level,
        profile=profile,
        resources=canonical_resources(spec),
        spec_hash=pod_spec_hash(cold_pod),
    )


def _profile_of(ref: parts.ProfileRef | None, *, namespace: str) -> tuple[str, str] | None:
    if ref is None:
        return None
    return (ref.namespace or namespace, ref.name)


def matches(candidate: ready_queue_module.Candidate, *, wanted: Wanted) -> bool:
    """Whether ``candidate`` serves exactly what ``wanted`` asks for."""
    record = candidate.record
    return (
        candidate.namespace == wanted.namespace
        and record.runtime == wanted.runtime
        and record.security_level == wanted.security_level
        and _profile_of(record.profile_ref, namespace=candidate.namespace) == wanted.profile
        and record.resources == wanted.resources
        and candidate.spec_hash == wanted.spec_hash
    )


def is_stray_claim(obj: sandbox_model.Sandbox, *, warm_pod: tuple[str, str]) -> bool:
    """Whether the WarmPod ``warm_pod`` (namespace, name), Assigned to ``obj``, can no longer
    serve it: the sandbox is ending, or is past new (a status or another pod) without
    referencing it.

    A claim completes only through the sandbox's Running status, written conditional on the
    resourceVersion its pass read while the sandbox was new (no ``warmPodRef``, phase unset
    or Pending). Once the sandbox is not new, no pass in flight can complete this claim: it
    was left by a pass that died (or lost) between the CAS and that write. While the sandbox
    is still new, the claim is not stray: the next pass resumes it.
    """
    status = sandbox_model.status_of(obj)
    ref = status.warm_pod_ref
    if ref is not None and (ref.namespace or obj.metadata.namespace or "", ref.name) == warm_pod:
        return False
    if obj.metadata.deletion_timestamp or lifecycle.is_terminal(status.phase):
        return True
    return ref is not None or status.phase not in (None, "", sandbox_model.Phase.PENDING)


def may_discard_pod(
    pod: dict[str, Any] | None,
    *,
    warm_pod_uid: str,
    sandbox_uid: str,
    sandbox_pod_name: str | None,
) -> bool:
    """Whether a stray claim's pod is deleted with it: still the WarmPod's, or adopted by the
    sandbox but not the pod it runs on. Never another owner's pod, never the sandbox's own."""
    if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    metadata = pod.get("metadata") or {}
    controller = owners.controller_of(pod)
    if controller is None:
        return False
    if controller.get("uid") == warm_pod_uid:
        return True
    return controller.get("uid") == sandbox_uid and metadata.get("name") != sandbox_pod_name


def pick(candidates: Sequence[T], *, spread: int, rng: random.Random) -> T | None:
    """A random one of the first ``spread`` candidates (None when there are none)."""
    if not candidates:
        return None
    return candidates[rng.randrange(min(max(spread, 1), len(candidates)))]
