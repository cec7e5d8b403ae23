"""One NATS connection per process: connect with unlimited reconnects, report health, drain.

The client's callbacks log every disconnect, reconnect and error, move the
``llmsafespace_bus_connected`` gauge and count ``connection_events_total``; ``is_connected``
is what ``/readyz`` reads. A service never exits because NATS is away: it reports not-ready
and keeps reconnecting (nats-py's default gives up after about two minutes).

``NatsConnection`` wraps it as a service component. This module does not publish or consume,
and declares streams only through ``topology``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

import nats
import nats.aio.client
import nats.errors
import nats.js

from lss_common import settings as settings_module
from lss_common.bus import metrics as bus_metrics
from lss_common.bus import topology

_log = logging.getLogger(__name__)


class Connection:
    """An open NATS connection and its JetStream context. Build it with :func:`connect`."""

    def __init__(self, client: nats.aio.client.Client, *, metrics: bus_metrics.BusMetrics) -> None:
        self.client = client
        self.jetstream: nats.js.JetStreamContext = client.jetstream()
        self._metrics = metrics

    @property
    def is_connected(self) -> bool:
        """True while the client is connected (not reconnecting, not closed)."""
        return bool(self.client.is_connected)

    async def close(self) -> None:
        """Drain (flush publishes, stop subscriptions), then close; never raises.

        Callers stop their consumers first (convention 10: stop fetching, finish or nak
        in-flight work, then drain).
        """
        if self.client.is_closed:
            return
        try:
            await self.client.drain()
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            # Drain fails while reconnecting or on timeout; closing still releases everything,
            # and JetStream redelivers whatever was not acked.
            _log.warning("nats drain failed, closing", extra={"error": repr(exc)})
            await self.client.close()
        self._metrics.connected.set(0)


async def connect(
    settings: settings_module.NatsSettings,
    *,
    metrics: bus_metrics.BusMetrics,
    client_name: str,
) -> Connection:
    """Connect to ``settings.url``; wait (retrying forever, cancellable) until it succeeds.

    Every failed attempt is logged and counted by the error callback. Wrap the call in
    ``asyncio.timeout`` to bound the wait.

    The first connection is retried here, one client per attempt, not by nats-py: its own
    loop retries a refused connection (wrong credentials) for ever, and on Python 3.11 a
    cancellation can be lost inside it (``asyncio.wait_for``), so a service told to stop, or
    a caller's timeout, never got control back and the client kept retrying in the
    background. Once connected, the client reconnects by itself without limit.
    """
    callbacks = _Callbacks(metrics)
    options: dict[str, Any] = {
        "servers": [url.strip() for url in settings.url.split(",") if url.strip()],
        "name": client_name,
        "inbox_prefix": settings.inbox_prefix,
        **authentication_options(settings),
        "connect_timeout": settings.connect_timeout_seconds,
        "reconnect_time_wait": settings.reconnect_wait_seconds,
        "max_reconnect_attempts": -1,
        "drain_timeout": settings.drain_timeout_seconds,
        "error_cb": callbacks.on_error,
        "disconnected_cb": callbacks.on_disconnected,
        "reconnected_cb": callbacks.on_reconnected,
        "closed_cb": callbacks.on_closed,
    }
    while True:
        _raise_if_cancelled()
        client = nats.aio.client.Client()
        try:
            await client.connect(**options, allow_reconnect=False)
        except (OSError, TimeoutError, nats.errors.Error):
            await _close_quietly(client)
            _raise_if_cancelled()
            await asyncio.sleep(settings.reconnect_wait_seconds)
            continue
        except BaseException:
            await _close_quietly(client)
            raise
        break
    # Connected: from now on nats-py reconnects by itself (the option is read at each loss).
    client.options["allow_reconnect"] = True
    callbacks.connected_once = True
    metrics.connected.set(1)
    _log.info("nats connected", extra={"url": _connected_url(client)})
    return Connection(client, metrics=metrics)


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation the awaited library swallowed (the task still says so)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _close_quietly(client: nats.aio.client.Client) -> None:
    with contextlib.suppress(Exception):
        await client.close()


def authentication_options(settings: settings_module.NatsSettings) -> dict[str, Any]:
    """nats-py's options for the configured credentials and TLS (none: anonymous, plain)."""
    options: dict[str, Any] = {}
    if settings.credentials_file is not None:
        options["user_credentials"] = settings.credentials_file
    if settings.user is not None and settings.password is not None:
        options["user"] = settings.user
        options["password"] = settings.password.get_secret_value()
    if settings.token is not None:
        options["token"] = settings.token.get_secret_value()
    if settings.tls_ca_file is not None or settings.tls_cert_file is not None:
        context = ssl.create_default_context(cafile=settings.tls_ca_file)
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        options["tls"] = context
    return options


