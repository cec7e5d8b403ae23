"""Wiring: ``build(settings)`` creates the reconciler's components and returns the Service.

Components, in start order: ``kube`` (API client; ready while the API server's /readyz is
200), ``nats`` (connection and stream declaration; ready while connected), ``ready-queue``
(``warm.ReadyQueueFeed``: this replica's warmpod subscription and WarmPod list), and the durable
consumer ``reconcile.consumer_name`` on ``<prefix>.evt.sandbox.>`` (one consumer shared by
every replica, so each hint goes to one of them), which runs ``handler.Handler.handle``; its
status writes are announced on the status stream (``announcing``, unless
``reconcile.publish_status`` is off).
Shutdown runs in reverse: the consumer finishes or naks what it holds before NATS drains.
No logic here; no resync timer either (the watcher's periodic resync re-publishes every key).
"""

from __future__ import annotations

import prometheus_client

from lss_common.bus import connection as bus_connection
from lss_common.bus import consuming, publishing, status_publishing, topology
from lss_common.bus import metrics as bus_metrics
from lss_common.kube import client
from lss_common.logic import revisions, subjects
from lss_common.models import messages
from lss_common.observability import metrics as shared_metrics
from lss_common.runtime import clock as clock_module
from lss_common.runtime import service
from lss_sandbox_reconciler import announcing, ready_queue, warm
from lss_sandbox_reconciler import handler as handler_module
from lss_sandbox_reconciler import metrics as metrics_module
from lss_sandbox_reconciler import settings as settings_module


def consumer_spec(settings: settings_module.SandboxReconcilerSettings) -> topology.ConsumerSpec:
    """The durable consumer every replica shares: sandbox hints only."""
    return topology.ConsumerSpec(
        durable=settings.reconcile.consumer_name,
        filter_subjects=(
            subjects.events_filter(
                shared_metrics.Kind.SANDBOX.value, prefix=settings.nats.subject_prefix
            ),
        ),
    )


def build(
    settings: settings_module.SandboxReconcilerSettings,
    *,
    clock: clock_module.Clock = service.SYSTEM_CLOCK,
    registry: prometheus_client.CollectorRegistry | None = None,
    instance: str | None = None,
) -> service.Service:
    """The reconciler service for ``settings`` (``clock``/``registry``/``instance`` for tests)."""
    runtime = service.create_runtime(settings, clock=clock, registry=registry)
    bus = bus_metrics.BusMetrics.register(runtime.registry)
    # What this process wrote, so the handler can skip the hints of its own writes.
    written = revisions.WrittenRevisions()
    kube = client.KubeConnection(
        settings.kube,
        metrics=shared_metrics.KubeMetrics.register(runtime.registry),
        written=written,
    )
    nats = bus_connection.NatsConnection(
        settings.nats, metrics=bus, client_name=settings.service_name
    )
    sandbox_metrics = metrics_module.SandboxMetrics.register(runtime.registry)
    # Warm starts: every replica's own ready queue, fed by its own warmpod subscription.
    warm_metrics = warm.WarmMetrics.register(runtime.registry)
    queue = ready_queue.ReadyQueue()
    starter = warm.WarmStarter(
        lambda: kube.kube,
        settings=settings,
        clock=runtime.clock,
        metrics=warm_metrics,
        sandbox_metrics=sandbox_metrics,
        queue=queue,
        publisher=lambda: publishing.Publisher(
            nats.connection.jetstream,
            stream=settings.nats.events_stream,
            metrics=bus,
            timeout_seconds=settings.nats.publish_timeout_seconds,
        ),
    )
    feed = warm.ReadyQueueFeed(
        nats, lambda: kube.kube, queue=queue, settings=settings, metrics=warm_metrics
    )
    status_metrics = announcing.StatusMetrics.register(runtime.registry)
    announcer = announcing.StatusAnnouncer(
        lambda: status_publishing.StatusPublisher(
            nats.connection.jetstream,
            stream=settings.nats.status_stream,
            prefix=settings.nats.subject_prefix,
            timeout_seconds=settings.nats.publish_timeout_seconds,
            metrics=bus,
            results=status_metrics.records_total,
            max_remembered=announcing.MAX_REMEMBERED,
        ),
        clock=runtime.clock,
        timeout_seconds=settings.nats.publish_timeout_seconds,
        metrics=status_metrics,
    )
    handler = handler_module.Handler(
        lambda: kube.kube,
        settings=settings,
        clock=runtime.clock,
        metrics=sandbox_metrics,
        instance=instance,
        warm_starter=starter if settings.warm.enabled else None,
        written=written,
        status=announcer if settings.reconcile.publish_status else None,
    )
    consumer = consuming.ConsumerComponent(
        nats,
        spec=consumer_spec(settings),
        stream=settings.nats.events_stream,
        message_type=messages.ChangeEvent,
        handler=handler.handle,
        settings=settings.consumer,
        metrics=bus,
        tasks=runtime.tasks,
    )
    # The feed starts before the consumer: the first claims find a rebuilt queue.
    warm_components = [feed] if settings.warm.enabled else []
    return service.Service(runtime, components=[kube, nats, *warm_components, consumer])
