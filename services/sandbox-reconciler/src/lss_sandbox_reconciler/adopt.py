"""The warm start's own writes: the claim CAS, the adoption, and giving a WarmPod back.

- :func:`claim_warm_pod` — the one compare-and-swap on the WarmPod's status (``Ready`` →
  ``Assigned``, ``assignedTo`` = the sandbox's UID, ``assignedAt``), a merge patch carrying
  the resourceVersion the ready queue read: two claimers of one WarmPod cannot both win.
- :func:`adopt_pod` — a JSON patch that first *tests* that the pod's first owner reference
  is still the claimed WarmPod (so only the claim's winner can adopt, and a pod adopted
  already is never re-owned), then replaces the owner references with the Sandbox's
  controller reference alone (Kubernetes allows one controller; the WarmPod is dropped, so
  the pod has exactly one owner and lives and dies with the Sandbox) and the labels with the
  sandbox child labels plus the WarmPod-UID label (its policies select the sandbox's UID
  label, its Service the WarmPod-UID one; the pool's labels go, so the pool's deny policy and
  the pool manager no longer see the pod). ``spec.serviceAccountName`` is immutable: the pod
  keeps the pool's ServiceAccount (no token, no bindings), and a sandbox served by a warm
  pod has no account of its own.
- :func:`adopt_service` — the same test for the Service prepared with the pod
  (``warm-<pod>``), then the owner reference alone: neither its selector (its endpoints stay
  as they are) nor its labels, which the controller manager copies to the Service's
  Endpoints and EndpointSlice (a relabel cost two more writes per claim). The reconciler
  knows it as the sandbox's by its controller reference (``owner.is_owned_by``).
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
from lss_common.models import labels, meta
from lss_common.models import warmpod as warmpod_model
from lss_sandbox_reconciler import names, ready_queue
from lss_sandbox_reconciler.render import owner as owner_module
from lss_sandbox_reconciler.render import pod as pod_render
from lss_sandbox_reconciler.render import service as service_render


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
    patch = _adoption_patch(
        candidate,
        owner=owner,
        # The WarmPod-UID label is kept: the Service prepared with the pod selects it by it.
        new_labels={
            **owner_module.child_labels(owner, component=pod_render.COMPONENT),
            labels.WARM_POD_UID: candidate.uid,
        },
    )
    return await objects.patch_object(
        kube,
        resource=objects.POD,
        namespace=candidate.namespace,
        name=candidate.pod_name,
        body=patch,
        patch_type=objects.PatchType.JSON,
    )


def is_warm_pods(obj: dict[str, Any], *, warm_pod_uid: str) -> bool:
    """Whether a pod or Service is still the claimed WarmPod's (what the adoption patch's
    ``test`` checks): a 422 on such an object was a refusal, not a lost race."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return bool(refs) and refs[0].get("uid") == warm_pod_uid


def _adoption_patch(
    candidate: ready_queue.Candidate,
    *,
    owner: owner_module.Owner,
    new_labels: dict[str, str] | None,
) -> list[dict[str, Any]]:
    """The JSON patch that hands a claimed WarmPod's object to the sandbox: *test* that its
    first owner is still the WarmPod (422 otherwise), then the sandbox's controller reference
    alone and ``new_labels`` (None: the labels stay)."""
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": candidate.uid},
        {
            "op": "replace",
            "path": "/metadata/ownerReferences",
            "value": [owner_module.owner_reference(owner)],
        },
    ]
    if new_labels is not None:
        patch.append({"op": "replace", "path": "/metadata/labels", "value": new_labels})
    return patch


async def adopt_service(
    kube: client_module.Kube,
    *,
    candidate: ready_queue.Candidate,
    owner: owner_module.Owner,
) -> dict[str, Any] | None:
    """Re-own the Service prepared with the claimed pod; returns the Service as the sandbox
    now has it.

    Like the pod's adoption, the patch first tests that the Service is still the claimed
    WarmPod's; its selector and labels are left alone, so neither its endpoints nor the
    copies of its labels on them change. The pool manager
    makes the Service together with the pod, so a claim can come before its create lands
    (or after it failed): then the Service is created here, already the sandbox's, and if the
    pool manager's create lands in between (AlreadyExists) that one is adopted. None only if
    the Service keeps vanishing (the planner then creates it).
    """
    name = names.warm_service_name(candidate.pod_name)
    for _ in range(2):
        try:
            return await _patch_service(kube, name=name, candidate=candidate, owner=owner)
        except errors.NotFoundError:
            body = service_render.render_warm_service(
                owner, pod_name=candidate.pod_name, warm_pod_uid=candidate.uid
            )
            try:
                return await objects.create_object(
                    kube, resource=objects.SERVICE, namespace=candidate.namespace, body=body
                )
            except errors.AlreadyExistsError:
                continue  # the pool manager's create landed meanwhile: adopt that one
    return None


