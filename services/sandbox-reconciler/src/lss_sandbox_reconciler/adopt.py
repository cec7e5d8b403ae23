"""The warm start's own writes: the claim CAS, the pod's adoption, and giving a WarmPod back.

- :func:`claim_warm_pod` — the one compare-and-swap on the WarmPod's status (``Ready`` →
  ``Assigned``, ``assignedTo`` = the sandbox's UID, ``assignedAt``), a merge patch carrying
  the resourceVersion the ready queue read: two claimers of one WarmPod cannot both win.
- :func:`adopt_pod` — a JSON patch that first *tests* that the pod's first owner reference
  is still the claimed WarmPod (so only the claim's winner can adopt, and a pod adopted
  already is never re-owned), then replaces the owner references with the Sandbox's
  controller reference alone (Kubernetes allows one controller; the WarmPod is dropped, so
  the pod has exactly one owner and lives and dies with the Sandbox) and the labels with the
  sandbox child labels (its Service and policies select the sandbox's UID label; the pool's
  labels go, so the pool's deny policy and the pool manager no longer see the pod).
  ``spec.serviceAccountName`` is immutable: the pod keeps the pool's ServiceAccount (no
  token, no bindings — as powerless as the sandbox's own one, which is still created so a
  warm sandbox has the same children as a cold one).
- :func:`release_warm_pod` / :func:`discard_claim` — delete a WarmPod still assigned to the
  sandbox (UID precondition: a slot re-created since is never touched); the pool refills.

Deciding *whether* to claim is ``claim.py``'s job; ordering the writes is ``warm.py``'s.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

from lss_common import errors
from lss_common.kube import client as client_module
from lss_common.kube import objects, writes
from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_sandbox_reconciler import ready_queue
from lss_sandbox_reconciler.render import owner as owner_module
from lss_sandbox_reconciler.render import pod as pod_render


async def claim_warm_pod(
    kube: client_module.Kube,
    *,
    candidate: ready_queue.Candidate,
    sandbox_uid: str,
    now: datetime.datetime,
) -> warmpod_model.WarmPod:
    """The CAS ``Ready`` → ``Assigned``; ``ConflictError`` if the WarmPod changed since read."""
    return await objects.patch_object(
        kube,
        resource=objects.WARM_POD,
        namespace=candidate.namespace,
        name=candidate.name,
        subresource="status",
        body={
            "metadata": {"resourceVersion": candidate.resource_version},
            "status": {
                "phase": warmpod_model.Phase.ASSIGNED.value,
                "assignedTo": sandbox_uid,
                "assignedAt": meta.format_timestamp(now),
            },
        },
        decode=warmpod_model.decode,
    )


async def adopt_pod(
    kube: client_module.Kube,
    *,
    candidate: ready_queue.Candidate,
    owner: owner_module.Owner,
) -> dict[str, Any]:
    """Re-own and re-label the claimed WarmPod's pod for the sandbox; returns the pod.

    The test operation fails (422) unless the pod is still owned by the claimed WarmPod.
    """
    patch = [
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": candidate.uid},
        {
            "op": "replace",
            "path": "/metadata/ownerReferences",
            "value": [owner_module.owner_reference(owner)],
        },
        {
            "op": "replace",
            "path": "/metadata/labels",
            "value": owner_module.child_labels(owner, component=pod_render.COMPONENT),
        },
    ]
    return await objects.patch_object(
        kube,
        resource=objects.POD,
        namespace=candidate.namespace,
        name=candidate.pod_name,
        body=patch,
        patch_type=objects.PatchType.JSON,
    )


async def get_pod(kube: client_module.Kube, *, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await objects.get_object(kube, resource=objects.POD, namespace=namespace, name=name)
    except errors.NotFoundError:
        return None


async def release_warm_pod(
    kube: client_module.Kube, *, namespace: str, name: str, sandbox_uid: str
) -> warmpod_model.WarmPod | None:
    """The WarmPod ``name`` if it is still assigned to ``sandbox_uid`` (else None: released)."""
    try:
        found = await objects.get_object(
            kube,
            resource=objects.WARM_POD,
            namespace=namespace,
            name=name,
            decode=warmpod_model.decode,
        )
    except errors.NotFoundError:
        return None
    status = warmpod_model.status_of(found)
    if status.assigned_to != sandbox_uid or found.metadata.deletion_timestamp:
        return None
    return found


async def delete_warm_pod(kube: client_module.Kube, *, namespace: str, name: str, uid: str) -> bool:
    """Delete exactly this WarmPod (UID precondition); False when it was already gone."""
    try:
        return await writes.delete_if_present(
            kube, resource=objects.WARM_POD, namespace=namespace, name=name, uid=uid
        )
    except errors.ConflictError:
        return False  # a new WarmPod holds the slot: not ours


async def discard_claim(
    kube: client_module.Kube, *, candidate: ready_queue.Candidate, pod_uid: str | None
) -> None:
    """Undo a claim that cannot be completed: its pod and WarmPod are deleted (best effort).

    The pod may carry the sandbox's labels already, so it is never handed to anyone else.
    """
    with contextlib.suppress(errors.LssError):
        await writes.delete_if_present(
            kube,
            resource=objects.POD,
            namespace=candidate.namespace,
            name=candidate.pod_name,
            uid=pod_uid,
        )
    with contextlib.suppress(errors.LssError):
        await delete_warm_pod(
            kube, namespace=candidate.namespace, name=candidate.name, uid=candidate.uid
        )
