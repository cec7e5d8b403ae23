"""The watcher component: one ResourceWatcher per resource, the periodic resync, reconnect resyncs.

* ``start`` spawns a guarded task per watched resource (``watching.ResourceWatcher``), the
  resync timer and the NATS reconnect monitor; it does not wait for the lists. Once every
  resource's initial list is published, a *start round* re-announces every own and owner key
  with a round id of its own (never deduplicated): a restarted watcher cannot list what was
  deleted while it was down (a sandbox's pod), but it can wake the owner. ``is_ready`` is true
  from then on.
* The periodic resync runs at wall-clock multiples of ``resync_period_seconds`` and names its
  round after that boundary, so replicas with synchronised clocks publish identical ids and
  downstream sees each resync once. It publishes a RESYNC hint for every live object and
  every owner key, and marks deleted the stored status records of objects that are gone.
* When the NATS client reconnects, the streams are re-declared, a resync with a round id of
  its own is published, and Sandbox and WarmPool status is listed and republished where the
  stored record is missing or older (a server that lost its store loses no work).
* A service whose durable consumer was just created asks for a resync on core NATS
  (``lss_common.bus.resync_requests``): it missed the hints of the objects that already
  exist. ``start`` subscribes before any list begins; ``rounds.RequestedRounds`` decides
  (covered by a round not yet started, or one more round named after the request) and a
  guarded task runs the requested rounds through :meth:`Watcher.resync`, like every round.
* ``stop`` stops reading from the API server first, then waits (within the service's
  shutdown deadline) for the publishes already submitted, so a graceful stop loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from lss_common import errors
from lss_common import settings as common_settings
from lss_common.bus import connection as bus_connection
from lss_common.bus import metrics as bus_metrics
from lss_common.bus import resync_requests, topology
from lss_common.kube import client
from lss_common.logic import backoff
from lss_common.models import messages
from lss_common.runtime import clock as clock_module
from lss_common.runtime import tasks as tasks_module
from lss_watcher import hints, publishing, resources, rounds, tracker, watching
from lss_watcher import metrics as watcher_metrics
from lss_watcher import settings as settings_module

_log = logging.getLogger(__name__)


class Watcher:
    """Component ``watcher``: runs every resource watcher and the resyncs."""

    def __init__(
        self,
        options: settings_module.WatcherOptions,
        *,
        nats_settings: common_settings.NatsSettings,
        kube: client.KubeConnection,
        nats: bus_connection.NatsConnection,
        metrics: watcher_metrics.WatcherMetrics,
        bus: bus_metrics.BusMetrics,
        tasks: tasks_module.TaskSupervisor,
        clock: clock_module.Clock,
    ) -> None:
        self._options = options
        self._nats_settings = nats_settings
        self._kube = kube
        self._nats = nats
        self._metrics = metrics
        self._bus = bus
        self._tasks = tasks
        self._clock = clock
        self._watchers: list[watching.ResourceWatcher] = []
        self._windows: list[publishing.Window] = []
        self._resync_window: publishing.Window | None = None
        self._running: list[asyncio.Task[None]] = []
        self._announcer: publishing.Announcer | None = None
        self._resyncing = asyncio.Lock()
        self._declaring = asyncio.Lock()
        self._announced_start = asyncio.Event()
        self._requested_rounds = rounds.RequestedRounds(events_stream=nats_settings.events_stream)
        self._round_requested = asyncio.Event()
        self._status_stream_recreated = asyncio.Event()

    @property
    def name(self) -> str:
        return "watcher"

    async def start(self) -> None:
        slots = asyncio.Semaphore(self._options.publish_concurrency)
        self._announcer = publishing.Announcer(
            self._nats.connection.jetstream,
            events_stream=self._nats_settings.events_stream,
            status_stream=self._nats_settings.status_stream,
            prefix=self._nats_settings.subject_prefix,
            publish_timeout_seconds=self._nats_settings.publish_timeout_seconds,
            deleted_ttl_seconds=self._options.status_deleted_ttl_seconds,
            backoff_seconds=self._options.retry_backoff_seconds,
            bus=self._bus,
            metrics=self._metrics,
            clock=self._clock,
            ensure_streams=self._stream_missing,
        )
        for resource in resources.watched_resources(self._options):
            window = publishing.Window(slots, name=resource.name)
            self._windows.append(window)
            self._watchers.append(
                watching.ResourceWatcher(
                    resource,
                    kube=lambda: self._kube.kube,
                    announcer=self._announcer,
                    window=window,
                    options=self._options,
                    metrics=self._metrics,
                    clock=self._clock,
                )
            )
        # Rounds re-announce every key at once; with slots of their own (a quarter) they
        # cannot crowd out the hints of live changes.
        self._resync_window = publishing.Window(
            asyncio.Semaphore(max(1, self._options.publish_concurrency // 4)), name="resync"
        )
        self._windows.append(self._resync_window)
        # Before any list: a request the server dropped for want of this subscription was
        # sent before the lists began, and the start round (after them) covers it.
        await resync_requests.subscribe(
            self._nats.connection.client,
            prefix=self._nats_settings.subject_prefix,
            on_request=self._on_resync_request,
            on_invalid=self._on_invalid_resync_request,
        )
        self._running.append(
            self._tasks.spawn(self._answer_resync_requests(), name="resync-on-request")
        )
        for resource_watcher in self._watchers:
            self._running.append(
                self._tasks.spawn(
                    resource_watcher.run(), name=f"watch-{resource_watcher.resource.name}"
                )
            )
        self._running.append(self._tasks.spawn(self._resync_periodically(), name="resync"))
        self._running.append(
            self._tasks.spawn(self._republish_when_recreated(), name="republish-status")
        )
        if self._options.resync_on_reconnect:
            self._running.append(
                self._tasks.spawn(self._resync_on_reconnect(), name="resync-on-reconnect")
            )

    async def stop(self) -> None:
        # The resync-request subscription is left to the connection's drain (the next
        # component to stop): a request arriving meanwhile only sets a flag nobody awaits.
        running, self._running = self._running, []
        for task in running:
            await self._tasks.cancel(task)
        try:
            # What was read from the API server is published before the connection closes.
            await asyncio.gather(*(window.drain() for window in self._windows))
        finally:
            await asyncio.gather(*(window.aclose() for window in self._windows))

    async def is_ready(self) -> bool:
        return self._announced_start.is_set()

    async def resync(self, *, round_id: str, trigger: watcher_metrics.ResyncTrigger) -> int:
        """Publish a RESYNC hint for every live object and owner key; returns how many."""
        announcer, window = self._announcer, self._resync_window
        if announcer is None or window is None:
            raise RuntimeError("the watcher is not started")
        async with self._resyncing:
            # From here on, the snapshot below is taken after every request received so far.
            self._requested_rounds.round_started()
            listed = [w for w in self._watchers if w.listed.is_set()]
            found = tracker.resync_hints((w.tracker for w in listed), round_id=round_id)
            _log.info(
                "resync started",
                extra={"trigger": str(trigger), "round": round_id, "hints": len(found)},
            )
            for hint in found:
                await window.submit(announcer.publish_hint(hint, received_at=None))
            for resource_watcher in listed:
                try:
                    await resource_watcher.reconcile_status()
                except errors.LssError as error:
                    _log.warning(
                        "status reconciliation failed",
                        extra={"kind": str(resource_watcher.resource.name), "error": str(error)},
                    )
            await window.drain()
            self._metrics.resyncs_total.labels(trigger).inc()
            _log.info("resync published", extra={"round": round_id, "hints": len(found)})
            return len(found)

    async def _resync_periodically(self) -> None:
        # Once every initial list is published: a start round, with an id of its own. A
        # restarted watcher's lists cannot see what was deleted while it was down (a pod
        # gone, nothing to list); announcing every own and owner key covers it.
        await asyncio.gather(*(w.listed.wait() for w in self._watchers))
        await self.resync(
            round_id=f"start-{uuid.uuid4().hex[:12]}",
            trigger=watcher_metrics.ResyncTrigger.STARTUP,
        )
        self._announced_start.set()
        _log.info("initial lists and start round published")
        period = self._options.resync_period_seconds
        while True:
            now = self._clock.now().timestamp()
            boundary = hints.next_round_boundary(now, period_seconds=period)
            await self._clock.sleep(boundary - now)
            await self.resync(
                round_id=hints.resync_round(int(boundary)),
                trigger=watcher_metrics.ResyncTrigger.PERIODIC,
            )

    def _on_resync_request(self, request: messages.ResyncRequest) -> None:
        decision = self._requested_rounds.receive(request)
        self._metrics.resync_requests_total.labels(decision).inc()
        _log.info(
            "resync requested",
            extra={
                "consumer": request.consumer,
                "stream": request.stream,
                "request_id": request.request_id,
                "decision": str(decision),
            },
        )
        if decision is rounds.Decision.QUEUED:
            self._round_requested.set()

    def _on_invalid_resync_request(self, error: errors.InvalidMessage) -> None:
        self._metrics.resync_requests_total.labels(rounds.Decision.INVALID).inc()
        _log.warning("undecodable resync request ignored", extra={"error": str(error)})

    async def _answer_resync_requests(self) -> None:
        while True:
            await self._round_requested.wait()
            self._round_requested.clear()
            round_id = self._requested_rounds.take()
            if round_id is None:
                continue  # another round started first and covered the requests
            await self.resync(round_id=round_id, trigger=watcher_metrics.ResyncTrigger.REQUEST)

    async def _resync_on_reconnect(self) -> None:
        seen = self._reconnects()
        while True:
            await self._clock.sleep(self._options.reconnect_check_interval_seconds)
            count = self._reconnects()
            if count == seen:
                continue
            seen = count
            _log.info("nats reconnected: re-declaring streams and resyncing")
            await self._declare_streams_until_done()
            await self.resync(
                round_id=f"reconnect-{uuid.uuid4().hex[:12]}",
                trigger=watcher_metrics.ResyncTrigger.RECONNECT,
            )
            # A server that lost its store lost the status records too; where they survived,
            # this costs one read per object (the stored record is as new).
            await self._republish_all_status()

    async def _republish_when_recreated(self) -> None:
        """LSS_STATUS declared again while connected (an operator deleted it, a clustered
        server lost the node that held it): every record it held is gone, but this process
        remembered them as stored, and an object whose status did not change would never
        have its record again (until a relist)."""
        while True:
            await self._status_stream_recreated.wait()
            self._status_stream_recreated.clear()
            _log.warning("status stream created again: republishing every status record")
            await self._republish_all_status()

    async def _republish_all_status(self) -> None:
        assert self._announcer is not None
        self._announcer.forget_stored_status()
        for resource_watcher in self._watchers:
            while True:
                try:
                    await resource_watcher.republish_status()
                    break
                except errors.LssError as error:
                    _log.warning(
                        "republishing status failed, retrying", extra={"error": str(error)}
                    )
                    await self._clock.sleep(self._options.retry_backoff_seconds[-1])

    def _reconnects(self) -> int:
        # nats-py counts reconnects in its stats; polling it keeps the connection's own
        # callbacks (logs, metrics) in lss_common untouched.
        return int(self._nats.connection.client.stats["reconnects"])

    async def _redeclare_streams(self) -> None:
        """One attempt at declaring both streams (a publish found none)."""
        async with self._declaring:
            await topology.declare_streams(
                self._nats.connection.jetstream, settings=self._nats_settings
            )

    async def _stream_missing(self) -> None:
        """A publish or a read found a stream missing: declare them again, and republish
        every status record — whoever created LSS_STATUS anew (this watcher, another
        replica, a service starting), the records this watcher remembers as stored are
        gone."""
        await self._redeclare_streams()
        if self._announced_start.is_set():
            # Not here: this runs inside a publish that holds a slot, and the republish
            # publishes through the same slots.
            self._status_stream_recreated.set()

    async def _declare_streams_until_done(self) -> None:
        attempt = 0
        while True:
            try:
                await self._redeclare_streams()
            except errors.RetryableError as error:
                attempt += 1
                _log.warning("declaring streams failed, retrying", extra={"error": str(error)})
                await self._clock.sleep(
                    backoff.delay_for_delivery(
                        attempt, delays_seconds=self._options.retry_backoff_seconds
                    )
                )
                continue
            return
