"""The watcher's Prometheus metrics, created explicitly on the registry the service passes in.

Importing this module creates nothing. Labels come from closed sets only: ``kind`` is a
``resources.Name`` (ten values), ``result`` of ``status_records_total`` is
``lss_common.bus.status_publishing.StatusResult``, ``decision`` is ``rounds.Decision``, the
others are the enums below or watch event types.
"""

from __future__ import annotations

import dataclasses
import enum
import typing

import prometheus_client

from lss_common.observability import metrics as shared_metrics

_SUBSYSTEM = "watcher"

# A hint is acknowledged within a millisecond or two on a healthy NATS; the tail matters.
PUBLISH_BUCKETS_SECONDS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.002,
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
    10.0,
    30.0,
)


class Target(enum.StrEnum):
    """Which stream a publish went to."""

    EVENTS = "events"
    STATUS = "status"


class RestartReason(enum.StrEnum):
    """Why a watch ended and was re-opened."""

    EXPIRED = "expired"
    """The API server closed it at timeoutSeconds (normal)."""
    GONE = "gone"
    """410: the resourceVersion is too old; a relist follows."""
    IDLE = "idle"
    """Nothing arrived for watch_idle_timeout_seconds."""
    ERROR = "error"
    """Connection refused or reset, an HTTP error, an ERROR event other than 410."""


class ResyncTrigger(enum.StrEnum):
    """Why a resync round ran."""

    STARTUP = "startup"
    PERIODIC = "periodic"
    RECONNECT = "reconnect"
    REQUEST = "request"
    """A consumer that was just created asked for one (``rounds.py``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WatcherMetrics:
    """Everything the watcher counts and measures."""

    events_total: prometheus_client.Counter
    publish_duration_seconds: prometheus_client.Histogram
    publish_retries_total: prometheus_client.Counter
    watch_restarts_total: prometheus_client.Counter
    relists_total: prometheus_client.Counter
    resyncs_total: prometheus_client.Counter
    resync_requests_total: prometheus_client.Counter
    objects_tracked: prometheus_client.Gauge
    undecodable_total: prometheus_client.Counter
    status_records_total: prometheus_client.Counter
    status_records_dropped_total: prometheus_client.Counter

    @classmethod
    def register(cls, registry: prometheus_client.CollectorRegistry) -> typing.Self:
        """Create the watcher's metrics in ``registry``; call once per registry."""
        common: dict[str, typing.Any] = {
            "namespace": shared_metrics.NAMESPACE,
            "subsystem": _SUBSYSTEM,
            "registry": registry,
        }
        return cls(
            events_total=prometheus_client.Counter(
                "events_total",
                "Watch events received, by resource and type (ADDED, MODIFIED, DELETED, "
                "BOOKMARK, ERROR), plus LISTED for objects seen by a (re)list.",
                ["kind", "type"],
                **common,
            ),
            publish_duration_seconds=prometheus_client.Histogram(
                "publish_duration_seconds",
                "From receiving a change on a watch to JetStream's acknowledgement of its "
                "hint or status record, retries included (lists and resyncs are not timed).",
                ["target"],
                buckets=PUBLISH_BUCKETS_SECONDS,
                **common,
            ),
            publish_retries_total=prometheus_client.Counter(
                "publish_retries_total",
                "Publishes that failed and were retried (a hint is never dropped).",
                ["target"],
                **common,
            ),
            watch_restarts_total=prometheus_client.Counter(
                "watch_restarts_total",
                "Watches that ended and were re-opened, by resource and reason.",
                ["kind", "reason"],
                **common,
            ),
            relists_total=prometheus_client.Counter(
                "relists_total",
                "Full lists after the initial one (410 Gone, or a failed list retried).",
                ["kind"],
                **common,
            ),
            resyncs_total=prometheus_client.Counter(
                "resyncs_total",
                "Full resyncs published (a hint for every live object and owner key).",
                ["trigger"],
                **common,
            ),
            resync_requests_total=prometheus_client.Counter(
                "resync_requests_total",
                "Resync requests received from consumers, by decision (queued: a round will "
                "run for it; coalesced: a round not yet started covers it; ignored: for "
                "another stream; invalid: undecodable).",
                ["decision"],
                **common,
            ),
            objects_tracked=prometheus_client.Gauge(
                "objects_tracked",
                "Objects currently tracked, by resource.",
                ["kind"],
                **common,
            ),
            undecodable_total=prometheus_client.Counter(
                "undecodable_total",
                "Watch lines, objects or statuses that could not be decoded or lack their "
                "identity; logged and skipped.",
                ["kind"],
                **common,
            ),
            status_records_total=prometheus_client.Counter(
                "status_records_total",
                "LSS_STATUS records by result (published, unchanged, stale, duplicate, conflict).",
                ["result"],
                **common,
            ),
            status_records_dropped_total=prometheus_client.Counter(
                "status_records_dropped_total",
                "LSS_STATUS records the server refuses as they are (too large, rejected by the "
                "stream's limits): logged and dropped, not retried for ever.",
                **common,
            ),
        )
