"""The idempotent, optimistic writes services make: status, create-if-absent, finalizers, Events.

Every update here carries the resourceVersion of the object it was computed from, so a write
based on a stale read fails with ``ConflictError`` (re-observe and re-plan) instead of
overwriting someone else's change; every create is of a deterministic name, so a repeat is
harmless. Status goes only through the status subresource.

Objects may be raw dicts (as ``objects`` returns them by default) or decoded models whose
``metadata`` is a ``meta.ObjectMeta`` and whose ``status`` has ``conditions``. Pass ``decode``
to get the written object back in the same form.

This module decides nothing: what to write is the caller's plan. Events are best effort
(a failed post is logged and reported, never raised), as Kubernetes' own recorders do.
"""

from __future__ import annotations

import datetime
import enum
import logging
from collections.abc import Mapping
from typing import Any, TypeVar, overload

import msgspec

from lss_common import errors
from lss_common.kube import client as client_module
from lss_common.kube import objects
from lss_common.logic import conditions as conditions_logic
from lss_common.logic import finalizers as finalizers_logic
from lss_common.models import meta

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The API server accepts longer Event messages, but events.k8s.io caps its note at 1 KiB and
# `kubectl describe` is unreadable past that; the full text belongs in the condition.
_MAX_EVENT_MESSAGE_BYTES = 1024


class EventType(enum.StrEnum):
    """Kubernetes Event types."""

    NORMAL = "Normal"
    WARNING = "Warning"


# -- reading what an object says about itself ------------------------------------------------


def object_meta(obj: object) -> meta.ObjectMeta:
    """The metadata of a raw dict or a decoded model."""
    if isinstance(obj, Mapping):
        return msgspec.convert(obj.get("metadata") or {}, type=meta.ObjectMeta)
    metadata = getattr(obj, "metadata", None)
    if isinstance(metadata, meta.ObjectMeta):
        return metadata
    raise TypeError(f"{type(obj).__name__} has no Kubernetes metadata")


def object_conditions(obj: object) -> list[meta.Condition]:
    """``status.conditions`` of a raw dict or a decoded model (empty when there are none)."""
    if isinstance(obj, Mapping):
        status = obj.get("status") or {}
        return msgspec.convert(status.get("conditions") or [], type=list[meta.Condition])
    status = getattr(obj, "status", None)
    return list(getattr(status, "conditions", None) or [])


def _identity(obj: object, *, resource: objects.ApiResource) -> tuple[str, str | None, str]:
    metadata = object_meta(obj)
    if not metadata.name:
        raise ValueError(f"{resource.kind} object has no metadata.name")
    if not metadata.resource_version:
        raise ValueError(
            f"{resource.kind} {metadata.name}: no metadata.resourceVersion; writes must carry "
            "the version they were computed from"
        )
    namespace = metadata.namespace if resource.namespaced else None
    return metadata.name, namespace, metadata.resource_version


# -- status -------------------------------------------------------------------------------


@overload
async def update_status(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    status: object,
    decode: None = None,
) -> dict[str, Any]: ...
@overload
async def update_status(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    status: object,
    decode: objects.Decode[T],
) -> T: ...
async def update_status(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    status: object,
    decode: objects.Decode[Any] | None = None,
) -> Any:
    """Replace the whole status of ``obj`` (PUT on the status subresource).

    The request carries ``obj``'s resourceVersion: if the object changed since it was read,
    the server answers 409 and ``ConflictError`` is raised. Fields absent from ``status`` are
    removed, which a merge patch could not do.
    """
    name, namespace, _ = _identity(obj, resource=resource)
    body = objects.to_body(obj)
    body = {**body, "status": objects.to_body(status)}
    return await objects.replace_object(
        kube,
        resource=resource,
        body=body,
        name=name,
        namespace=namespace,
        subresource="status",
        decode=decode,
    )


@overload
async def patch_status(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    patch: Mapping[str, Any],
    decode: None = None,
) -> dict[str, Any]: ...
@overload
async def patch_status(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    patch: Mapping[str, Any],
    decode: objects.Decode[T],
) -> T: ...
async def patch_status(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    patch: Mapping[str, Any],
    decode: objects.Decode[Any] | None = None,
) -> Any:
    """Merge-patch ``status`` with ``patch`` (camelCase keys; ``None`` deletes a field).

    Conditional on ``obj``'s resourceVersion like ``update_status``; lists in the patch (such
    as ``conditions``) replace the stored list whole.
    """
    name, namespace, resource_version = _identity(obj, resource=resource)
    return await objects.patch_object(
        kube,
        resource=resource,
        body={"metadata": {"resourceVersion": resource_version}, "status": dict(patch)},
        name=name,
        namespace=namespace,
        subresource="status",
        patch_type=objects.PatchType.MERGE,
        decode=decode,
    )


