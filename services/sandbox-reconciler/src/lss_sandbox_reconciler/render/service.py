"""The sandbox's ClusterIP Service on the agent port, and the endpoint it gives (pure).

A sandbox's own Service (``sandbox-<name>``) selects its pod by the sandbox's UID label. A
warm pod is prepared with a Service of its own (``warm-<pod>``, created by the pool manager
with the pod, selecting the pod's WarmPod-UID label): a sandbox that adopts the pod adopts
that Service too (its owner reference only; the selector, and so the endpoints, and the
labels, which the controller manager copies onto the endpoints, stay as they are), which
takes a Service create and its endpoint churn off the claim's path. One the reconciler
creates itself (a claim that came before the pool manager's create, or a re-creation)
carries the sandbox's labels from the start. Only Ready
addresses are published: the endpoint answers only when the agent says it is ready.
"""

from __future__ import annotations

from typing import Any, Final

from lss_common.models import labels
from lss_sandbox_reconciler import merge, names
from lss_sandbox_reconciler.render import owner as owner_module

COMPONENT: Final = "service"
PORT_NAME: Final = "http"


def service_spec(selector: dict[str, str]) -> dict[str, Any]:
    """The spec of a sandbox's or a warm pod's Service: ClusterIP, the agent port."""
    return {
        "type": "ClusterIP",
        "selector": dict(selector),
        "ports": [
            {
                "name": PORT_NAME,
                "port": merge.AGENT_PORT,
                "targetPort": PORT_NAME,
                "protocol": "TCP",
            }
        ],
        "publishNotReadyAddresses": False,
    }


def render_service(owner: owner_module.Owner) -> dict[str, Any]:
    """The sandbox's own Service manifest."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner_module.child_metadata(
            owner, name=names.service_name(owner.name), component=COMPONENT
        ),
        "spec": service_spec(owner_module.selector(owner)),
    }


def warm_selector(warm_pod_uid: str) -> dict[str, str]:
    """What a warm pod's Service selects: the pod's WarmPod-UID label."""
    return {labels.WARM_POD_UID: warm_pod_uid}


def render_warm_service(
    owner: owner_module.Owner, *, pod_name: str, warm_pod_uid: str
) -> dict[str, Any]:
    """A warm pod's Service created by the sandbox that adopted the pod (by the claim when
    the pool manager has not made it, or by the planner when it is missing)."""
    metadata = owner_module.child_metadata(
        owner, name=names.warm_service_name(pod_name), component=COMPONENT
    )
    metadata["labels"] = {
        **owner_module.child_labels(owner, component=COMPONENT),
        labels.WARM_POD_UID: warm_pod_uid,
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": service_spec(warm_selector(warm_pod_uid)),
    }


def service_endpoint(name: str, *, namespace: str, cluster_domain: str) -> str:
    """``status.endpoint`` for the Service ``name`` (the agent listens on port 8080)."""
    return f"{name}.{namespace}.svc.{cluster_domain}"


def endpoint(owner: owner_module.Owner, *, cluster_domain: str) -> str:
    """``status.endpoint`` of the sandbox's own Service."""
    return service_endpoint(
        names.service_name(owner.name),
        namespace=owner.child_namespace,
        cluster_domain=cluster_domain,
    )
