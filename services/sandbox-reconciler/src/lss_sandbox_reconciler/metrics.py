"""The sandbox reconciler's Prometheus metrics, created explicitly on the service's registry.

Importing this module creates nothing. Names follow ``llmsafespace_sandbox_<what>_<unit>``
(STYLE convention 8); the seed's ``llmsafespace_sandboxes_*`` counters are renamed to the
``sandbox`` subsystem and its startup histogram loses the ``runtime`` label (a user-chosen
string) and keeps ``launch``. Labels come from closed sets only: ``kind`` and ``verb`` are
the enums below, ``reason`` is one of the reconciler's condition reasons.
"""

from __future__ import annotations

import dataclasses
import enum
import typing

import prometheus_client

_PREFIX = "llmsafespace_sandbox"

# A cold start on a real node takes seconds (image pull); on kwok well under one.
STARTUP_BUCKETS_SECONDS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)


# One pass on a local API server takes milliseconds; a loaded one, tens to hundreds.
PASS_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Stage(enum.StrEnum):
    """A stage of one reconcile pass (``pass_stage_seconds``)."""

    OBSERVE = "observe"
    CHILDREN = "children"
    STATUS = "status"


class WriteKind(enum.StrEnum):
    """What an API write touched."""

    SANDBOX = "Sandbox"
    SANDBOX_STATUS = "SandboxStatus"
    NAMESPACE = "Namespace"
    SERVICE_ACCOUNT = "ServiceAccount"
    NETWORK_POLICY = "NetworkPolicy"
    CILIUM_NETWORK_POLICY = "CiliumNetworkPolicy"
    SERVICE = "Service"
    PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"
    POD = "Pod"
    EVENT = "Event"


class WriteVerb(enum.StrEnum):
    """The kind of write."""

    CREATE = "create"
    REPLACE = "replace"
    PATCH = "patch"
    DELETE = "delete"
    UPDATE_STATUS = "update-status"


@dataclasses.dataclass(frozen=True, slots=True)
class SandboxMetrics:
    """The reconciler's metrics on one registry."""

    created_total: prometheus_client.Counter
    deleted_total: prometheus_client.Counter
    failed_total: prometheus_client.Counter
    startup_duration_seconds: prometheus_client.Histogram
    api_writes_total: prometheus_client.Counter
    cleanup_failures_total: prometheus_client.Counter
    refused_writes_total: prometheus_client.Counter
    conflicts_total: prometheus_client.Counter
    hint_delay_seconds: prometheus_client.Histogram
    pass_stage_seconds: prometheus_client.Histogram
    own_write_hints_total: prometheus_client.Counter
    vanished_total: prometheus_client.Counter

    @classmethod
    def register(cls, registry: prometheus_client.CollectorRegistry) -> typing.Self:
        return cls(
            created_total=prometheus_client.Counter(
                f"{_PREFIX}_created_total",
                "Sandboxes whose children the reconciler started creating (Pending → Creating).",
                registry=registry,
            ),
            deleted_total=prometheus_client.Counter(
                f"{_PREFIX}_deleted_total",
                "Sandboxes whose finalizer was removed after every child was gone.",
                registry=registry,
            ),
            failed_total=prometheus_client.Counter(
                f"{_PREFIX}_failed_total",
                "Sandboxes that entered phase Failed, by condition reason.",
                ["reason"],
                registry=registry,
            ),
            startup_duration_seconds=prometheus_client.Histogram(
                f"{_PREFIX}_startup_duration_seconds",
                "Sandbox creationTimestamp → first Running (second precision at the start).",
                ["launch"],
                buckets=STARTUP_BUCKETS_SECONDS,
                registry=registry,
            ),
            api_writes_total=prometheus_client.Counter(
                f"{_PREFIX}_api_writes_total",
                "Kubernetes API writes attempted by the reconciler, by object kind and verb.",
                ["kind", "verb"],
                registry=registry,
            ),
            cleanup_failures_total=prometheus_client.Counter(
                f"{_PREFIX}_cleanup_failures_total",
                "Deletes of a sandbox's children that failed (the finalizer stays).",
                ["kind"],
                registry=registry,
            ),
            refused_writes_total=prometheus_client.Counter(
                f"{_PREFIX}_refused_writes_total",
                "Passes ended by a write the API server refused for good (403, 422), by "
                "condition reason (Forbidden, WriteRejected, CleanupFailed); each is re-checked "
                "after LSS_RECONCILE__REFUSED_WRITE_RETRY_SECONDS.",
                ["reason"],
                registry=registry,
            ),
            conflicts_total=prometheus_client.Counter(
                f"{_PREFIX}_conflicts_total",
                "Writes answered 409 Conflict, each followed by a fresh observe and plan.",
                registry=registry,
            ),
            hint_delay_seconds=prometheus_client.Histogram(
                f"{_PREFIX}_hint_delay_seconds",
                "Watcher observed the change (the hint's observedAt) → this reconciler starts "
                "handling the hint (same clock only on one machine).",
                buckets=PASS_BUCKETS_SECONDS,
                registry=registry,
            ),
            pass_stage_seconds=prometheus_client.Histogram(
                f"{_PREFIX}_pass_stage_seconds",
                "Duration of one stage of a reconcile pass (observe, apply the child writes, "
                "write the status).",
                ["stage"],
                buckets=PASS_BUCKETS_SECONDS,
                registry=registry,
            ),
            own_write_hints_total=prometheus_client.Counter(
                f"{_PREFIX}_own_write_hints_total",
                "Hints that announced a write this reconciler made itself, acknowledged "
                "without a pass.",
                registry=registry,
            ),
            vanished_total=prometheus_client.Counter(
                f"{_PREFIX}_vanished_during_pass_total",
                "Passes whose Sandbox was deleted while they ran (a write answered 404): "
                "ended with nothing left to do.",
                registry=registry,
            ),
        )

    def count_write(self, *, kind: WriteKind, verb: WriteVerb) -> None:
        """One API write attempted."""
        self.api_writes_total.labels(kind=kind.value, verb=verb.value).inc()
