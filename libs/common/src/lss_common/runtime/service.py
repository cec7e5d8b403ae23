"""The process shell every service runs in: components, signals, shutdown, health and metrics.

A service's ``build(settings)`` creates a ``Runtime`` (registry, runtime metrics, task
supervisor, clock), builds its components with it, and returns a ``Service``. ``Service.run``:

1. serves HTTP first, so ``/healthz`` answers during a slow start (``/readyz`` says 503);
2. starts the components in the given order. A component whose start fails transiently
   (``RetryableError``: the API server or NATS away) is stopped and started again with
   backoff, the service not ready meanwhile; any other failure, SIGTERM/SIGINT or a guarded
   task's unexpected exit ends the start early;
3. waits for SIGTERM/SIGINT or a guarded task's unexpected exit;
4. stops the components that were started (or were starting) in reverse order, all within
   ``consumer.shutdown_grace_seconds``. A component still stopping at the deadline is
   cancelled and logged, and the next one is stopped anyway;
5. cancels leftover guarded tasks, stops HTTP and returns the exit code: 0 after a signal,
   1 after a failed start or an unexpected task exit (so Kubernetes restarts the pod).

This module must not know what any component does; components must not install signal
handlers or serve HTTP themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Final, Protocol, TypeVar, runtime_checkable

import prometheus_client
import prometheus_client.exposition
from aiohttp import web

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.logic import backoff
from lss_common.observability import logs, metrics, tracing
from lss_common.runtime import clock as clock_module
from lss_common.runtime import tasks as tasks_module

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_SECONDS = 1.0
# Probes are tiny; waiting longer for them would only eat into the shutdown grace period.
_HTTP_SHUTDOWN_TIMEOUT_SECONDS = 1.0

SYSTEM_CLOCK: clock_module.Clock = clock_module.SystemClock()

#: Pauses between attempts to start a component that failed transiently; the last repeats.
START_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)

SettingsT = TypeVar("SettingsT", bound=settings_module.CommonSettings)


class Component(Protocol):
    """A part of a service with a lifetime: a connection, a consumer loop, a timer.

    ``stop()`` is also called after a failed or cancelled ``start()``, so it must cope with a
    partial start. ``is_ready()`` must be cheap or bounded: ``/readyz`` waits at most
    ``http.readiness_check_timeout_seconds`` for it.
    """

    @property
    def name(self) -> str:
        """A short fixed name shown in logs and in the ``/readyz`` body."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def is_ready(self) -> bool: ...