async def _patch_service(
    kube: client_module.Kube,
    *,
    name: str,
    candidate: ready_queue.Candidate,
    owner: owner_module.Owner,
) -> dict[str, Any] | None:
    patch = _adoption_patch(candidate, owner=owner, new_labels=None)
    try:
        return await objects.patch_object(
            kube,
            resource=objects.SERVICE,
            namespace=candidate.namespace,
            name=name,
            body=patch,
            patch_type=objects.PatchType.JSON,
        )
    except errors.InvalidObjectError:
        # The test failed: not the WarmPod's any more (adopted already, by a resumed pass of
        # this claim, or never prepared by it). What is there decides the plan; gone since:
        # nothing to adopt, the planner creates it.
        return await objects.get_or_none(
            kube, resource=objects.SERVICE, namespace=candidate.namespace, name=name
        )


async def get_pod(kube: client_module.Kube, *, namespace: str, name: str) -> dict[str, Any] | None:
    return await objects.get_or_none(kube, resource=objects.POD, namespace=namespace, name=name)


async def release_warm_pod(
    kube: client_module.Kube, *, namespace: str, name: str, sandbox_uid: str
) -> warmpod_model.WarmPod | None:
    """The WarmPod ``name`` if it is still assigned to ``sandbox_uid`` (else None: released)."""
    found = await objects.get_or_none(
        kube, resource=objects.WARM_POD, namespace=namespace, name=name, decode=warmpod_model.decode
    )
    if found is None:
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
    kube: client_module.Kube,
    *,
    candidate: ready_queue.Candidate,
    pod_uid: str | None,
    sandbox_uid: str,
) -> bool:
    """Undo a claim that cannot be completed: its pod, the Service prepared with it and its
    WarmPod are deleted. True when the WarmPod went (the claim is gone); False when it is
    kept, Assigned, so that a later pass (its assignment index) or the pool manager's sweep
    finishes the release:

    - the pod's delete failed (an outage): deleting the WarmPod would leave a pod that may
      carry the sandbox's labels (behind its Service) with nothing left that names it;
    - the pod carries the sandbox's labels and its deletion is pending (a grace period):
      the sandbox's own deletion must wait for it (its policies still confine it), and only
      the kept claim tells that pass it exists.

    The pod and the Service may carry the sandbox's labels already, so they are never handed
    to anyone else.
    """
    try:
        deletion = await writes.delete(
            kube,
            resource=objects.POD,
            namespace=candidate.namespace,
            name=candidate.pod_name,
            uid=pod_uid,
        )
    except errors.ConflictError:
        deletion = writes.Deletion.ABSENT  # another pod under that name: not the claim's
    except errors.LssError:
        return False
    with contextlib.suppress(errors.LssError):
        await writes.delete_if_present(
            kube,
            resource=objects.SERVICE,
            namespace=candidate.namespace,
            name=names.warm_service_name(candidate.pod_name),
        )
    if deletion is writes.Deletion.PENDING:
        try:
            pod = await get_pod(kube, namespace=candidate.namespace, name=candidate.pod_name)
        except errors.LssError:
            return False
        if pod is not None and is_labelled_for(pod, sandbox_uid=sandbox_uid):
            return False
    with contextlib.suppress(errors.LssError):
        await delete_warm_pod(
            kube, namespace=candidate.namespace, name=candidate.name, uid=candidate.uid
        )
    return True


def is_labelled_for(pod: dict[str, Any], *, sandbox_uid: str) -> bool:
    """Whether the pod carries the sandbox's identity (it was adopted)."""
    pod_labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(pod_labels.get(owner_module.SANDBOX_UID) == sandbox_uid)
