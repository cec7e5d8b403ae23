"""Get, list, create, replace, patch and delete Kubernetes objects; API errors become ours.

One request path serves every kind, core or custom (``ApiResource`` says where a kind lives).
Responses are read as bytes (``_preload_content=False``) and decoded once, by msgspec:
either into a plain dict, or by the caller's ``decode`` callable (``sandbox.decode``, a
``msgspec.json.Decoder(...).decode``), which skips kubernetes_asyncio's slow per-field model
deserialisation. Request bodies may be dicts or msgspec structs.

Errors are translated here and nowhere else (convention 4):

- 404 → ``NotFoundError``; 409 AlreadyExists → ``AlreadyExistsError``; other 409 →
  ``ConflictError`` (re-read and re-plan);
- 422 Invalid and 400 BadRequest → ``InvalidObjectError`` whose ``field`` is the first cause's
  field (``spec.timeout``) and whose message lists every cause;
- 403 Forbidden (RBAC, or admission such as Pod Security) → ``PermanentError(reason="Forbidden")``
  (retrying the same request cannot succeed);
- 401, 408, 410, 425, 429, 5xx, timeouts and connection errors → ``RetryableError`` (with
  the server's ``Retry-After`` as the delay when it gives one);
- a response our model cannot decode → ``InvalidObjectError`` naming the JSON path.

This is not a general Kubernetes client: no watches, no generated models, no retries (the
consume loop retries with backoff; a 409 must be re-planned, never blindly repeated).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar, overload

import aiohttp
import msgspec

from lss_common import errors
from lss_common.kube import client as client_module
from lss_common.models import kinds
from lss_common.observability import metrics as metrics_module

logger = logging.getLogger(__name__)

T = TypeVar("T")
Decode = Callable[[bytes], T]


@dataclasses.dataclass(frozen=True, slots=True)
class ApiResource:
    """Where a kind lives on the API server."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise (an object's apiVersion)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """The URL path of the collection, an object, or an object's subresource."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced:
            if not namespace:
                raise ValueError(f"{self.kind} is namespaced: a namespace is required")
            prefix = f"{prefix}/namespaces/{_segment(namespace)}"
        elif namespace:
            raise ValueError(f"{self.kind} is cluster-scoped: no namespace allowed")
        path = f"{prefix}/{self.plural}"
        if name is not None:
            path = f"{path}/{_segment(name)}"
        if subresource is not None:
            if name is None:
                raise ValueError("a subresource needs an object name")
            path = f"{path}/{subresource}"
        return path


def _segment(value: str) -> str:
    # Kubernetes names are DNS labels/subdomains; anything else (a "/" or "..") would change
    # which URL we call, so it is refused rather than escaped.
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid object name or namespace {value!r}")
    return value


def _custom(resource: kinds.Resource) -> ApiResource:
    return ApiResource(
        group=kinds.GROUP,
        version=kinds.VERSION,
        plural=resource.plural,
        kind=resource.kind,
        namespaced=resource.namespaced,
    )


POD: Final = ApiResource(group="", version="v1", plural="pods", kind="Pod", namespaced=True)
SERVICE: Final = ApiResource(
    group="", version="v1", plural="services", kind="Service", namespaced=True
)
SERVICE_ACCOUNT: Final = ApiResource(
    group="", version="v1", plural="serviceaccounts", kind="ServiceAccount", namespaced=True
)
CONFIG_MAP: Final = ApiResource(
    group="", version="v1", plural="configmaps", kind="ConfigMap", namespaced=True
)
PERSISTENT_VOLUME_CLAIM: Final = ApiResource(
    group="",
    version="v1",
    plural="persistentvolumeclaims",
    kind="PersistentVolumeClaim",
    namespaced=True,
)
NAMESPACE: Final = ApiResource(
    group="", version="v1", plural="namespaces", kind="Namespace", namespaced=False
)
EVENT: Final = ApiResource(group="", version="v1", plural="events", kind="Event", namespaced=True)
NETWORK_POLICY: Final = ApiResource(
    group="networking.k8s.io",
    version="v1",
    plural="networkpolicies",
    kind="NetworkPolicy",
    namespaced=True,
)
SANDBOX: Final = _custom(kinds.SANDBOX)
SANDBOX_PROFILE: Final = _custom(kinds.SANDBOX_PROFILE)
WARM_POOL: Final = _custom(kinds.WARM_POOL)
WARM_POD: Final = _custom(kinds.WARM_POD)
RUNTIME_ENVIRONMENT: Final = _custom(kinds.RUNTIME_ENVIRONMENT)


