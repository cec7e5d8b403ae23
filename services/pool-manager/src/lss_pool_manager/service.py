"""Wiring: ``build(settings)`` creates the pool manager's components and returns the Service.

Components, in start order: ``kube`` (API client), ``pod-exec`` (the ``pods/exec`` client
of preload scripts), ``nats`` (connection, stream declaration), the durable consumer on
``<prefix>.evt.warmpool.>`` and ``<prefix>.evt.warmpod.>`` shared by every replica (per-key
serial handling: one pool or one WarmPod is never handled twice at once in one replica). No
logic here.
"""

from __future__ import annotations

import prometheus_client

from lss_common.bus import connection as bus_connection
from lss_common.bus import consuming, topology
from lss_common.bus import metrics as bus_metrics
from lss_common.kube import client, podexec
from lss_common.logic import revisions, subjects
from lss_common.models import kinds, messages
from lss_common.observability import metrics as shared_metrics
from lss_common.runtime import clock as clock_module
from lss_common.runtime import service
from lss_pool_manager import handler as handler_module
from lss_pool_manager import metrics as metrics_module
from lss_pool_manager import settings as settings_module


def build(
    settings: settings_module.PoolManagerSettings,
    *,
    clock: clock_module.Clock = service.SYSTEM_CLOCK,
    registry: prometheus_client.CollectorRegistry | None = None,
) -> service.Service:
    """The pool manager service for ``settings`` (``clock``/``registry`` are for tests)."""
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
    # Preload scripts run through pods/exec (a websocket client of its own, closed at stop).
    executor = podexec.PodExecutor(lambda: kube.kube)
    handler = handler_module.Handler(
        settings,
        kube=kube,
        metrics=metrics_module.PoolManagerMetrics.register(runtime.registry),
        clock=runtime.clock,
        executor=executor,
        written=written,
    )
    prefix = settings.nats.subject_prefix
    consumer = consuming.ConsumerComponent(
        nats,
        spec=topology.ConsumerSpec(
            settings.pool.consumer_name,
            (
                subjects.events_filter(kinds.WARM_POOL.singular, prefix=prefix),
                subjects.events_filter(kinds.WARM_POD.singular, prefix=prefix),
            ),
        ),
        stream=settings.nats.events_stream,
        message_type=messages.ChangeEvent,
        handler=handler.handle,
        settings=settings.consumer,
        metrics=bus,
        tasks=runtime.tasks,
    )
    return service.Service(runtime, components=[kube, executor, nats, consumer])
