"""The pool manager's writes: WarmPods, their pods, the pool's children, status, finalizer.

Every create is of a deterministic name (a repeat answers AlreadyExists, reported as
``False``); every delete carries the UID it was decided for (a namesake re-created since is
never deleted); every status write carries the resourceVersion it was computed from. This
module decides nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import msgspec

from lss_common import errors
from lss_common.kube import client, objects, writes
from lss_common.models import kinds
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import podspec, preload
from lss_pool_manager import status as status_module


def warm_pod_body(
    pool: warmpool_model.WarmPool,
    *,
    name: str,
    record: warmpod_model.WarmPodSpec,
    pod_spec_hash: str,
    preload_hash: str = "",
) -> dict[str, Any]:
    """The WarmPod manifest for one slot, owned by the pool (``preload_hash``: the preload
    scripts it must run before Ready, ``preload.PRELOAD_HASH``; empty for none)."""
    meta = pool.metadata
    annotations = {podspec.POD_SPEC_HASH: pod_spec_hash}
    if preload_hash:
        annotations[preload.PRELOAD_HASH] = preload_hash
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": warmpod_model.KIND,
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": podspec.warm_pod_labels(pool_name=meta.name or "", pool_uid=meta.uid or ""),
            "annotations": annotations,
            "ownerReferences": [
                podspec.owner_reference(
                    kind=warmpool_model.KIND, name=meta.name or "", uid=meta.uid or ""
                )
            ],
        },
        "spec": msgspec.to_builtins(record),
    }


async def create_warm_pod(
    kube: client.Kube, *, body: dict[str, Any]
) -> warmpod_model.WarmPod | None:
    """Create the WarmPod; None when its slot is already taken (another replica, or a lag)."""
    try:
        return await objects.create_object(
            kube,
            resource=objects.WARM_POD,
            namespace=body["metadata"]["namespace"],
            body=body,
            decode=warmpod_model.decode,
        )
    except errors.AlreadyExistsError:
        return None


async def create_service(kube: client.Kube, *, service: dict[str, Any]) -> bool:
    """Create the Service prepared with a warm pod; False if it exists already."""
    return await _create(kube, resource=objects.SERVICE, body=service)


async def create_pod(kube: client.Kube, *, pod: dict[str, Any]) -> dict[str, Any] | None:
    """Create the warm pod; returns it as stored (what its record is taken from), None if
    it exists already."""
    try:
        created: dict[str, Any] = await objects.create_object(
            kube, resource=objects.POD, namespace=pod["metadata"]["namespace"], body=pod
        )
    except errors.AlreadyExistsError:
        return None
    return created


async def _create(
    kube: client.Kube, *, resource: objects.ApiResource, body: dict[str, Any]
) -> bool:
    # An existing namesake is not read: the WarmPod's next pass observes its pod, and the
    # Service is the claim's to adopt or re-create. (The role has no ``get services``.)
    try:
        await objects.create_object(
            kube, resource=resource, namespace=body["metadata"]["namespace"], body=body
        )
    except errors.AlreadyExistsError:
        return False
    return True


async def delete_warm_pod(
    kube: client.Kube,
    *,
    namespace: str,
    name: str,
    uid: str,
    resource_version: str | None = None,
) -> bool:
    """Delete exactly this WarmPod; False if it was already gone, is a namesake now, or (with
    ``resource_version``) changed since it was read, e.g. a sandbox claimed it."""
    try:
        return await writes.delete_if_present(
            kube,
            resource=objects.WARM_POD,
            namespace=namespace,
            name=name,
            uid=uid,
            resource_version=resource_version,
        )
    except errors.ConflictError:
        return False


async def delete_pod(
    kube: client.Kube,
    *,
    namespace: str,
    name: str,
    uid: str | None,
    resource_version: str | None = None,
) -> bool:
    """Delete exactly this pod; False if it was already gone, is a namesake now, or (with
    ``resource_version``) changed since it was read, e.g. a sandbox adopted it."""
    try:
        return await writes.delete_if_present(
            kube,
            resource=objects.POD,
            namespace=namespace,
            name=name,
            uid=uid,
            resource_version=resource_version,
        )
    except errors.ConflictError:
        return False


async def ensure_pool_children(kube: client.Kube, *, pool: warmpool_model.WarmPool) -> list[str]:
    """The pool's ServiceAccount and default-deny NetworkPolicy, created if absent.

    Returns what is not the pool's yet: an object of the same name left by a previous pool of
    the same name (deleted and re-created; its garbage collection is pending) is named in
    the result, and the caller looks again shortly. Taking it as the
    pool's would leave the pool's pods outside the deny policy (it selects the previous
    pool's UID) and without an account once the collector removes it. An object of the same
    name that no pool owns is someone else's: ``PermanentError`` (``NameConflict``).
    """
    namespace = pool.metadata.namespace
    waiting: list[str] = []
    for resource, body in (
        (objects.SERVICE_ACCOUNT, podspec.render_service_account(pool)),
        (objects.NETWORK_POLICY, podspec.render_deny_policy(pool)),
    ):
        found, created = await writes.create_if_absent(
            kube, resource=resource, namespace=namespace, body=body
        )
        metadata = found.get("metadata") or {}
        owner = podspec.pool_owner_uid(found)
        if created or owner == pool.metadata.uid:
            continue
        what = f"{resource.kind} {metadata.get('name')}"
        if owner is None:
            raise errors.PermanentError(
                f"{what} exists and is not this pool's (no WarmPool owns it); rename or remove it",
                reason=status_module.Reason.NAME_CONFLICT,
            )
        # Its owner is gone (names are unique): the garbage collector deletes it. The pool
        # manager may not delete ServiceAccounts or policies itself (least privilege).
        waiting.append(what)
    return waiting


async def write_pool_status(
    kube: client.Kube,
    *,
    pool: warmpool_model.WarmPool,
    status: warmpool_model.WarmPoolStatus,
) -> warmpool_model.WarmPool:
    return await writes.update_status(
        kube, resource=objects.WARM_POOL, obj=pool, status=status, decode=warmpool_model.decode
    )


async def update_pool_status(
    kube: client.Kube,
    *,
    pool: warmpool_model.WarmPool,
    update: Callable[[warmpool_model.WarmPoolStatus], warmpool_model.WarmPoolStatus],
    attempts: int = 10,
) -> None:
    """Write ``update`` of the pool's status, re-reading the pool on each conflict (another
    writer: the pool pass, another WarmPod's record). Nothing when the pool is gone or being
    deleted; a ConflictError after ``attempts`` conflicts in a row."""
    current: warmpool_model.WarmPool | None = pool
    for _ in range(attempts):
        if current is None or current.metadata.deletion_timestamp:
            return
        status = warmpool_model.status_of(current)
        new = update(status)
        if new == status:
            return  # nothing to record (e.g. that failure is counted already)
        try:
            await write_pool_status(kube, pool=current, status=new)
        except errors.ConflictError:
            current = await objects.get_or_none(
                kube,
                resource=objects.WARM_POOL,
                namespace=current.metadata.namespace or "",
                name=current.metadata.name or "",
                decode=warmpool_model.decode,
            )
            continue
        except errors.NotFoundError:
            return
        return
    raise errors.ConflictError(
        f"WarmPool {pool.metadata.namespace}/{pool.metadata.name}: status still conflicting "
        f"after {attempts} attempts"
    )


async def write_warm_pod_status(
    kube: client.Kube,
    *,
    warm_pod: warmpod_model.WarmPod,
    status: warmpod_model.WarmPodStatus,
) -> warmpod_model.WarmPod:
    return await writes.update_status(
        kube, resource=objects.WARM_POD, obj=warm_pod, status=status, decode=warmpod_model.decode
    )


async def add_finalizer(
    kube: client.Kube, *, pool: warmpool_model.WarmPool
) -> warmpool_model.WarmPool:
    updated = await writes.add_finalizer(
        kube,
        resource=objects.WARM_POOL,
        obj=pool,
        finalizer=kinds.FINALIZER,
        decode=warmpool_model.decode,
    )
    return pool if updated is None else updated


async def remove_finalizer(kube: client.Kube, *, pool: warmpool_model.WarmPool) -> None:
    with contextlib.suppress(errors.NotFoundError):
        await writes.remove_finalizer(
            kube, resource=objects.WARM_POOL, obj=pool, finalizer=kinds.FINALIZER
        )