class PatchType(enum.StrEnum):
    """The patch flavours, by their Content-Type."""

    MERGE = "application/merge-patch+json"
    JSON = "application/json-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


class Propagation(enum.StrEnum):
    """How a delete treats the object's dependents."""

    BACKGROUND = "Background"
    FOREGROUND = "Foreground"
    ORPHAN = "Orphan"


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectList(Generic[T]):
    """A complete list (all pages) and the resourceVersion to watch from."""

    items: list[T]
    resource_version: str


def as_dict(data: bytes) -> dict[str, Any]:
    """The default decoder: the object as a plain dict (camelCase keys)."""
    return _decode_dict(data)


_decode_dict: Callable[[bytes], dict[str, Any]] = msgspec.json.Decoder(dict[str, Any]).decode


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""
    continue_: str = msgspec.field(default="", name="continue")


class _RawList(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[msgspec.Raw] | None = None


class _Status(msgspec.Struct):
    """The API server's error body (``metav1.Status``), only the parts we read."""

    message: str = ""
    reason: str = ""
    details: _StatusDetails | None = None


class _StatusCause(msgspec.Struct):
    reason: str = ""
    message: str = ""
    field: str = ""


class _StatusDetails(msgspec.Struct):
    causes: list[_StatusCause] | None = None
    retryAfterSeconds: int | None = None


_status_decoder = msgspec.json.Decoder(_Status)
_MSGSPEC_PATH = re.compile(r"at `\$\.?(?P<path>[^`]*)`")


# -- operations -----------------------------------------------------------------------------


@overload
async def get_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    name: str,
    namespace: str | None = None,
    not_older_than: str | None = None,
    decode: None = None,
) -> dict[str, Any]: ...
@overload
async def get_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    name: str,
    namespace: str | None = None,
    not_older_than: str | None = None,
    decode: Decode[T],
) -> T: ...
async def get_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    name: str,
    namespace: str | None = None,
    not_older_than: str | None = None,
    decode: Decode[Any] | None = None,
) -> Any:
    """The object, decoded; ``NotFoundError`` if it does not exist.

    Without ``not_older_than`` the read is consistent: the API server reads etcd. With a
    resourceVersion (a hint's, of a change of *this* object) it is served from the API
    server's watch cache, at that version or newer: what the hint announced is in the
    answer, at the cost of a cache lookup instead of an etcd read and decode. Only for the
    object the version came from: another resource's cache learns a foreign revision from
    etcd's progress notifications, so the read could wait up to ~100 ms
    (docs/decisions-latency.md §1, §7).
    """
    data = await _request(
        kube,
        resource=resource,
        verb=metrics_module.KubeVerb.GET,
        method="GET",
        path=resource.path(namespace=namespace, name=name),
        query=[("resourceVersion", not_older_than)] if not_older_than else None,
        what=_describe(resource, namespace=namespace, name=name),
    )
    return _decode(data, decode=decode, what=_describe(resource, namespace=namespace, name=name))


@overload
async def get_or_none(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    name: str,
    namespace: str | None = None,
    not_older_than: str | None = None,
    decode: None = None,
) -> dict[str, Any] | None: ...
@overload
async def get_or_none(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    name: str,
    namespace: str | None = None,
    not_older_than: str | None = None,
    decode: Decode[T],
) -> T | None: ...
async def get_or_none(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    name: str,
    namespace: str | None = None,
    not_older_than: str | None = None,
    decode: Decode[Any] | None = None,
) -> Any:
    """:func:`get_object`, or ``None`` when the object does not exist."""
    try:
        return await get_object(
            kube,
            resource=resource,
            name=name,
            namespace=namespace,
            not_older_than=not_older_than,
            decode=decode,
        )
    except errors.NotFoundError:
        return None


