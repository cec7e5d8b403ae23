"""The bus's Prometheus metrics, created explicitly on a registry the caller passes in.

``BusMetrics.register(registry)`` creates every series once; the bus modules receive the
returned object as an argument. Importing this module creates nothing (no global registry, no
``init()``-time registration). Label values come only from the closed enums below or from
``lss_common.observability.metrics`` (``Outcome``, ``PublishResult``); never subjects, names
or error text. The stream label is a stream name fixed by configuration.
"""

from __future__ import annotations

import dataclasses
import enum
import typing

import prometheus_client

from lss_common.observability import metrics as shared_metrics

_SUBSYSTEM = "bus"


class ConnectionEvent(enum.StrEnum):
    """What the NATS client reported through its callbacks."""

    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"
    ERROR = "error"
    CLOSED = "closed"


class FetchError(enum.StrEnum):
    """Why a pull request failed (an idle timeout is not a failure and is not counted)."""

    CONNECTION = "connection"
    SERVER = "server"
    OTHER = "other"


class ResyncRequestResult(enum.StrEnum):
    """Whether a resync request (core NATS, best effort) reached the server."""

    SENT = "sent"
    ERROR = "error"


@dataclasses.dataclass(frozen=True, slots=True)
class BusMetrics:
    """Messages consumed and published over NATS JetStream, and the connection's health."""

    messages_total: prometheus_client.Counter
    handle_duration_seconds: prometheus_client.Histogram
    published_total: prometheus_client.Counter
    undecodable_total: prometheus_client.Counter
    in_flight: prometheus_client.Gauge
    fetch_errors_total: prometheus_client.Counter
    settle_errors_total: prometheus_client.Counter
    coalesced_total: prometheus_client.Counter
    connected: prometheus_client.Gauge
    connection_events_total: prometheus_client.Counter
    resync_requests_total: prometheus_client.Counter
    handovers_total: prometheus_client.Counter

    @classmethod
    def register(cls, registry: prometheus_client.CollectorRegistry) -> typing.Self:
        """Create the bus metrics in ``registry``; call once per registry."""
        common: dict[str, typing.Any] = {
            "namespace": shared_metrics.NAMESPACE,
            "subsystem": _SUBSYSTEM,
            "registry": registry,
        }
        return cls(
            messages_total=prometheus_client.Counter(
                "messages_total",
                "Messages settled by the consume loop, by stream and outcome "
                "(ack, nak, term; error = unexpected exception, nak'ed with backoff).",
                ["stream", "outcome"],
                **common,
            ),
            handle_duration_seconds=prometheus_client.Histogram(
                "handle_duration_seconds",
                "Time from the start of a message's handling to its ack, nak or term.",
                ["stream", "outcome"],
                buckets=shared_metrics.DURATION_BUCKETS_SECONDS,
                **common,
            ),
            published_total=prometheus_client.Counter(
                "published_total",
                "Messages published, by stream and result (stored, duplicate, conflict: a status "
                "record another writer stored first; error).",
                ["stream", "result"],
                **common,
            ),
            undecodable_total=prometheus_client.Counter(
                "undecodable_total",
                "Messages that could not be decoded and were termed (never redelivered).",
                ["stream"],
                **common,
            ),
            in_flight=prometheus_client.Gauge(
                "in_flight",
                "Messages fetched and not yet settled (queued behind their key or running).",
                ["stream"],
                **common,
            ),
            fetch_errors_total=prometheus_client.Counter(
                "fetch_errors_total",
                "Pull requests that failed (the loop backs off and retries).",
                ["stream", "error"],
                **common,
            ),
            settle_errors_total=prometheus_client.Counter(
                "settle_errors_total",
                "ack/nak/term/in-progress signals that could not be sent; the message is "
                "redelivered after ack_wait.",
                ["stream"],
                **common,
            ),
            coalesced_total=prometheus_client.Counter(
                "coalesced_total",
                "Hints acknowledged without a pass of their own, because a pass for the same "
                "object was queued and had not started when they arrived.",
                ["stream"],
                **common,
            ),
            connected=prometheus_client.Gauge(
                "connected",
                "1 while the NATS connection is up, 0 while it is down or reconnecting.",
                **common,
            ),
            connection_events_total=prometheus_client.Counter(
                "connection_events_total",
                "NATS client connection events (disconnected, reconnected, error, closed).",
                ["event"],
                **common,
            ),
            resync_requests_total=prometheus_client.Counter(
                "resync_requests_total",
                "Resync requests sent to the watchers after this process created or changed "
                "its durable consumer, by result (sent; error = not confirmed by the server, "
                "the periodic resync covers it).",
                ["result"],
                **common,
            ),
            handovers_total=prometheus_client.Counter(
                "handovers_total",
                "Re-checks handed over to a fresh copy of their message before the stream "
                "would drop it (max age, max deliver), by result (handed_over; failed = the "
                "copy was not stored, tried again at the next re-check).",
                ["stream", "result"],
                **common,
            ),
        )


Outcome = shared_metrics.Outcome
PublishResult = shared_metrics.PublishResult
