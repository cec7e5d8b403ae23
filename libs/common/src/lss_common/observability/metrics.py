"""Shared Prometheus metrics: a registry factory, closed label enums, explicit registration.

Importing this module defines classes and enums only; it creates no metric and touches no
registry (the seed registered metrics in ``init()``, and half were never registered). A service
calls ``create_registry()`` once, then ``<Group>Metrics.register(registry)`` for each group it
uses, and passes the returned objects explicitly. Service-specific metrics live in the
service's own ``metrics.py`` and follow the same pattern; the bus's group is
``lss_common.bus.metrics.BusMetrics``.

Names follow ``llmsafespace_<subsystem>_<what>_<unit>``; counters end in ``_total``. Label
values come only from the enums below (or from names fixed in code, such as task names), never
from pod names, UIDs or error text, so that series cardinality stays bounded.

This module must not hold state: no global registry, no metric objects at module level.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Self

import prometheus_client

NAMESPACE = "llmsafespace"

# Durations of API calls and handlers: from a warm claim (~ms) to a slow apiserver (~10 s).
DURATION_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class Outcome(enum.StrEnum):
    """What happened to a bus message (convention 2)."""

    ACK = "ack"
    NAK = "nak"
    TERM = "term"
    ERROR = "error"


class Launch(enum.StrEnum):
    """How a sandbox got its pod."""

    WARM = "warm"
    COLD = "cold"


class Kind(enum.StrEnum):
    """The custom resource kinds, as lower-case tokens (also used in subjects and logs)."""

    SANDBOX = "sandbox"
    WARMPOOL = "warmpool"
    WARMPOD = "warmpod"
    SANDBOXPROFILE = "sandboxprofile"
    RUNTIMEENVIRONMENT = "runtimeenvironment"


class KubeVerb(enum.StrEnum):
    """The API operations ``lss_common.kube.objects`` performs."""

    GET = "get"
    LIST = "list"
    CREATE = "create"
    REPLACE = "replace"
    PATCH = "patch"
    DELETE = "delete"


class KubeResult(enum.StrEnum):
    """An API call's result, mapped from the HTTP status (never the raw code or message)."""

    OK = "ok"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    ALREADY_EXISTS = "already_exists"
    INVALID = "invalid"
    RETRYABLE = "retryable"
    ERROR = "error"


class TaskExit(enum.StrEnum):
    """Why a guarded task that should have run until shutdown ended."""

    ERROR = "error"
    RETURNED = "returned"
    CANCELLED = "cancelled"


class PublishResult(enum.StrEnum):
    """What JetStream did with a published message."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    """Refused by its expected-sequence condition: another writer stored a record of the
    subject first (the status records' compare-and-set; expected, not an error)."""
    ERROR = "error"


def create_registry(*, process_metrics: bool = True) -> prometheus_client.CollectorRegistry:
    """A fresh registry; ``process_metrics`` adds the standard process, platform and GC series.

    Each ``Service`` serves exactly one registry, so tests can build as many as they like
    without "duplicated timeseries" errors from the library's global default registry.
    """
    registry = prometheus_client.CollectorRegistry(auto_describe=True)
    if process_metrics:
        prometheus_client.ProcessCollector(registry=registry)
        prometheus_client.PlatformCollector(registry=registry)
        prometheus_client.GCCollector(registry=registry)
    return registry


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeMetrics:
    """Health of the service runtime itself (``lss_common.runtime``)."""

    task_exits_total: prometheus_client.Counter
    timer_failures_total: prometheus_client.Counter
    event_loop_lag_seconds: prometheus_client.Gauge

    @classmethod
    def register(cls, registry: prometheus_client.CollectorRegistry) -> Self:
        """Create the group's metrics in ``registry``; call once per registry."""
        return cls(
            task_exits_total=prometheus_client.Counter(
                "task_exits_total",
                "Background tasks that ended before shutdown (the service then stops).",
                ["task", "exit"],
                namespace=NAMESPACE,
                subsystem="runtime",
                registry=registry,
            ),
            timer_failures_total=prometheus_client.Counter(
                "timer_failures_total",
                "Runs of a periodic timer that raised (the timer keeps running).",
                ["task"],
                namespace=NAMESPACE,
                subsystem="runtime",
                registry=registry,
            ),
            event_loop_lag_seconds=prometheus_client.Gauge(
                "event_loop_lag_seconds",
                "How late the last event-loop heartbeat woke up.",
                namespace=NAMESPACE,
                subsystem="runtime",
                registry=registry,
            ),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class KubeMetrics:
    """Kubernetes API calls made through ``lss_common.kube``."""

    requests_total: prometheus_client.Counter
    request_duration_seconds: prometheus_client.Histogram

    @classmethod
    def register(cls, registry: prometheus_client.CollectorRegistry) -> Self:
        """Create the group's metrics in ``registry``; call once per registry."""
        return cls(
            requests_total=prometheus_client.Counter(
                "requests_total",
                "Kubernetes API requests by verb, resource (its plural: the few kinds the "
                "services use, fixed in code) and result.",
                ["verb", "resource", "result"],
                namespace=NAMESPACE,
                subsystem="kube",
                registry=registry,
            ),
            request_duration_seconds=prometheus_client.Histogram(
                "request_duration_seconds",
                "Kubernetes API request duration, including reading the body.",
                ["verb"],
                namespace=NAMESPACE,
                subsystem="kube",
                buckets=DURATION_BUCKETS_SECONDS,
                registry=registry,
            ),
        )