@overload
async def list_objects(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    page_size: int = 500,
    any_version: bool = False,
    decode: None = None,
) -> ObjectList[dict[str, Any]]: ...
@overload
async def list_objects(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    page_size: int = 500,
    any_version: bool = False,
    decode: Decode[T],
) -> ObjectList[T]: ...
async def list_objects(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    page_size: int = 500,
    any_version: bool = False,
    decode: Decode[Any] | None = None,
) -> ObjectList[Any]:
    """Every matching object, following ``continue`` tokens; ``namespace=None`` lists all.

    Paging bounds the size of each response; the pages form one consistent snapshot, whose
    resourceVersion is returned for a watch to start from.

    ``any_version`` reads the API server's watch cache as it is (``resourceVersion=0``):
    possibly a few milliseconds behind etcd, but never waiting. A default (consistent) list
    is served by the watch cache too, once it has caught up with etcd's current revision;
    after a write to another resource it learns that revision from etcd's progress
    notifications, requested every 100 ms, so a consistent list then takes ≈ 100 ms. Use
    ``any_version`` on hot paths whose decisions tolerate that lag (or confirm a surprising
    answer with a consistent list).
    """
    path = (
        resource.path(namespace=namespace)
        if namespace or not resource.namespaced
        else _all_namespaces_path(resource)
    )
    what = _describe(resource, namespace=namespace, name=None)
    items: list[Any] = []
    token = ""
    while True:
        query: list[tuple[str, str]] = [("limit", str(page_size))]
        if any_version and not token:  # a continue token carries its own snapshot
            query.append(("resourceVersion", "0"))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if token:
            query.append(("continue", token))
        data = await _request(
            kube,
            resource=resource,
            verb=metrics_module.KubeVerb.LIST,
            method="GET",
            path=path,
            query=query,
            what=what,
        )
        page = _decode(data, decode=_raw_list_decoder.decode, what=what)
        items.extend(_decode(bytes(raw), decode=decode, what=what) for raw in page.items or ())
        token = page.metadata.continue_
        if not token:
            return ObjectList(items=items, resource_version=page.metadata.resourceVersion)


_raw_list_decoder = msgspec.json.Decoder(_RawList)


def _all_namespaces_path(resource: ApiResource) -> str:
    prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    return f"{prefix}/{resource.plural}"


@overload
async def create_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    namespace: str | None = None,
    field_manager: str | None = None,
    decode: None = None,
) -> dict[str, Any]: ...
@overload
async def create_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    namespace: str | None = None,
    field_manager: str | None = None,
    decode: Decode[T],
) -> T: ...
async def create_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    namespace: str | None = None,
    field_manager: str | None = None,
    decode: Decode[Any] | None = None,
) -> Any:
    """Create ``body`` (dict or struct); ``AlreadyExistsError`` if the name is taken."""
    payload = to_body(body)
    name = _body_name(payload)
    what = _describe(resource, namespace=namespace, name=name)
    data = await _request(
        kube,
        resource=resource,
        verb=metrics_module.KubeVerb.CREATE,
        method="POST",
        path=resource.path(namespace=namespace),
        query=_field_manager(field_manager),
        body=payload,
        what=what,
    )
    return _decode(data, decode=decode, what=what)


@overload
async def replace_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    name: str,
    namespace: str | None = None,
    subresource: str | None = None,
    field_manager: str | None = None,
    decode: None = None,
) -> dict[str, Any]: ...
@overload
async def replace_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    name: str,
    namespace: str | None = None,
    subresource: str | None = None,
    field_manager: str | None = None,
    decode: Decode[T],
) -> T: ...
async def replace_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    name: str,
    namespace: str | None = None,
    subresource: str | None = None,
    field_manager: str | None = None,
    decode: Decode[Any] | None = None,
) -> Any:
    """PUT ``body``; its ``metadata.resourceVersion`` makes it conditional (409 if stale)."""
    what = _describe(resource, namespace=namespace, name=name, subresource=subresource)
    data = await _request(
        kube,
        resource=resource,
        verb=metrics_module.KubeVerb.REPLACE,
        method="PUT",
        path=resource.path(namespace=namespace, name=name, subresource=subresource),
        query=_field_manager(field_manager),
        body=to_body(body),
        what=what,
    )
    return _decode(data, decode=decode, what=what)