@runtime_checkable
class TopologyDeclarer(Component, Protocol):
    """A component that can declare what it uses on NATS (``Service.declare_topology``)."""

    async def declare_topology(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Runtime:
    """What a service builds first and hands to its components."""

    settings: settings_module.CommonSettings
    registry: prometheus_client.CollectorRegistry
    metrics: metrics.RuntimeMetrics
    tasks: tasks_module.TaskSupervisor
    clock: clock_module.Clock


def create_runtime(
    settings: settings_module.CommonSettings,
    *,
    clock: clock_module.Clock = SYSTEM_CLOCK,
    registry: prometheus_client.CollectorRegistry | None = None,
) -> Runtime:
    """A runtime with a fresh registry (unless one is given) and its runtime metrics."""
    registry = registry if registry is not None else metrics.create_registry()
    runtime_metrics = metrics.RuntimeMetrics.register(registry)
    return Runtime(
        settings=settings,
        registry=registry,
        metrics=runtime_metrics,
        tasks=tasks_module.TaskSupervisor(metrics=runtime_metrics),
        clock=clock,
    )


class _Phase:
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class Service:
    """Runs components for the life of the process; see the module docstring for the sequence."""

    def __init__(self, runtime: Runtime, *, components: Sequence[Component]) -> None:
        names = [component.name for component in components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique, got {names}")
        self._runtime = runtime
        self._settings = runtime.settings
        self._components = tuple(components)
        self._to_stop: list[Component] = []
        self._phase = _Phase.STARTING
        self._stop_requested = asyncio.Event()
        self._stop_reason: str | None = None
        self._runner: web.AppRunner | None = None
        self._http_port: int | None = None
        self._last_beat = runtime.clock.monotonic()
        self._loop_lag_seconds = 0.0
        self._last_readiness: dict[str, bool] = {}

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    @property
    def http_port(self) -> int:
        """The port HTTP listens on (useful with ``http.port = 0``); only while running."""
        if self._http_port is None:
            raise RuntimeError("the HTTP server is not running")
        return self._http_port

    def request_stop(self, reason: str) -> None:
        """Begin a graceful shutdown, as SIGTERM does. Later requests are only logged."""
        if self._stop_requested.is_set():
            logger.info("stop already requested", extra={"reason": reason})
            return
        self._stop_reason = reason
        logger.info("stop requested", extra={"reason": reason})
        self._stop_requested.set()

    async def declare_topology(self) -> int:
        """Declare what the components use on NATS (the streams, each consumer), then stop:
        ``--declare-topology``, run once under a NATS user that may, where the service's own
        user may not (``nats.declare_topology`` off). Returns the exit code."""
        declarers = [c for c in self._components if isinstance(c, TopologyDeclarer)]
        try:
            for component in declarers:
                await component.declare_topology()
                logger.info("topology declared", extra={"component": component.name})
        except errors.LssError as error:
            logger.error("declaring the topology failed", extra={"error": str(error)})
            return 1
        finally:
            for component in reversed(declarers):
                with contextlib.suppress(Exception):
                    await component.stop()
        return 0

    async def run(self, *, handle_signals: bool = True) -> int:
        """Run until stopped; returns the process exit code.

        ``handle_signals=False`` leaves SIGTERM/SIGINT alone, for embedding the service in a
        process that owns its signals; ``request_stop`` then ends the run.
        """
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.request_stop, signum.name)
                installed.append(signum)
        exit_code = 1
        try:
            await self._start_http()
            self._runtime.tasks.spawn(self._heartbeat(), name="event-loop-heartbeat")
            exit_code = await self._run_components()
        finally:
            await self._shutdown()
            for signum in installed:
                loop.remove_signal_handler(signum)
        logger.info("service stopped", extra={"exit_code": exit_code})
        return exit_code

    async def _run_components(self) -> int:
        starting = asyncio.create_task(self._start_components(), name="start-components")
        stop_requested = asyncio.create_task(self._stop_requested.wait(), name="wait-stop")
        task_failed = asyncio.create_task(self._runtime.tasks.wait_failure(), name="wait-failure")
        waiters = {stop_requested, task_failed}
        try:
            await asyncio.wait({starting, *waiters}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                logger.warning("start interrupted", extra={"reason": self._why_stopping()})
                return 0 if stop_requested.done() and not task_failed.done() else 1
            if (error := starting.exception()) is not None:
                logger.error("service failed to start", exc_info=error)
                return 1
            self._phase = _Phase.RUNNING
            logger.info(
                "service started",
                extra={"components": [component.name for component in self._components]},
            )
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            return 1 if task_failed.done() else 0
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _why_stopping(self) -> str:
        return self._runtime.tasks.failure or self._stop_reason or "unknown"

    async def _start_components(self) -> None:
        for component in self._components:
            # Registered before start() so that a failed or cancelled start is cleaned up too.
            self._to_stop.append(component)
            logger.info("starting component", extra={"component": component.name})
            await self._start_component(component)

    async def _start_component(self, component: Component) -> None:
        """``component.start()``, again after a transient failure (the API server or NATS
        away while the service starts: a replica started beside an outage waits it out, not
        ready, instead of exiting); any other failure fails the start."""
        failures = 0
        while True:
            try:
                await component.start()
                return
            except errors.RetryableError as error:
                failures += 1
                delay = backoff.delay_for_delivery(failures, delays_seconds=START_RETRY_SECONDS)
                logger.warning(
                    "component failed to start, retrying",
                    extra={"component": component.name, "error": str(error), "retry_in": delay},
                )
            # Undo the partial start so that the next start() begins clean.
            try:
                await component.stop()
            except Exception:
                logger.exception(
                    "component failed to stop after a failed start",
                    extra={"component": component.name},
                )
            await self._runtime.clock.sleep(delay)

    async def _shutdown(self) -> None:
        self._phase = _Phase.STOPPING
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.consumer.shutdown_grace_seconds
        self._runtime.tasks.begin_stop()
        for component in reversed(self._to_stop):
            try:
                async with asyncio.timeout_at(deadline):
                    await component.stop()
            except TimeoutError:
                logger.error(
                    "component did not stop in time; cancelled",
                    extra={"component": component.name},
                )
            except Exception:
                logger.exception("component failed to stop", extra={"component": component.name})
            else:
                logger.info("component stopped", extra={"component": component.name})
        self._to_stop.clear()
        await self._runtime.tasks.stop(timeout_seconds=max(deadline - loop.time(), 0.0))
        await self._stop_http()

    # -- HTTP -------------------------------------------------------------------------------

    async def _start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/healthz", self._handle_healthz)
        app.router.add_get("/readyz", self._handle_readyz)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=_HTTP_SHUTDOWN_TIMEOUT_SECONDS
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, host=self._settings.http.host, port=self._settings.http.port)
        await site.start()
        self._http_port = _bound_port(runner)
        logger.info(
            "serving http", extra={"host": self._settings.http.host, "port": self._http_port}
        )

    async def _stop_http(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._http_port = None

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        encode, content_type = prometheus_client.exposition.choose_encoder(
            request.headers.get("Accept", "")
        )
        return web.Response(
            body=encode(self._runtime.registry), headers={"Content-Type": content_type}
        )

    async def _handle_healthz(self, request: web.Request) -> web.Response:
        stall_seconds = self._settings.http.liveness_stall_seconds
        since_beat = self._runtime.clock.monotonic() - self._last_beat
        failure = self._runtime.tasks.failure
        alive = failure is None and max(since_beat, self._loop_lag_seconds) <= stall_seconds
        body: dict[str, object] = {
            "alive": alive,
            "event_loop_lag_seconds": round(self._loop_lag_seconds, 6),
            "seconds_since_heartbeat": round(max(since_beat, 0.0), 6),
        }
        if failure is not None:
            body["failure"] = failure
        return web.json_response(body, status=200 if alive else 503)

    async def _handle_readyz(self, request: web.Request) -> web.Response:
        if self._phase != _Phase.RUNNING:
            return web.json_response(
                {"ready": False, "phase": self._phase, "not_ready": []}, status=503
            )
        names = [component.name for component in self._components]
        results = await asyncio.gather(*(self._check_ready(c) for c in self._components))
        states = dict(zip(names, results, strict=True))
        not_ready = [name for name, state in states.items() if state != "ready"]
        self._log_readiness_changes(states)
        return web.json_response(
            {
                "ready": not not_ready,
                "phase": self._phase,
                "components": states,
                "not_ready": not_ready,
            },
            status=503 if not_ready else 200,
        )

    async def _check_ready(self, component: Component) -> str:
        try:
            async with asyncio.timeout(self._settings.http.readiness_check_timeout_seconds):
                ready = await component.is_ready()
        except TimeoutError:
            return "timeout"
        except Exception as error:
            logger.warning(
                "readiness check failed", extra={"component": component.name}, exc_info=True
            )
            return f"error: {type(error).__name__}"
        return "ready" if ready else "not ready"

    def _log_readiness_changes(self, states: dict[str, str]) -> None:
        for name, state in states.items():
            ready = state == "ready"
            if self._last_readiness.get(name, True) != ready:
                with logs.bind(outcome=state):
                    logger.log(
                        logging.INFO if ready else logging.WARNING,
                        "component readiness changed",
                        extra={"component": name, "ready": ready},
                    )
            self._last_readiness[name] = ready

    async def _heartbeat(self) -> None:
        clock = self._runtime.clock
        gauge = self._runtime.metrics.event_loop_lag_seconds
        while True:
            expected = clock.monotonic() + HEARTBEAT_INTERVAL_SECONDS
            await clock.sleep(HEARTBEAT_INTERVAL_SECONDS)
            now = clock.monotonic()
            self._loop_lag_seconds = max(now - expected, 0.0)
            self._last_beat = now
            gauge.set(self._loop_lag_seconds)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the HTTP server has no TCP address")


DECLARE_TOPOLOGY_FLAG: Final = "--declare-topology"


def main(
    build: Callable[[SettingsT], Service],
    settings: SettingsT,
    argv: Sequence[str] | None = None,
) -> int:
    """The whole of a service's ``__main__``: logging, tracing, build inside the loop, run.

    ``argv`` (default: the process's arguments): empty, or ``--declare-topology`` to declare
    the service's NATS streams and consumers and exit (``Service.declare_topology``).

    ``build`` runs inside the event loop so that components may create loop-bound objects.
    Spans still buffered at exit are flushed (bounded by the SDK's own export timeout).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], [DECLARE_TOPOLOGY_FLAG]):
        print(f"usage: python -m <service> [{DECLARE_TOPOLOGY_FLAG}]", file=sys.stderr)
        return 2
    logs.configure_logging(settings.log, service=settings.service_name)
    provider = tracing.configure_tracing(settings.tracing, service_name=settings.service_name)

    async def _main() -> int:
        service = build(settings)
        if args:
            return await service.declare_topology()
        return await service.run()

    try:
        return asyncio.run(_main())
    finally:
        if provider is not None:
            provider.shutdown()
