"""The sandbox's own ServiceAccount, with no API token mounted (pure).

A per-sandbox account gives each sandbox an identity of its own that holds no RBAC binding;
``automountServiceAccountToken: false`` here *and* on the pod keeps a token out of the
container even if someone binds a role to the account later.
"""

from __future__ import annotations

from typing import Any, Final

from lss_sandbox_reconciler import names
from lss_sandbox_reconciler.render import owner as owner_module

COMPONENT: Final = "service-account"


def render_service_account(owner: owner_module.Owner) -> dict[str, Any]:
    """The ServiceAccount manifest."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": owner_module.child_metadata(
            owner, name=names.service_account_name(owner.name), component=COMPONENT
        ),
        "automountServiceAccountToken": False,
    }