@overload
async def patch_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    name: str,
    namespace: str | None = None,
    patch_type: PatchType = PatchType.MERGE,
    subresource: str | None = None,
    field_manager: str | None = None,
    force: bool = False,
    decode: None = None,
) -> dict[str, Any]: ...
@overload
async def patch_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    name: str,
    namespace: str | None = None,
    patch_type: PatchType = PatchType.MERGE,
    subresource: str | None = None,
    field_manager: str | None = None,
    force: bool = False,
    decode: Decode[T],
) -> T: ...
async def patch_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    body: object,
    name: str,
    namespace: str | None = None,
    patch_type: PatchType = PatchType.MERGE,
    subresource: str | None = None,
    field_manager: str | None = None,
    force: bool = False,
    decode: Decode[Any] | None = None,
) -> Any:
    """Patch the object. Put ``metadata.resourceVersion`` in the patch to make it conditional.

    Server-side apply (``PatchType.APPLY``) needs ``field_manager``; ``force`` takes over
    fields owned by other managers.
    """
    if patch_type is PatchType.APPLY and not field_manager:
        raise ValueError("server-side apply needs a field_manager")
    query = _field_manager(field_manager)
    if force:
        query.append(("force", "true"))
    what = _describe(resource, namespace=namespace, name=name, subresource=subresource)
    data = await _request(
        kube,
        resource=resource,
        verb=metrics_module.KubeVerb.PATCH,
        method="PATCH",
        path=resource.path(namespace=namespace, name=name, subresource=subresource),
        query=query,
        body=to_body(body),
        content_type=patch_type.value,
        what=what,
    )
    return _decode(data, decode=decode, what=what)


async def delete_object(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    name: str,
    namespace: str | None = None,
    propagation: Propagation = Propagation.BACKGROUND,
    uid: str | None = None,
    resource_version: str | None = None,
    grace_period_seconds: int | None = None,
) -> bool:
    """Delete the object (``NotFoundError`` if absent); True when it is gone at once, False
    when it is only marked for deletion (a grace period, as a pod's, or finalizers hold it).

    ``uid``/``resource_version`` are preconditions: the delete applies only to that exact
    object or version (409 otherwise), so a re-created object of the same name is never
    deleted by mistake.

    The API server answers an immediate deletion with a ``Status`` or with the object as it
    was (no ``deletionTimestamp``), and a pending one with the object carrying its
    ``deletionTimestamp``.
    """
    options: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": propagation.value,
    }
    preconditions = {
        key: value
        for key, value in (("uid", uid), ("resourceVersion", resource_version))
        if value is not None
    }
    if preconditions:
        options["preconditions"] = preconditions
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    data = await _request(
        kube,
        resource=resource,
        verb=metrics_module.KubeVerb.DELETE,
        method="DELETE",
        path=resource.path(namespace=namespace, name=name),
        body=options,
        what=_describe(resource, namespace=namespace, name=name),
    )
    return is_gone_after_delete(data)


class _DeletedMeta(msgspec.Struct):
    deletionTimestamp: str | None = None


class _DeleteAnswer(msgspec.Struct):
    kind: str | None = None
    metadata: _DeletedMeta | None = None


_delete_answer_decoder: Final = msgspec.json.Decoder(_DeleteAnswer)


def is_gone_after_delete(data: bytes) -> bool:
    """Whether a DELETE's answer says the object is gone (see :func:`delete_object`)."""
    try:
        answer = _delete_answer_decoder.decode(data)
    except msgspec.DecodeError:
        return False  # not understood: assume it is still there (the safe side)
    if answer.kind == "Status":
        return True
    return answer.metadata is None or not answer.metadata.deletionTimestamp


# -- the request path -----------------------------------------------------------------------


_WRITES: Final = frozenset(
    {
        metrics_module.KubeVerb.CREATE,
        metrics_module.KubeVerb.REPLACE,
        metrics_module.KubeVerb.PATCH,
        metrics_module.KubeVerb.DELETE,
    }
)


class _WrittenMeta(msgspec.Struct):
    resourceVersion: str | None = None


class _Written(msgspec.Struct):
    metadata: _WrittenMeta | None = None


_written_decoder = msgspec.json.Decoder(_Written)