class _Callbacks:
    """nats-py callbacks: they only log and report; reconnecting is the client's job."""

    def __init__(self, metrics: bus_metrics.BusMetrics) -> None:
        self._metrics = metrics
        self.connected_once = False
        """Until the first connection, a failed attempt's client is closed quietly: it was
        never connected, so neither a disconnect nor a close is reported (its error is)."""

    async def on_error(self, exc: Exception) -> None:
        self._metrics.connection_events_total.labels(bus_metrics.ConnectionEvent.ERROR).inc()
        _log.warning("nats client error", extra={"error": repr(exc)})

    async def on_disconnected(self) -> None:
        if not self.connected_once:
            return
        self._metrics.connected.set(0)
        self._metrics.connection_events_total.labels(bus_metrics.ConnectionEvent.DISCONNECTED).inc()
        _log.warning("nats disconnected")

    async def on_reconnected(self) -> None:
        self._metrics.connected.set(1)
        self._metrics.connection_events_total.labels(bus_metrics.ConnectionEvent.RECONNECTED).inc()
        _log.info("nats reconnected")

    async def on_closed(self) -> None:
        if not self.connected_once:
            return
        self._metrics.connected.set(0)
        self._metrics.connection_events_total.labels(bus_metrics.ConnectionEvent.CLOSED).inc()
        _log.info("nats connection closed")


def _connected_url(client: nats.aio.client.Client) -> str | None:
    url = client.connected_url
    # Never log credentials that may be embedded in the URL.
    return None if url is None else f"{url.scheme}://{url.hostname}:{url.port}"


class NatsConnection:
    """The connection as a service component (``lss_common.runtime.service.Component``).

    ``start()`` connects and, by default, declares both streams (idempotent; every service
    does it so that start order does not matter); ``stop()`` drains; ``is_ready()`` is false
    while disconnected, so ``/readyz`` reports a NATS outage.
    """

    def __init__(
        self,
        settings: settings_module.NatsSettings,
        *,
        metrics: bus_metrics.BusMetrics,
        client_name: str,
        declare_streams: bool = True,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._client_name = client_name
        self._declare_streams = declare_streams
        self._connection: Connection | None = None

    @property
    def name(self) -> str:
        return "nats"

    @property
    def settings(self) -> settings_module.NatsSettings:
        """What this connection was configured with (subject prefix, stream names, ...)."""
        return self._settings

    @property
    def connection(self) -> Connection:
        """The open connection; only valid after :meth:`start`."""
        if self._connection is None:
            raise RuntimeError("NatsConnection used before start()")
        return self._connection

    async def start(self) -> None:
        self._connection = await connect(
            self._settings, metrics=self._metrics, client_name=self._client_name
        )
        if self._declare_streams:
            await topology.declare_streams(self._connection.jetstream, settings=self._settings)

    async def declare_topology(self) -> None:
        """Connect and create (or correct) the streams, whatever ``declare_topology`` says:
        what ``--declare-topology`` runs, under a NATS user that may. The connection stays
        open for the consumers' declarations."""
        if self._connection is None:
            self._connection = await connect(
                self._settings, metrics=self._metrics, client_name=self._client_name
            )
        forced = self._settings.model_copy(update={"declare_topology": True})
        await topology.declare_streams(self._connection.jetstream, settings=forced)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def is_ready(self) -> bool:
        return self._connection is not None and self._connection.is_connected
