"""The pool manager's Prometheus metrics (the seed's warm pool metrics), created explicitly.

Importing this module creates nothing. Names follow ``llmsafespace_warmpool_<what>[_unit]``.
Counters carry closed-enum labels only (``operation``, ``reason``, ``result``). The two gauges
are per pool (``namespace``, ``pool``): a pool's size is meaningless summed with other pools', and
WarmPools are few, created by operators, and their series are removed when the pool is
deleted — the one departure from "labels from closed sets" (STYLE convention 8), as in
kube-state-metrics. With several replicas, aggregate the gauges with ``max by (namespace,
pool)`` over the replica that handled the pool last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing

import prometheus_client

from lss_common.observability import metrics as shared_metrics
from lss_pool_manager import sizing

_SUBSYSTEM = "warmpool"


SIZE_STATUSES = ("available", "assigned", "pending")
"""The ``status`` label values of ``llmsafespace_warmpool_size``, in ``record_sizing``'s order."""


@dataclasses.dataclass(frozen=True, slots=True)
class PoolManagerMetrics:
    """Everything the pool manager counts."""

    size: prometheus_client.Gauge
    utilization_ratio: prometheus_client.Gauge
    scaling_operations_total: prometheus_client.Counter
    pods_created_total: prometheus_client.Counter
    pods_deleted_total: prometheus_client.Counter
    pools_deleted_total: prometheus_client.Counter
    preloads_total: prometheus_client.Counter
    pod_failures_total: prometheus_client.Counter
    service_create_failures_total: prometheus_client.Counter
    leaked_claims_released_total: prometheus_client.Counter
    retired_pods_total: prometheus_client.Counter
    orphan_pods_deleted_total: prometheus_client.Counter
    own_write_hints_total: prometheus_client.Counter
    service_hints_total: prometheus_client.Counter
    batched_pool_passes_total: prometheus_client.Counter
    refused_writes_total: prometheus_client.Counter

    @classmethod
    def register(cls, registry: prometheus_client.CollectorRegistry) -> typing.Self:
        """Create the metrics in ``registry``; call once per registry."""
        common: dict[str, typing.Any] = {
            "namespace": shared_metrics.NAMESPACE,
            "subsystem": _SUBSYSTEM,
            "registry": registry,
        }
        return cls(
            size=prometheus_client.Gauge(
                "size",
                "WarmPods of a pool by status (available, assigned, pending), as last sized.",
                ["namespace", "pool", "status"],
                **common,
            ),
            utilization_ratio=prometheus_client.Gauge(
                "utilization_ratio",
                "Assigned WarmPods over all WarmPods of a pool (0..1), as last sized.",
                ["namespace", "pool"],
                **common,
            ),
            scaling_operations_total=prometheus_client.Counter(
                "scaling_operations_total",
                "Sizing passes that created or removed WarmPods, by operation.",
                ["operation"],
                **common,
            ),
            pods_created_total=prometheus_client.Counter(
                "pods_created_total", "WarmPods created (with their pods).", **common
            ),
            own_write_hints_total=prometheus_client.Counter(
                "own_write_hints_total",
                "Hints that announced a write the pool manager made itself, acknowledged "
                "without a pass.",
                **common,
            ),
            service_hints_total=prometheus_client.Counter(
                "service_hints_total",
                "Hints of a warm pod's Service acknowledged without a pass (no decision of "
                "the pool manager depends on the Service).",
                **common,
            ),
            batched_pool_passes_total=prometheus_client.Counter(
                "batched_pool_passes_total",
                "Pool wake-ups by a WarmPod change that the refill batching deferred "
                "(deferred: its pass runs after LSS_POOL__REFILL_BATCH_SECONDS) or covered "
                "(acknowledged: a deferred pass was due).",
                ["how"],
                **common,
            ),
            refused_writes_total=prometheus_client.Counter(
                "refused_writes_total",
                "Passes ended by a write the API server refused for good (403, 422) that "
                "nothing else reported; each is re-checked after "
                "LSS_POOL__REFUSED_WRITE_RETRY_SECONDS.",
                **common,
            ),
            pods_deleted_total=prometheus_client.Counter(
                "pods_deleted_total",
                "WarmPods deleted by the pool manager, by reason.",
                ["reason"],
                **common,
            ),
            pools_deleted_total=prometheus_client.Counter(
                "pools_deleted_total",
                "WarmPools whose deletion completed (finalizer removed).",
                **common,
            ),
            pod_failures_total=prometheus_client.Counter(
                "pod_failures_total",
                "WarmPods failed by their pod (reason PodFailed: failed, crash loop, image "
                "pull back-off; NotReadyInTime; PodModified, PodUnverified: not the pod "
                "recorded at creation), each recorded on its pool's creation backoff.",
                ["reason"],
                **common,
            ),
            service_create_failures_total=prometheus_client.Counter(
                "service_create_failures_total",
                "Services prepared with a warm pod whose create failed (the pod is kept; a "
                "claim creates the Service).",
                **common,
            ),
            preloads_total=prometheus_client.Counter(
                "preloads_total",
                "Preloads of warm pods that ended, by result (succeeded, script_failed, "
                "script_timed_out, exec_failed, interrupted).",
                ["result"],
                **common,
            ),
            retired_pods_total=prometheus_client.Counter(
                "retired_pods_total",
                "Pods of WarmPods the pool manager deleted (scale-down, expiry, failure, "
                "outdated), by what became of the pod: deleted by the pool manager, gone "
                "already, not_its_own (adopted or someone else's), changed since read, or "
                "failed (left to the garbage collector).",
                ["result"],
                **common,
            ),
            orphan_pods_deleted_total=prometheus_client.Counter(
                "orphan_pods_deleted_total",
                "Warm pods deleted because their WarmPod was gone and nothing else had "
                "deleted them (the periodic look at each pool's pods).",
                **common,
            ),
            leaked_claims_released_total=prometheus_client.Counter(
                "leaked_claims_released_total",
                "Assigned WarmPods released because their sandbox was gone "
                "(sandbox_gone) or did not reference them (not_referenced).",
                ["reason"],
                **common,
            ),
        )

    def record_sizing(self, *, namespace: str, pool: str, counts: sizing.Counts) -> None:
        """Set the pool's gauges from a sizing pass."""
        values = (counts.available, counts.assigned, counts.pending)
        for status, value in zip(SIZE_STATUSES, values, strict=True):
            self.size.labels(namespace, pool, status).set(value)
        if counts.utilization is not None:
            self.utilization_ratio.labels(namespace, pool).set(counts.utilization)

    def forget_pool(self, *, namespace: str, pool: str) -> None:
        """Remove a deleted pool's series."""
        for status in ("available", "assigned", "pending"):
            with contextlib.suppress(KeyError):
                self.size.remove(namespace, pool, status)
        with contextlib.suppress(KeyError):
            self.utilization_ratio.remove(namespace, pool)
