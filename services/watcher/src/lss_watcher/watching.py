"""List, then watch, one resource for the life of the process; every change goes to the Announcer.

The loop of one :class:`ResourceWatcher`:

1. **List** page by page (``limit``/``continue``), each object decoded into a trimmed view and
   fed to the tracker's relist; the hints of new, changed and vanished objects (and the status
   records of Sandboxes and WarmPools) are submitted as they come, and the loop waits until all
   are acknowledged before it watches. After the first list the resource counts as *listed*
   (readiness). Stored status records of objects the list shows gone are marked deleted.
2. **Watch** from the list's resourceVersion with bookmarks, streaming the response
   (``_preload_content=False``) and splitting it into lines that msgspec decodes. Each event
   updates the tracker and submits its hints; a bookmark only moves the resourceVersion.
3. When the watch ends — the server's ``timeoutSeconds``, a dropped connection, an idle
   stream, an API server restart — the loop first waits for every submitted publish (so the
   resourceVersion it resumes from never skips an unannounced change), then re-watches from
   that version; after an error it backs off first. ``410 Gone`` (as an HTTP status or an
   ERROR event), or a list that failed, means list again: the relist announces every
   difference, deletions included.

Nothing an API server sends can crash the loop: a line or object that does not decode, or
lacks its identity, is logged, counted in ``undecodable_total`` and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import typing
from collections.abc import AsyncIterator, Callable

import aiohttp
import msgspec

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.logic import backoff, status_records
from lss_common.observability import logs
from lss_common.runtime import clock as clock_module
from lss_watcher import hints, publishing, resources, status, tracker, views
from lss_watcher import metrics as watcher_metrics
from lss_watcher import settings as settings_module

_log = logging.getLogger(__name__)

_CHANGE_TYPES: frozenset[str] = frozenset((hints.ADDED, hints.MODIFIED, hints.DELETED))
_ALL_TYPES = (*sorted(_CHANGE_TYPES), "BOOKMARK", "ERROR", "LISTED", "OTHER")


class _Gone(Exception):
    """The resourceVersion is too old to watch from: list again."""


class _ListPageMeta(msgspec.Struct, rename="camel"):
    resource_version: str = ""
    continue_: str = msgspec.field(default="", name="continue")


class _ListPage(msgspec.Struct):
    metadata: _ListPageMeta = msgspec.field(default_factory=_ListPageMeta)
    items: list[msgspec.Raw] | None = None


_list_page_decoder = msgspec.json.Decoder(_ListPage)


class _Pages:
    """What a paged list learned besides its objects."""

    resource_version = ""


class ResourceWatcher:
    """Lists and watches one resource, feeding its tracker and the announcer."""

    def __init__(
        self,
        resource: resources.WatchedResource,
        *,
        kube: Callable[[], client.Kube],
        announcer: publishing.Announcer,
        window: publishing.Window,
        options: settings_module.WatcherOptions,
        metrics: watcher_metrics.WatcherMetrics,
        clock: clock_module.Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.resource = resource
        self.tracker = tracker.Tracker(resource)
        self.listed = asyncio.Event()
        self._kube = kube
        self._announcer = announcer
        self._window = window
        self._options = options
        self._metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()
        self._position = ""
        self._lines = 0
        self._events = {
            event_type: metrics.events_total.labels(resource.name, event_type)
            for event_type in _ALL_TYPES
        }
        self._undecodable = metrics.undecodable_total.labels(resource.name)
        self._tracked = metrics.objects_tracked.labels(resource.name)

    async def run(self) -> None:
        """List and watch forever (until cancelled)."""
        must_list = True
        failures = 0
        with logs.bind(kind=str(self.resource.name)):
            while True:
                reason: watcher_metrics.RestartReason | None = None
                try:
                    if must_list:
                        if self.listed.is_set():
                            self._metrics.relists_total.labels(self.resource.name).inc()
                        await self._list()
                        must_list = False
                        failures = 0
                        if not self.listed.is_set():
                            _log.info(
                                "initial list published", extra={"objects": len(self.tracker)}
                            )
                            self.listed.set()
                    opened = self._clock.monotonic()
                    reason = await self._watch()
                    if self._lines == 0 and self._clock.monotonic() - opened < 1.0:
                        # Closed at once without a word (a misbehaving proxy?): back off
                        # rather than spin.
                        failures += 1
                    elif reason is not watcher_metrics.RestartReason.IDLE:
                        failures = 0
                    if reason is watcher_metrics.RestartReason.IDLE:
                        # Not even a bookmark (sent about every minute) for the idle
                        # timeout: the connection died, or the position is ahead of the API
                        # server (etcd restored from a backup without a revision bump), which
                        # then delivers nothing until its revision passes it, and those
                        # changes would be skipped. A list is right in both cases.
                        must_list = True
                except errors.NotFoundError as error:
                    if not self.resource.optional:
                        reason = watcher_metrics.RestartReason.ERROR
                        failures += 1
                        _log.warning(
                            "resource not served, retrying",
                            extra={"error": str(error), "failures": failures},
                        )
                    else:
                        await self._not_served()
                        must_list = True
                        continue
                except _Gone:
                    reason = watcher_metrics.RestartReason.GONE
                    must_list = True
                    _log.info("resource version expired, relisting")
                except (errors.LssError, aiohttp.ClientError, OSError, TimeoutError) as error:
                    reason = watcher_metrics.RestartReason.ERROR
                    failures += 1
                    _log.warning(
                        "list or watch failed, retrying",
                        extra={"error": f"{type(error).__name__}: {error}", "failures": failures},
                    )
                # Never resume past a change whose hint is not stored yet.
                await self._window.drain()
                if reason is not None:
                    self._metrics.watch_restarts_total.labels(self.resource.name, reason).inc()
                if failures:
                    await self._clock.sleep(
                        backoff.delay_for_delivery(
                            failures, delays_seconds=self._options.retry_backoff_seconds
                        )
                    )

    async def _not_served(self) -> None:
        """An optional resource the API server does not serve: nothing to track, ready anyway;
        look again after ``optional_recheck_seconds`` (its CRD may be installed later)."""
        vanished_hints, _ = self.tracker.relist().finish()
        for hint in vanished_hints:
            await self._window.submit(self._announcer.publish_hint(hint, received_at=None))
        await self._window.drain()
        self._tracked.set(0)
        if not self.listed.is_set():
            _log.info("optional resource not served; checking again later")
            self.listed.set()
        await self._clock.sleep(self._options.optional_recheck_seconds)

    # -- list -------------------------------------------------------------------------------

    async def _list(self) -> None:
        if self.resource.publishes_status:
            # A relist may skip versions another replica published; what this process
            # remembers about stored records may be out of date: read them back instead.
            self._announcer.forget_stored_status()
        relisting = self.tracker.relist(after_gap=self.listed.is_set())
        pages = _Pages()
        async for view in self._listed(pages):
            found = relisting.add(view)
            if found is None:
                continue
            for hint in found:
                await self._window.submit(self._announcer.publish_hint(hint, received_at=None))
            if self.resource.publishes_status:
                await self._submit_status(view, deleted=False, received_at=None)
        vanished_hints, vanished = relisting.finish()
        for hint in vanished_hints:
            await self._window.submit(self._announcer.publish_hint(hint, received_at=None))
        self._position = pages.resource_version
        self._tracked.set(len(self.tracker))
        if vanished:
            _log.info("objects deleted while unwatched", extra={"objects": len(vanished)})
        if self.resource.publishes_status:
            await self.reconcile_status(snapshot_version=pages.resource_version)
        await self._window.drain()

    async def republish_status(self) -> None:
        """Publish the committed status of every object again (only where the stored record
        is missing or older): after NATS came back, possibly without its store."""
        if not self.resource.publishes_status or not self.listed.is_set():
            return
        async for view in self._listed(_Pages()):
            await self._submit_status(view, deleted=False, received_at=None)
        await self._window.drain()

    async def _listed(self, pages: _Pages) -> AsyncIterator[views.ObjectView]:
        """Every object of a complete list, page by page (undecodable ones skipped);
        ``pages.resource_version`` is the snapshot's version once the last page is read."""
        token = ""
        while True:
            query: list[tuple[str, str]] = [("limit", str(self._options.list_page_size))]
            if self.resource.label_selector:
                query.append(("labelSelector", self.resource.label_selector))
            if token:
                query.append(("continue", token))
            data = await self._get(query)
            try:
                page = _list_page_decoder.decode(data)
            except msgspec.DecodeError as error:
                raise errors.RetryableError(
                    f"{self.resource.name}: malformed list: {error}"
                ) from error
            for raw in page.items or ():
                view = self._decode(raw)
                if view is not None:
                    self._events["LISTED"].inc()
                    yield view
            token = page.metadata.continue_
            if not token:
                pages.resource_version = page.metadata.resource_version
                return

    async def reconcile_status(self, *, snapshot_version: str | None = None) -> int:
        """Mark deleted the stored status records of objects that no longer exist, and
        announce their deletion (a watcher that was down when they went never did).

        Only records no newer than the tracked state are judged (a record written by another
        replica for an object created after our snapshot is left alone). Returns how many
        records were submitted for marking.
        """
        kind = self.resource.own_kind
        if kind is None or not self.resource.publishes_status:
            return 0
        version = snapshot_version if snapshot_version is not None else self._position
        live = self.tracker.identities()
        keys = await self._announcer.stored_status_keys(kind, namespace=self.resource.namespace)
        marked = 0
        for key in keys:
            if (key.namespace, key.name) in live:
                continue
            await self._window.submit(self._mark_deleted(key, as_of=version))
            marked += 1
        return marked

    async def _mark_deleted(self, key: tracker.ObjectKey, *, as_of: str) -> None:
        while True:
            try:
                record = await self._announcer.read_status(key)
                break
            except errors.LssError as error:
                _log.warning("reading a status record failed", extra={"error": str(error)})
                await self._clock.sleep(self._options.retry_backoff_seconds[-1])
        if record is None or record.deleted:
            return
        if (key.namespace, key.name) in self.tracker:
            return
        if not status_records.is_newer(
            status_records.Stored(uid=record.uid, resource_version=as_of, deleted=True),
            status_records.stored(record),
        ):
            return
        # The object's deletion was never announced by this process (it was not running, or
        # not watching): announce it now, with the id a relist would have used.
        await self._announcer.publish_hint(
            hints.own_vanished(key, uid=record.uid, last_resource_version=record.resource_version),
            received_at=None,
        )
        final = status_records.deleted_copy(record, observed_at=self._clock.now())
        await self._announcer.publish_status(
            final, msg_id=status_records.msg_id(final), received_at=None
        )

    async def _get(self, query: list[tuple[str, str]]) -> bytes:
        kube = self._kube()
        what = f"{self.resource.name} list"
        try:
            async with asyncio.timeout(kube.request_timeout_seconds):
                response = await kube.api.call_api(
                    self.resource.collection_path,
                    "GET",
                    query_params=query,
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                )
                async with response:
                    data: bytes = await response.read()
                    code: int = response.status
        except TimeoutError as error:
            raise errors.RetryableError(f"{what} timed out") from error
        except (aiohttp.ClientError, OSError) as error:
            raise errors.RetryableError(f"{what} failed: {error}") from error
        if code == 410:
            # The continue token expired mid-list: start the list over.
            raise errors.RetryableError(f"{what}: continue token expired")
        if code != 200:
            raise objects.translate_error(code, data, what=what)
        return data

    # -- watch ------------------------------------------------------------------------------

    async def _watch(self) -> watcher_metrics.RestartReason:
        kube = self._kube()
        timeout_seconds = int(
            self._rng.uniform(
                self._options.watch_timeout_seconds, 2 * self._options.watch_timeout_seconds
            )
        )
        query: list[tuple[str, str]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self._position),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if self.resource.label_selector:
            query.append(("labelSelector", self.resource.label_selector))
        request_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=kube.request_timeout_seconds,
            sock_connect=kube.request_timeout_seconds,
            sock_read=self._options.watch_idle_timeout_seconds,
        )
        what = f"{self.resource.name} watch"
        try:
            async with asyncio.timeout(kube.request_timeout_seconds):
                response = await kube.api.call_api(
                    self.resource.collection_path,
                    "GET",
                    query_params=query,
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _request_timeout=request_timeout,
                )
        except TimeoutError as error:
            raise errors.RetryableError(f"{what}: no response") from error
        async with response:
            if response.status != 200:
                data = await response.read()
                if response.status == 410:
                    raise _Gone()
                raise objects.translate_error(response.status, data, what=what)
            splitter = views.LineSplitter()
            self._lines = 0
            try:
                async for chunk in response.content.iter_any():
                    received = self._clock.monotonic()
                    for line in splitter.feed(chunk):
                        self._lines += 1
                        await self._on_line(line, received_at=received)
            except TimeoutError:
                return watcher_metrics.RestartReason.IDLE
        return watcher_metrics.RestartReason.EXPIRED

    async def _on_line(self, line: bytes, *, received_at: float) -> None:
        try:
            event = views.decode_event(line)
        except msgspec.DecodeError as error:
            self._skip("undecodable watch line", error=error, sample=line)
            return
        event_type = event.type
        if event_type in _CHANGE_TYPES and not views.is_absent(event.object):
            self._events[event_type].inc()
            view = self._decode(event.object)
            if view is None:
                return
            found = self.tracker.observe(typing.cast(hints.EventType, event_type), view)
            for hint in found:
                await self._window.submit(
                    self._announcer.publish_hint(hint, received_at=received_at)
                )
            if self.resource.publishes_status:
                await self._submit_status(
                    view, deleted=event_type == hints.DELETED, received_at=received_at
                )
            self._position = view.metadata.resource_version
            self._tracked.set(len(self.tracker))
        elif event_type == "BOOKMARK" and not views.is_absent(event.object):
            self._events["BOOKMARK"].inc()
            try:
                version = views.decode_bookmark_version(event.object)
            except msgspec.DecodeError as error:
                self._skip("undecodable bookmark", error=error, sample=line)
                return
            if version:
                self._position = version
        elif event_type == "ERROR":
            self._events["ERROR"].inc()
            try:
                api_status = views.decode_status(event.object)
            except msgspec.DecodeError:
                api_status = views.ApiStatus()
            if api_status.code == 410:
                raise _Gone()
            raise errors.RetryableError(
                f"{self.resource.name} watch error {api_status.code} {api_status.reason}: "
                f"{api_status.message}"
            )
        else:
            self._events["OTHER"].inc()
            self._skip("unexpected watch event", error=None, sample=line)

    def _decode(self, raw: msgspec.Raw) -> views.ObjectView | None:
        try:
            view = views.decode_object(raw)
        except msgspec.DecodeError as error:
            self._skip("undecodable object", error=error, sample=bytes(raw))
            return None
        if not self.tracker.accepts(view):
            self._skip("object without identity", error=None, sample=bytes(raw))
            return None
        return view

    async def _submit_status(
        self, view: views.ObjectView, *, deleted: bool, received_at: float | None
    ) -> None:
        kind = self.resource.own_kind
        assert kind is not None  # only custom kinds publish status
        try:
            record = status.record_of(kind, view, observed_at=self._clock.now(), deleted=deleted)
        except (msgspec.DecodeError, ValueError, OverflowError) as error:
            # A status others wrote that cannot become a record: skipped, never a crash
            # (the next list would meet it again at every restart).
            self._skip("undecodable status", error=error, sample=bytes(view.status))
            return
        await self._window.submit(
            self._announcer.publish_status(
                record, msg_id=status_records.msg_id(record), received_at=received_at
            )
        )

    def _skip(self, message: str, *, error: Exception | None, sample: bytes) -> None:
        self._undecodable.inc()
        _log.warning(
            message,
            extra={
                "error": None if error is None else str(error),
                # Enough to recognise the object; never the whole (possibly huge) line.
                "sample": sample[:200].decode(errors="replace"),
            },
        )