@overload
async def set_condition(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    condition_type: str,
    status: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    decode: None = None,
) -> dict[str, Any] | None: ...
@overload
async def set_condition(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    condition_type: str,
    status: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    decode: objects.Decode[T],
) -> T | None: ...
async def set_condition(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    condition_type: str,
    status: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    decode: objects.Decode[Any] | None = None,
) -> Any:
    """Set one condition (``logic.conditions`` semantics) on ``obj``'s status.

    ``observedGeneration`` is the object's ``metadata.generation``. Returns the updated object,
    or ``None`` when the condition was already exactly so and nothing was written.
    """
    current = object_conditions(obj)
    updated = conditions_logic.set_condition(
        current,
        condition_type=condition_type,
        status=status,
        reason=reason,
        message=message,
        now=now,
        observed_generation=object_meta(obj).generation,
    )
    if updated == current:
        return None
    return await patch_status(
        kube,
        resource=resource,
        obj=obj,
        patch={"conditions": msgspec.to_builtins(updated)},
        decode=decode,
    )


# -- create-if-absent ------------------------------------------------------------------------


@overload
async def create_if_absent(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    body: object,
    namespace: str | None = None,
    decode: None = None,
) -> tuple[dict[str, Any], bool]: ...
@overload
async def create_if_absent(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    body: object,
    namespace: str | None = None,
    decode: objects.Decode[T],
) -> tuple[T, bool]: ...
async def create_if_absent(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    body: object,
    namespace: str | None = None,
    decode: objects.Decode[Any] | None = None,
) -> tuple[Any, bool]:
    """Create ``body`` unless an object of its name exists; ``(object, created)``.

    ``body`` must have a deterministic ``metadata.name`` (no ``generateName``). On
    AlreadyExists the existing object is read and returned as it is: whether it matches the
    body is the caller's next observation, not this function's guess. If it vanished between
    the create and the read, ``ConflictError`` asks the caller to re-plan.
    """
    payload = objects.to_body(body)
    name = (payload.get("metadata") or {}).get("name") if isinstance(payload, Mapping) else None
    if not name:
        raise ValueError(f"create_if_absent needs a deterministic metadata.name ({resource.kind})")
    try:
        created = await objects.create_object(
            kube, resource=resource, body=payload, namespace=namespace, decode=decode
        )
    except errors.AlreadyExistsError:
        pass
    else:
        return created, True
    try:
        existing = await objects.get_object(
            kube, resource=resource, name=name, namespace=namespace, decode=decode
        )
    except errors.NotFoundError as error:
        raise errors.ConflictError(
            f"{resource.kind} {namespace or ''}/{name} was deleted while being created"
        ) from error
    return existing, False


class Deletion(enum.Enum):
    """What a delete found and did."""

    ABSENT = "absent"
    """Gone before the request (404)."""
    GONE = "gone"
    """Deleted by the request, at once."""
    PENDING = "pending"
    """Marked for deletion: a grace period (a pod's) or finalizers still hold it."""


async def delete(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    name: str,
    namespace: str | None = None,
    uid: str | None = None,
    resource_version: str | None = None,
    propagation: objects.Propagation = objects.Propagation.BACKGROUND,
) -> Deletion:
    """Delete the object if it exists, and say whether it is gone now.

    ``uid`` guards against a namesake, ``resource_version`` against any change since the
    object was read (either failing raises ``ConflictError``).
    """
    try:
        gone = await objects.delete_object(
            kube,
            resource=resource,
            name=name,
            namespace=namespace,
            uid=uid,
            resource_version=resource_version,
            propagation=propagation,
        )
    except errors.NotFoundError:
        return Deletion.ABSENT
    return Deletion.GONE if gone else Deletion.PENDING


async def delete_if_present(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    name: str,
    namespace: str | None = None,
    uid: str | None = None,
    resource_version: str | None = None,
    propagation: objects.Propagation = objects.Propagation.BACKGROUND,
) -> bool:
    """Delete the object; ``False`` if it was already gone (see :func:`delete`)."""
    found = await delete(
        kube,
        resource=resource,
        name=name,
        namespace=namespace,
        uid=uid,
        resource_version=resource_version,
        propagation=propagation,
    )
    return found is not Deletion.ABSENT


# -- finalizers -----------------------------------------------------------------------------