def _written_version(data: bytes) -> str | None:
    """The resourceVersion a write answered with (a DELETE may answer a Status: None)."""
    try:
        meta = _written_decoder.decode(data).metadata
    except msgspec.DecodeError:
        return None
    return meta.resourceVersion if meta is not None else None


async def _request(
    kube: client_module.Kube,
    *,
    resource: ApiResource,
    verb: metrics_module.KubeVerb,
    method: str,
    path: str,
    what: str,
    query: Sequence[tuple[str, str]] | None = None,
    body: object = None,
    content_type: str = "application/json",
) -> bytes:
    started = time.monotonic()
    result = metrics_module.KubeResult.ERROR
    try:
        try:
            async with asyncio.timeout(kube.request_timeout_seconds):
                response = await kube.api.call_api(
                    path,
                    method,
                    query_params=list(query or ()),
                    header_params={"Content-Type": content_type, "Accept": "application/json"},
                    body=body,
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                )
                async with response:
                    data: bytes = await response.read()
                    status: int = response.status
                    retry_after = response.headers.get("Retry-After")
        except TimeoutError as error:
            result = metrics_module.KubeResult.RETRYABLE
            raise errors.RetryableError(
                f"{what}: {verb} timed out after {kube.request_timeout_seconds} s"
            ) from error
        except (aiohttp.ClientError, OSError) as error:
            result = metrics_module.KubeResult.RETRYABLE
            raise errors.RetryableError(f"{what}: {verb} failed: {error}") from error
        if 200 <= status < 300:
            result = metrics_module.KubeResult.OK
            if kube.written is not None and verb in _WRITES:
                kube.written.add(_written_version(data))
            return data
        translated = translate_error(status, data, what=what, retry_after=retry_after)
        if is_refusal(status, translated) and not await client_module.is_api_server_ready(kube):
            translated = refused_while_unready(translated)
        result = _result_of(translated)
        raise translated
    finally:
        elapsed = time.monotonic() - started
        kube.metrics.requests_total.labels(verb=verb, resource=resource.plural, result=result).inc()
        kube.metrics.request_duration_seconds.labels(verb=verb).observe(elapsed)
        if logger.isEnabledFor(logging.DEBUG):
            # Request-level timelines (which round trip a slow pass waited on).
            logger.debug(
                "kube request",
                extra={"verb": verb, "what": what, "result": result, "duration_seconds": elapsed},
            )


#: How the RBAC authorizer reports a role or binding it could not find (appended to a 403).
_ROLES_UNRESOLVED = re.compile(
    r'RBAC: \[?[a-z]*role(binding)?\.rbac\.authorization\.k8s\.io "[^"]*" not found'
)
_ROLES_UNRESOLVED_RETRY_SECONDS = 1.0


def translate_error(
    status: int, body: bytes, *, what: str, retry_after: str | None = None
) -> errors.LssError:
    """The lss_common error for an API error response (``body`` is a ``metav1.Status``)."""
    try:
        parsed = _status_decoder.decode(body)
    except msgspec.DecodeError:
        parsed = _Status(message=body[:500].decode(errors="replace"))
    message = parsed.message or f"HTTP {status}"
    causes = (parsed.details.causes or []) if parsed.details else []
    if status == 404:
        return errors.NotFoundError(f"{what} not found")
    if status == 409:
        if parsed.reason == "AlreadyExists":
            return errors.AlreadyExistsError(f"{what} already exists")
        return errors.ConflictError(f"{what}: {message}")
    if status in (400, 422):
        field = next((cause.field for cause in causes if cause.field), "")
        detail = "; ".join(
            f"{cause.field}: {cause.message}" if cause.field else cause.message
            for cause in causes
            if cause.message
        )
        return errors.InvalidObjectError(
            f"{what} is invalid: {detail or message}", field=field or "(request)"
        )
    if status == 403:
        if _ROLES_UNRESOLVED.search(message):
            # The RBAC authorizer could not load a role or binding it needed: an API server
            # serves requests before its RBAC caches are filled after a start, so this is
            # transient there (a role that is really missing is an install error, retried
            # and logged until it is applied, not a verdict on the object).
            return errors.RetryableError(
                f"{what}: {message} (the API server could not resolve the caller's roles)",
                delay_seconds=_ROLES_UNRESOLVED_RETRY_SECONDS,
            )
        return errors.PermanentError(f"{what}: {message}", reason="Forbidden")
    # 408 and 425 come from a proxy in front of the API server (which itself answers 504).
    if status in (401, 408, 410, 425, 429) or status >= 500:
        delay = _retry_after_seconds(retry_after, parsed)
        return errors.RetryableError(f"{what}: {message}", delay_seconds=delay)
    return errors.PermanentError(f"{what}: {message}", reason=parsed.reason or f"HTTP{status}")


