"""The per-sandbox namespace under namespace isolation (pure).

It enforces Pod Security ``restricted`` itself, so a sandbox pod is admitted only if it meets
the contract wherever it runs, names its sandbox by label (no cross-namespace owners), and is
enabled for sandboxes (``labels.NAMESPACE_ENABLED``: the controllers write only in such
namespaces, ``deploy/rbac/scope.yaml``).
"""

from __future__ import annotations

from typing import Any, Final

from lss_common.models import labels
from lss_sandbox_reconciler.render import owner as owner_module

COMPONENT: Final = "namespace"
POD_SECURITY_LABELS: Final = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def render_namespace(owner: owner_module.Owner) -> dict[str, Any] | None:
    """The isolation namespace; None when children live in the sandbox's own namespace."""
    if not owner.is_cross_namespace:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": owner.child_namespace,
            "labels": {
                **owner_module.child_labels(owner, component=COMPONENT),
                **POD_SECURITY_LABELS,
                labels.NAMESPACE_ENABLED: labels.NAMESPACE_ENABLED_VALUE,
            },
        },
    }
