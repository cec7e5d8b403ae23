"""The label vocabulary that ties child objects to the LLMSafeSpace object they belong to.

Every child the services create (pods, Services, NetworkPolicies, ServiceAccounts, PVCs)
carries ``app=llmsafespace``: the watcher watches children by that label only, so its memory
grows with our objects, not with the cluster. A child in the same namespace as its owner is
tied to it by a controller ``ownerReference`` (garbage collection then works too). A child in
*another* namespace (namespace-per-sandbox isolation) cannot have an owner reference, so it
names its owner with the labels below; the watcher maps either to the owner's hint key.

Label values are limited to 63 characters: a cross-namespace child can only name an owner
whose name fits (same-namespace children use owner references, which have no such limit). A
child without an owner reference whose owner's name does not fit a label (a retained
PersistentVolumeClaim) names it with the annotation :data:`SANDBOX_NAME_ANNOTATION`.

Pure constants: no I/O, no logic.
"""

from __future__ import annotations

from typing import Final

from lss_common.models import kinds

APP: Final = "app"
APP_VALUE: Final = "llmsafespace"
#: Selects every object the LLMSafeSpace services create.
APP_SELECTOR: Final = f"{APP}={APP_VALUE}"

#: The Sandbox a child belongs to (its name), and that Sandbox's namespace when it differs
#: from the child's (unset: the child's own namespace).
SANDBOX_NAME: Final = f"{kinds.GROUP}/sandbox-name"
SANDBOX_NAMESPACE: Final = f"{kinds.GROUP}/sandbox-namespace"

#: The Sandbox's name on a child without an owner reference when it is too long for a label.
SANDBOX_NAME_ANNOTATION: Final = f"{kinds.GROUP}/sandbox-name"

#: The WarmPod a child (its pod) belongs to, and that WarmPod's namespace when it differs.
WARM_POD_NAME: Final = f"{kinds.GROUP}/warmpod-name"
WARM_POD_NAMESPACE: Final = f"{kinds.GROUP}/warmpod-namespace"

#: The UID of the WarmPod a warm pod was created for. Set on the pod (and kept when a sandbox
#: adopts it) and used as the selector of the Service prepared with it, so that Service
#: follows the pod through the claim without a change.
WARM_POD_UID: Final = f"{kinds.GROUP}/warmpod-uid"

#: The WarmPool a WarmPod or a warm pod's pod was created for (informational; a WarmPod's
#: authoritative pool is ``spec.poolRef``).
WARM_POOL_NAME: Final = f"{kinds.GROUP}/warmpool-name"

#: On a PersistentVolumeClaim someone made: it may be mounted into sandboxes of its namespace
#: as a shared volume. ``"true"``: read-write or read-only; ``"read-only"``: read-only only.
#: Without it a claim is never mounted (it may hold another sandbox's or another user's data).
SHAREABLE: Final = f"{kinds.GROUP}/shareable"
SHAREABLE_READ_WRITE: Final = "true"
SHAREABLE_READ_ONLY: Final = "read-only"

#: On a namespace: a platform team enabled it for sandboxes. The controllers write pods,
#: Services, ServiceAccounts, claims and network policies only in such namespaces
#: (``deploy/rbac/scope.yaml``, enforced by the API server); isolation namespaces carry it.
NAMESPACE_ENABLED: Final = f"{kinds.GROUP}/sandboxes"
NAMESPACE_ENABLED_VALUE: Final = "enabled"
