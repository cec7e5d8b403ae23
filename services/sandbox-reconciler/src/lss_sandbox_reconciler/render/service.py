"""The sandbox's ClusterIP Service on the agent port, and the endpoint it gives (pure).

The Service selects the pod by the sandbox's UID label, so it also follows a claimed warm pod
once that pod is relabelled. Only Ready addresses are published: the endpoint answers only
when the agent says it is ready.
"""

from __future__ import annotations

from typing import Any, Final

from lss_sandbox_reconciler import merge, names
from lss_sandbox_reconciler.render import owner as owner_module

COMPONENT: Final = "service"
PORT_NAME: Final = "http"


def render_service(owner: owner_module.Owner) -> dict[str, Any]:
    """The Service manifest."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner_module.child_metadata(
            owner, name=names.service_name(owner.name), component=COMPONENT
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": owner_module.selector(owner),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": merge.AGENT_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
            "publishNotReadyAddresses": False,
        },
    }


def endpoint(owner: owner_module.Owner, *, cluster_domain: str) -> str:
    """``status.endpoint``: the Service's DNS name (the agent listens on port 8080)."""
    service = names.service_name(owner.name)
    return f"{service}.{owner.child_namespace}.svc.{cluster_domain}"
