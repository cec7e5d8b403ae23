"""Who owns a child and how the child says so: namespace, labels, owner reference (pure).

Every child carries ``app=llmsafespace`` (the watcher selects children by it) and the
sandbox's UID label, which is also what the Service and the policies select the pod by: a UID
always fits a label value, a Sandbox name (up to 253 characters) does not. A child in the
sandbox's own namespace gets a controller owner reference; under namespace isolation it
cannot (Kubernetes ignores cross-namespace owners), so it names its sandbox with the
``lss_common.models.labels`` name and namespace labels, which the watcher maps back to the
sandbox's key. ``blockOwnerDeletion`` is not set: the finalizer already orders deletion, and
setting it would need extra RBAC (``sandboxes/finalizers``) under OwnerReferencesPermission-
Enforcement.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Final

from lss_common.models import kinds, labels
from lss_common.models import sandbox as sandbox_model
from lss_sandbox_reconciler import merge, names
from lss_sandbox_reconciler import settings as settings_module

#: The UID of the Sandbox a child belongs to; the pod selector of its Service and policies.
SANDBOX_UID: Final = f"{kinds.GROUP}/sandbox-uid"
#: What a child is for (pod, service, ...), for humans and kubectl selectors.
COMPONENT: Final = f"{kinds.GROUP}/component"

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")
_MAX_LABEL_VALUE: Final = 63


@dataclasses.dataclass(frozen=True, slots=True)
class Owner:
    """A sandbox as the owner of its children."""

    name: str
    namespace: str
    uid: str
    child_namespace: str
    """Where the children live: the sandbox's namespace, or its isolation namespace."""

    @property
    def is_cross_namespace(self) -> bool:
        """Whether children live in another namespace (no owner references possible)."""
        return self.child_namespace != self.namespace


def owner_of(obj: sandbox_model.Sandbox, *, settings: settings_module.SandboxOptions) -> Owner:
    """The owner identity of a stored Sandbox (it must have a name, namespace and UID)."""
    meta = obj.metadata
    if not meta.name or not meta.namespace or not meta.uid:
        raise ValueError("a stored Sandbox has a name, a namespace and a UID")
    child_namespace = (
        names.isolation_namespace(meta.uid, prefix=settings.isolation_namespace_prefix)
        if settings.namespace_isolation
        else meta.namespace
    )
    owner = Owner(
        name=meta.name, namespace=meta.namespace, uid=meta.uid, child_namespace=child_namespace
    )
    if owner.is_cross_namespace and not _is_label_value(owner.name):
        raise merge.SpecConflict(
            "under namespace isolation a sandbox name must be a valid label value (at most "
            "63 characters): its children name it by label",
            reason=merge.Reason.INVALID_SPEC,
            field="metadata.name",
        )
    return owner


def _is_label_value(value: str) -> bool:
    return len(value) <= _MAX_LABEL_VALUE and _LABEL_VALUE.match(value) is not None


def selector(owner: Owner) -> dict[str, str]:
    """The labels that select the sandbox's pod (Service, policies)."""
    return {SANDBOX_UID: owner.uid}


def child_labels(owner: Owner, *, component: str) -> dict[str, str]:
    """Labels of every child: app, component, sandbox UID, and the name labels that fit."""
    result = {labels.APP: labels.APP_VALUE, COMPONENT: component, SANDBOX_UID: owner.uid}
    if _is_label_value(owner.name):
        result[labels.SANDBOX_NAME] = owner.name
    if owner.is_cross_namespace:
        result[labels.SANDBOX_NAMESPACE] = owner.namespace
    return result


def owner_reference(owner: Owner) -> dict[str, Any]:
    """The controller owner reference to the Sandbox (same namespace only)."""
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.SANDBOX.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
    }


def child_metadata(
    owner: Owner, *, name: str, component: str, owned: bool = True
) -> dict[str, Any]:
    """metadata of a child; ``owned=False`` leaves the owner reference out (retained PVC)."""
    result: dict[str, Any] = {
        "name": name,
        "namespace": owner.child_namespace,
        "labels": child_labels(owner, component=component),
    }
    if owned and not owner.is_cross_namespace:
        result["ownerReferences"] = [owner_reference(owner)]
    elif not _is_label_value(owner.name):
        # No owner reference and no name label (too long): the watcher maps the child's
        # changes to its Sandbox by this annotation (a retained claim).
        result["annotations"] = {labels.SANDBOX_NAME_ANNOTATION: owner.name}
    return result


def is_owned_by(child: dict[str, Any] | None, *, owner: Owner) -> bool:
    """Whether an observed child is this sandbox's (never adopt another's): it carries the
    sandbox's UID label, or no such label and a controller reference to the Sandbox — the
    Service prepared with a warm pod, which the claim re-owns without relabelling it (new
    labels would make the controller manager rewrite its Endpoints and EndpointSlice)."""
    if child is None:
        return False
    metadata = child.get("metadata") or {}
    labelled = (metadata.get("labels") or {}).get(SANDBOX_UID)
    if labelled is not None:
        return bool(labelled == owner.uid)
    return any(
        ref.get("controller") is True
        and ref.get("uid") == owner.uid
        and ref.get("kind") == kinds.SANDBOX.kind
        and ref.get("apiVersion") == kinds.API_VERSION
        for ref in metadata.get("ownerReferences") or ()
    )
