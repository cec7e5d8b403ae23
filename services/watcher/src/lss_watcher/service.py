"""Wiring: ``build(settings)`` creates the watcher's components and returns the Service.

Components, in start order: ``kube`` (API client; ready while the API server's /readyz is
200), ``nats`` (connection and stream declaration; ready while connected), ``watcher``
(list+watch of every resource, resyncs; ready once every initial list is published).
Shutdown runs in reverse: the watcher stops reading and flushes its publishes before NATS is
drained. No logic here.
"""

from __future__ import annotations

import prometheus_client

from lss_common.bus import connection as bus_connection
from lss_common.bus import metrics as bus_metrics
from lss_common.kube import client
from lss_common.observability import metrics as shared_metrics
from lss_common.runtime import clock as clock_module
from lss_common.runtime import service
from lss_watcher import metrics as watcher_metrics
from lss_watcher import settings as settings_module
from lss_watcher import watcher


def build(
    settings: settings_module.WatcherSettings,
    *,
    clock: clock_module.Clock = service.SYSTEM_CLOCK,
    registry: prometheus_client.CollectorRegistry | None = None,
) -> service.Service:
    """The watcher service for ``settings`` (``clock``/``registry`` are for tests)."""
    runtime = service.create_runtime(settings, clock=clock, registry=registry)
    bus = bus_metrics.BusMetrics.register(runtime.registry)
    kube = client.KubeConnection(
        settings.kube, metrics=shared_metrics.KubeMetrics.register(runtime.registry)
    )
    nats = bus_connection.NatsConnection(
        settings.nats, metrics=bus, client_name=settings.service_name
    )
    component = watcher.Watcher(
        settings.watcher,
        nats_settings=settings.nats,
        kube=kube,
        nats=nats,
        metrics=watcher_metrics.WatcherMetrics.register(runtime.registry),
        bus=bus,
        tasks=runtime.tasks,
        clock=runtime.clock,
    )
    return service.Service(runtime, components=[kube, nats, component])
