"""Delete an unclaimed WarmPod, then its pod (reads and writes; the caller decides which).

Why the pod is not left to the garbage collector alone: kube-controller-manager's collector
can miss the deletion of a custom resource's object when the API server restarts (its
dependency graph keeps a node for a WarmPod whose deletion it never saw; seen in the
reliability soak, ``bench/chaos.py``), and the pod then runs on, counted by no pool, until
the controller manager restarts. The pod is the costly child (a node's CPU and memory). The
Service prepared with it costs nothing to run and stays the collector's: the pool manager's
role may not delete Services.

Safe against claims, in two steps:

1. the WarmPod is deleted with the resourceVersion the caller decided on. A claim is a CAS on
   that status (``Ready`` to ``Assigned``) before the pod's adoption, so a WarmPod deleted
   at a version the caller saw unclaimed was not claimed since, and can no longer be;
2. the pod is read and deleted only while its controller is still that WarmPod (a claimed
   pod's controller is its Sandbox; a pod of that name made by someone else is not ours),
   with the pod's UID and resourceVersion as preconditions.

A failure of step 2 (the API server unavailable, the delete refused) is logged and counted,
not raised: the WarmPod is gone, so no retried pass would come back to its pod, and the
garbage collector remains the second line.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

from lss_common import errors
from lss_common.kube import client, objects, writes
from lss_common.logic import owners
from lss_common.models import warmpod as warmpod_model
from lss_common.observability import logs
from lss_pool_manager import apply, names, observe
from lss_pool_manager import metrics as metrics_module

_log = logging.getLogger(__name__)


class PodResult(enum.StrEnum):
    """What became of a retired WarmPod's pod (metric label ``result``)."""

    DELETED = "deleted"
    """Deleted by the pool manager."""
    GONE = "gone"
    """Absent, or its deletion had begun (the garbage collector, or a hand)."""
    NOT_ITS_OWN = "not_its_own"
    """Its controller is not the WarmPod (adopted by a sandbox, or someone else's pod)."""
    CHANGED = "changed"
    """Changed between its read and its delete (e.g. adopted): left alone."""
    FAILED = "failed"
    """Its read or delete failed: left to the garbage collector."""


def may_delete_pod(pod: Mapping[str, Any] | None, *, warm_pod_uid: str) -> PodResult | None:
    """None when the retired WarmPod's pod is to be deleted, else why not (pure)."""
    if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return PodResult.GONE
    if not owners.is_controlled_by(pod, kind=warmpod_model.KIND, uid=warm_pod_uid):
        return PodResult.NOT_ITS_OWN
    return None


async def retire_warm_pod(
    kube: client.Kube,
    *,
    namespace: str,
    name: str,
    uid: str,
    resource_version: str,
    metrics: metrics_module.PoolManagerMetrics,
) -> bool:
    """Delete the WarmPod at ``resource_version`` (a version that is not Assigned), then its
    pod. False when the WarmPod was gone already, is a namesake now, or changed since (then
    nothing is deleted)."""
    if not resource_version:
        raise ValueError("retiring a WarmPod needs the resourceVersion it was decided on")
    deleted = await apply.delete_warm_pod(
        kube, namespace=namespace, name=name, uid=uid, resource_version=resource_version
    )
    if not deleted:
        return False
    result = await _delete_pod(kube, namespace=namespace, warm_pod_name=name, warm_pod_uid=uid)
    metrics.retired_pods_total.labels(result.value).inc()
    return True


async def _delete_pod(
    kube: client.Kube, *, namespace: str, warm_pod_name: str, warm_pod_uid: str
) -> PodResult:
    pod_name = names.pod_name(warm_pod_name, uid=warm_pod_uid)
    try:
        pod = await observe.get_pod(kube, namespace=namespace, name=pod_name)
        refusal = may_delete_pod(pod, warm_pod_uid=warm_pod_uid)
        if refusal is not None or pod is None:
            return refusal or PodResult.GONE
        metadata = pod["metadata"]
        deleted = await writes.delete_if_present(
            kube,
            resource=objects.POD,
            namespace=namespace,
            name=pod_name,
            uid=metadata.get("uid"),
            resource_version=metadata.get("resourceVersion"),
        )
    except errors.ConflictError:
        return PodResult.CHANGED  # adopted since its read, most likely: not ours to delete
    except errors.LssError as error:
        with logs.bind(warm_pod=warm_pod_name, pod=pod_name):
            _log.warning(
                "retired warm pod's pod not deleted; left to the garbage collector",
                extra={"error": str(error)},
            )
        return PodResult.FAILED
    return PodResult.DELETED if deleted else PodResult.GONE
