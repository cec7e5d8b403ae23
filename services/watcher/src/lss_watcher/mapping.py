"""Which owner keys a change of one object must also wake (pure).

An object's own key (``sandbox/ns/name``) is added by the tracker; this module finds the
*other* keys, its owners, from these sources, in this order and without duplicates:

1. owner references to an LLMSafeSpace kind (any of them, controller or not: a warm pod's pod
   re-owned by the Sandbox that claimed it keeps telling its WarmPod too); the owner lives in
   the object's namespace, or is cluster-scoped (RuntimeEnvironment);
2. the owner labels of ``lss_common.models.labels`` (a child in another namespace than its
   owner cannot carry an owner reference);
3. a WarmPod's ``spec.poolRef``: a WarmPod change wakes its WarmPool;
4. when nothing above names an owner, the annotation ``labels.SANDBOX_NAME_ANNOTATION`` (a
   retained claim of a sandbox whose name is too long for a label).

References to other groups (a ReplicaSet, a Deployment) are ignored. No I/O; the inputs are
the trimmed views of ``views.py``.
"""

from __future__ import annotations

from typing import Final

from lss_common.logic import subjects
from lss_common.models import kinds, labels
from lss_watcher import resources, views

ObjectKey = subjects.ObjectKey

#: Kind (as in owner references) → (hint kind token, namespaced).
KIND_TOKENS: Final[dict[str, tuple[str, bool]]] = {
    resource.kind: (resource.singular, resource.namespaced) for resource in kinds.ALL
}

_LABEL_OWNERS: Final = (
    (labels.SANDBOX_NAME, labels.SANDBOX_NAMESPACE, kinds.SANDBOX.singular),
    (labels.WARM_POD_NAME, labels.WARM_POD_NAMESPACE, kinds.WARM_POD.singular),
    (labels.WARM_POOL_NAME, None, kinds.WARM_POOL.singular),
)


def own_key(resource: resources.WatchedResource, view: views.ObjectView) -> ObjectKey | None:
    """The object's own hint key; None for child kinds (they have none)."""
    if resource.own_kind is None:
        return None
    meta = view.metadata
    return ObjectKey(resource.own_kind, meta.namespace if resource.namespaced else None, meta.name)


def owner_keys(
    resource: resources.WatchedResource, view: views.ObjectView
) -> tuple[ObjectKey, ...]:
    """The owner keys a change of ``view`` also wakes (see the module docstring)."""
    meta = view.metadata
    namespace = meta.namespace or None
    found: list[ObjectKey] = []
    for ref in meta.owner_references or ():
        key = _owner_reference_key(ref, namespace=namespace)
        if key is not None:
            found.append(key)
    if meta.labels:
        for name_label, namespace_label, kind in _LABEL_OWNERS:
            name = meta.labels.get(name_label)
            if not name:
                continue
            owner_namespace = (meta.labels.get(namespace_label) if namespace_label else None) or (
                namespace
            )
            if owner_namespace is not None:
                found.append(ObjectKey(kind, owner_namespace, name))
    if (
        not found
        and namespace is not None
        and meta.annotations is not None
        and meta.annotations.sandbox_name
    ):
        # A child with no owner reference and no name label: its Sandbox's name did not fit
        # a label (a retained claim of a long-named sandbox).
        found.append(ObjectKey(kinds.SANDBOX.singular, namespace, meta.annotations.sandbox_name))
    if resource.name is resources.Name.WARM_POD and view.spec and view.spec.pool_ref:
        pool = view.spec.pool_ref
        pool_namespace = pool.namespace or namespace
        if pool.name and pool_namespace is not None:
            found.append(ObjectKey(kinds.WARM_POOL.singular, pool_namespace, pool.name))
    own = own_key(resource, view)
    return tuple(key for key in dict.fromkeys(found) if key != own)


def _owner_reference_key(ref: views.OwnerRef, *, namespace: str | None) -> ObjectKey | None:
    group = ref.api_version.partition("/")[0]
    if group != kinds.GROUP or not ref.name:
        return None
    token = KIND_TOKENS.get(ref.kind)
    if token is None:
        return None
    kind, namespaced = token
    if not namespaced:
        return ObjectKey(kind, None, ref.name)
    # A cluster-scoped object cannot be owned by a namespaced one (Kubernetes rejects it for
    # garbage collection); without a namespace there is no key to wake.
    return None if namespace is None else ObjectKey(kind, namespace, ref.name)