@overload
async def add_finalizer(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    finalizer: str,
    decode: None = None,
) -> dict[str, Any] | None: ...
@overload
async def add_finalizer(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    finalizer: str,
    decode: objects.Decode[T],
) -> T | None: ...
async def add_finalizer(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    finalizer: str,
    decode: objects.Decode[Any] | None = None,
) -> Any:
    """Add ``finalizer`` with a patch conditional on ``obj``'s resourceVersion.

    Returns the updated object, or ``None`` if the finalizer was already there (no write).
    """
    name, namespace, resource_version = _identity(obj, resource=resource)
    patch = finalizers_logic.add_finalizer_merge_patch(
        object_meta(obj).finalizers, finalizer=finalizer, resource_version=resource_version
    )
    if patch is None:
        return None
    return await objects.patch_object(
        kube, resource=resource, body=patch, name=name, namespace=namespace, decode=decode
    )


@overload
async def remove_finalizer(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    finalizer: str,
    decode: None = None,
) -> dict[str, Any] | None: ...
@overload
async def remove_finalizer(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    finalizer: str,
    decode: objects.Decode[T],
) -> T | None: ...
async def remove_finalizer(
    kube: client_module.Kube,
    *,
    resource: objects.ApiResource,
    obj: object,
    finalizer: str,
    decode: objects.Decode[Any] | None = None,
) -> Any:
    """Remove ``finalizer`` with a patch conditional on ``obj``'s resourceVersion.

    Returns the updated object, or ``None`` if the finalizer was absent (no write). When it
    was the last finalizer of an object being deleted, the object is gone afterwards and the
    server returns its final state.
    """
    name, namespace, resource_version = _identity(obj, resource=resource)
    patch = finalizers_logic.remove_finalizer_merge_patch(
        object_meta(obj).finalizers, finalizer=finalizer, resource_version=resource_version
    )
    if patch is None:
        return None
    return await objects.patch_object(
        kube, resource=resource, body=patch, name=name, namespace=namespace, decode=decode
    )


# -- events ---------------------------------------------------------------------------------


def build_event(
    involved: object,
    *,
    resource: objects.ApiResource,
    reason: str,
    message: str,
    event_type: EventType,
    reporting_controller: str,
    reporting_instance: str,
    now: datetime.datetime,
    action: str | None = None,
) -> dict[str, Any]:
    """A core/v1 Event about ``involved``, as ``kubectl describe`` shows them.

    The name follows client-go's recorder (``<object>.<unix nanoseconds in hex>``). Events
    about cluster-scoped objects go to the ``default`` namespace, as Kubernetes' do.
    """
    metadata = object_meta(involved)
    if not metadata.name:
        raise ValueError("an Event needs an involved object with a name")
    namespace = (metadata.namespace if resource.namespaced else None) or "default"
    timestamp = meta.format_timestamp(now)
    nanoseconds = int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000
    involved_object: dict[str, Any] = {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": metadata.name,
        "uid": metadata.uid,
        "resourceVersion": metadata.resource_version,
    }
    if resource.namespaced:
        involved_object["namespace"] = metadata.namespace
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{metadata.name}.{nanoseconds:x}", "namespace": namespace},
        "involvedObject": {k: v for k, v in involved_object.items() if v is not None},
        "reason": reason,
        "message": _truncate(message, limit_bytes=_MAX_EVENT_MESSAGE_BYTES),
        "type": event_type.value,
        "source": {"component": reporting_controller},
        "reportingComponent": reporting_controller,
        "reportingInstance": reporting_instance,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }
    if action:
        event["action"] = action
    return event


async def post_event(
    kube: client_module.Kube,
    *,
    involved: object,
    resource: objects.ApiResource,
    reason: str,
    message: str,
    event_type: EventType,
    reporting_controller: str,
    reporting_instance: str,
    now: datetime.datetime,
    action: str | None = None,
) -> bool:
    """Post an Event about ``involved``; ``False`` (and a warning log) if it failed.

    Post Events on transitions only: every call creates one object in etcd.
    """
    event = build_event(
        involved,
        resource=resource,
        reason=reason,
        message=message,
        event_type=event_type,
        reporting_controller=reporting_controller,
        reporting_instance=reporting_instance,
        now=now,
        action=action,
    )
    try:
        await objects.create_object(
            kube,
            resource=objects.EVENT,
            body=event,
            namespace=event["metadata"]["namespace"],
        )
    except errors.AlreadyExistsError:
        return True  # the same event, posted twice in the same nanosecond: already recorded
    except errors.LssError:
        logger.warning(
            "event not posted",
            extra={"reason": reason, "event_type": str(event_type)},
            exc_info=True,
        )
        return False
    return True


def _truncate(text: str, *, limit_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit_bytes:
        return text
    ellipsis = "\u2026"
    return encoded[: limit_bytes - len(ellipsis.encode())].decode(errors="ignore") + ellipsis