def is_refusal(status: int, error: errors.LssError) -> bool:
    """Whether an error response is a 403 taken as a refusal for good: before it is
    believed, the caller asks whether the API server is ready (:func:`refused_while_unready`)."""
    return status == 403 and isinstance(error, errors.PermanentError)


def refused_while_unready(error: errors.LssError) -> errors.RetryableError:
    """A 403 from an API server that is not ready is no verdict yet.

    An API server that has just started serves requests before its RBAC informers have
    synced: it finds no binding at all and answers a plain "cannot get resource" (without the
    ``RBAC: ... not found`` that :func:`translate_error` already retries). It answers
    ``/readyz`` with 200 only once they have synced, so such a refusal is tried again; one
    from a ready API server stands. (Behind a load balancer, ``/readyz`` may reach another,
    ready instance: the refusal then stands until the next pass.)
    """
    return errors.RetryableError(
        f"{error} (the API server is not ready yet)",
        delay_seconds=_ROLES_UNRESOLVED_RETRY_SECONDS,
    )


def _retry_after_seconds(header: str | None, parsed: _Status) -> float | None:
    if header is not None and header.strip().isdigit():
        return float(header.strip())
    if parsed.details is not None and parsed.details.retryAfterSeconds is not None:
        return float(parsed.details.retryAfterSeconds)
    return None


def _result_of(error: errors.LssError) -> metrics_module.KubeResult:
    # Order matters: ConflictError is a RetryableError.
    if isinstance(error, errors.NotFoundError):
        return metrics_module.KubeResult.NOT_FOUND
    if isinstance(error, errors.AlreadyExistsError):
        return metrics_module.KubeResult.ALREADY_EXISTS
    if isinstance(error, errors.ConflictError):
        return metrics_module.KubeResult.CONFLICT
    if isinstance(error, errors.InvalidObjectError):
        return metrics_module.KubeResult.INVALID
    if isinstance(error, errors.RetryableError):
        return metrics_module.KubeResult.RETRYABLE
    return metrics_module.KubeResult.ERROR


def _decode(data: bytes, *, decode: Decode[Any] | None, what: str) -> Any:
    try:
        return (decode or as_dict)(data)
    except msgspec.ValidationError as error:
        match = _MSGSPEC_PATH.search(str(error))
        field = match["path"] if match else "(object)"
        raise errors.InvalidObjectError(
            f"{what}: cannot decode the object: {error}", field=field or "(object)"
        ) from error
    except msgspec.DecodeError as error:
        raise errors.RetryableError(
            f"{what}: malformed response from the API server: {error}"
        ) from error


def to_body(body: object) -> Any:
    """``body`` as JSON-ready builtins: dicts and lists pass through, structs are converted.

    kubernetes_asyncio serialises bodies with ``json.dumps``, which knows no msgspec structs.
    """
    if isinstance(body, Mapping | list):
        return body
    return msgspec.to_builtins(body)


def _body_name(body: Any) -> str | None:
    if isinstance(body, Mapping):
        metadata = body.get("metadata") or {}
        name = metadata.get("name") or metadata.get("generateName")
        return str(name) if name else None
    return None


def _field_manager(field_manager: str | None) -> list[tuple[str, str]]:
    return [("fieldManager", field_manager)] if field_manager else []


def _describe(
    resource: ApiResource,
    *,
    namespace: str | None,
    name: str | None,
    subresource: str | None = None,
) -> str:
    target = "/".join(part for part in (namespace, name) if part) or "(all)"
    suffix = f" ({subresource})" if subresource else ""
    return f"{resource.kind} {target}{suffix}"
