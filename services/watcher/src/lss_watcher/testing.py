"""Running the watcher in tests and benchmarks, and reading back what it published.

* :func:`isolated_settings`: watcher settings on a shared NATS server with a subject prefix
  and stream names of their own (see ``lss_common.testing.bus``).
* :func:`environment`: the same settings as ``LSS_*`` variables, for ``python -m lss_watcher``
  in a subprocess (tests that kill -9 it).
* :class:`RunningWatcher`: ``build(settings)`` run in-process until the context exits; entered
  once ``/readyz`` says ready (every initial list published).
* :class:`HintLog`: every hint stored on LSS_EVENTS, read by an ordered consumer created
  *before* the watcher publishes (the stream has interest retention).

No assertions here, no sleeps as synchronisation (waits poll a condition with a deadline).
Not used by the service itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import nats.aio.msg
import nats.js
from kubernetes_asyncio import client
from nats.js import api

from lss_common import settings as common_settings
from lss_common.bus import codec, topology
from lss_common.logic import subjects
from lss_common.models import kinds, messages
from lss_common.testing import eventually
from lss_watcher import service as watcher_service
from lss_watcher import settings as settings_module


def isolated_settings(
    *, kubeconfig: str, nats_url: str, **options: Any
) -> settings_module.WatcherSettings:
    """Settings with their own prefix and streams; ``options`` override ``WatcherOptions``."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        # Far away unless a test asks for it: a resync in the middle would add hints.
        "resync_period_seconds": 86400.0,
        "retry_backoff_seconds": [0.05, 0.1, 0.2, 0.5],
        "reconnect_check_interval_seconds": 0.2,
    }
    values.update(options)
    return settings_module.WatcherSettings(
        service_name=f"watcher-{tag}",
        nats=common_settings.NatsSettings(
            url=nats_url,
            subject_prefix=f"t{tag}",
            events_stream=f"T{tag}_EVENTS",
            status_stream=f"T{tag}_STATUS",
            reconnect_wait_seconds=0.1,
            connect_timeout_seconds=2.0,
            publish_timeout_seconds=2.0,
            drain_timeout_seconds=5.0,
        ),
        kube=common_settings.KubeSettings(kubeconfig=kubeconfig, request_timeout_seconds=5.0),
        http=common_settings.HttpSettings(host="127.0.0.1", port=0),
        consumer=common_settings.ConsumerSettings(shutdown_grace_seconds=10.0),
        watcher=settings_module.WatcherOptions.model_validate(values),
    )


def environment(settings: settings_module.WatcherSettings) -> dict[str, str]:
    """``settings`` as the ``LSS_*`` environment of a ``python -m lss_watcher`` process."""
    return common_settings.environment_of(
        settings, groups=("nats", "kube", "http", "watcher", "consumer")
    )


class RunningWatcher:
    """The watcher service running in this event loop (``async with``)."""

    def __init__(self, settings: settings_module.WatcherSettings) -> None:
        self.settings = settings
        self.service = watcher_service.build(settings)
        self._task: asyncio.Task[int] | None = None

    async def __aenter__(self) -> RunningWatcher:
        self._task = asyncio.create_task(self.service.run(handle_signals=False))
        ready: bool = await eventually.eventually(
            self.is_ready, timeout_seconds=60, describe="the watcher reports ready"
        )
        assert ready
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> int:
        """Stop gracefully; the exit code."""
        if self._task is None:
            return 0
        task, self._task = self._task, None
        self.service.request_stop("test finished")
        return await task

    @property
    def exit_code(self) -> int | None:
        """The exit code if the service has already ended on its own."""
        if self._task is None or not self._task.done():
            return None
        return self._task.result()

    async def is_ready(self) -> bool:
        if self._task is not None and self._task.done():
            raise RuntimeError(f"the watcher exited with {self._task.result()}")
        try:
            port = self.service.http_port
        except RuntimeError:
            return False
        return await readyz(f"http://127.0.0.1:{port}")

    def sample(self, name: str, **labels: str) -> float:
        """A metric sample's value (0.0 when never set)."""
        value = self.service.runtime.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


async def readyz(base_url: str) -> bool:
    """Whether ``base_url``/readyz answers 200."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as resp,
        ):
            return resp.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class Received:
    """One hint as stored in LSS_EVENTS."""

    subject: str
    msg_id: str | None
    stream_seq: int
    event: messages.ChangeEvent

    @property
    def key(self) -> subjects.ObjectKey:
        return subjects.ObjectKey(self.event.kind, self.event.namespace, self.event.name)


class HintLog:
    """Every hint stored on the events stream, in stream order.

    By default an ordered push consumer reads them; ``durable=...`` uses a durable pull
    consumer instead, which survives a nats-server restart (file store) and keeps unread
    hints while the server or this client is away.
    """

    def __init__(self, settings: common_settings.NatsSettings) -> None:
        self._settings = settings
        self.received: list[Received] = []
        self.undecodable: list[bytes] = []
        self._subscription: Any = None
        self._puller: asyncio.Task[None] | None = None

    async def start(self, js: nats.js.JetStreamContext, *, durable: str | None = None) -> None:
        """Declare the streams (as the watcher will) and start consuming everything."""
        await topology.declare_streams(js, settings=self._settings)
        filter_subject = subjects.events_filter(prefix=self._settings.subject_prefix)
        if durable is None:
            self._subscription = await js.subscribe(
                filter_subject,
                stream=self._settings.events_stream,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.ALL,
                cb=self._on_message,
            )
            return
        self._subscription = await js.pull_subscribe(
            filter_subject, durable=durable, stream=self._settings.events_stream
        )
        self._puller = asyncio.create_task(self._pull())

    async def _pull(self) -> None:
        while True:
            try:
                batch = await self._subscription.fetch(256, timeout=0.5)
            except Exception:
                # Idle, or the server is away: the durable consumer keeps our place.
                await asyncio.sleep(0.05)
                continue
            for msg in batch:
                await self._on_message(msg)
                with contextlib.suppress(Exception):
                    await msg.ack()

    async def stop(self) -> None:
        if self._puller is not None:
            self._puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._puller
            self._puller = None
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_message(self, msg: nats.aio.msg.Msg) -> None:
        try:
            event = codec.decode(msg.data, message_type=messages.ChangeEvent)
        except Exception:
            self.undecodable.append(msg.data)
            return
        self.received.append(
            Received(
                subject=msg.subject,
                msg_id=(msg.headers or {}).get(api.Header.MSG_ID.value),
                stream_seq=msg.metadata.sequence.stream,
                event=event,
            )
        )

    def for_key(self, kind: str, namespace: str | None, name: str) -> list[Received]:
        key = subjects.ObjectKey(kind, namespace, name)
        return [item for item in self.received if item.key == key]

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        return [item for item in self.received if predicate(item)]

    async def wait_for(
        self,
        predicate: Callable[[Received], bool],
        *,
        describe: str,
        timeout_seconds: float = 30,
    ) -> Received:
        """The first received hint matching ``predicate`` (waits until one arrives)."""

        def found() -> Received | None:
            return next((item for item in self.received if predicate(item)), None)

        result = await eventually.eventually(
            found, timeout_seconds=timeout_seconds, describe=describe
        )
        assert result is not None
        return result


@contextlib.asynccontextmanager
async def hint_log(
    js: nats.js.JetStreamContext,
    settings: common_settings.NatsSettings,
    *,
    durable: str | None = None,
) -> AsyncIterator[HintLog]:
    """A started :class:`HintLog`, stopped on exit."""
    log = HintLog(settings)
    await log.start(js, durable=durable)
    try:
        yield log
    finally:
        await log.stop()


MERGE = "application/merge-patch+json"
# kubernetes_asyncio picks JSON patch for a dict body unless told otherwise.
_MERGE: dict[str, Any] = {"_content_type": MERGE}


class Objects:
    """Create, change and delete the five kinds and the child kinds in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.networking = client.NetworkingV1Api(api)

    async def create(
        self, plural: str, body: dict[str, Any], *, namespaced: bool = True
    ) -> dict[str, Any]:
        if namespaced:
            result: dict[str, Any] = await self.custom.create_namespaced_custom_object(
                kinds.GROUP, kinds.VERSION, self.namespace, plural, body
            )
        else:
            result = await self.custom.create_cluster_custom_object(
                kinds.GROUP, kinds.VERSION, plural, body
            )
        return result

    async def patch(
        self, plural: str, name: str, body: dict[str, Any], *, namespaced: bool = True
    ) -> dict[str, Any]:
        if namespaced:
            result: dict[str, Any] = await self.custom.patch_namespaced_custom_object(
                kinds.GROUP, kinds.VERSION, self.namespace, plural, name, body, **_MERGE
            )
        else:
            result = await self.custom.patch_cluster_custom_object(
                kinds.GROUP, kinds.VERSION, plural, name, body, **_MERGE
            )
        return result

    async def patch_status(
        self, plural: str, name: str, status: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.custom.patch_namespaced_custom_object_status(
            kinds.GROUP,
            kinds.VERSION,
            namespace or self.namespace,
            plural,
            name,
            {"status": status},
            **_MERGE,
        )
        return result

    async def delete(self, plural: str, name: str, *, namespaced: bool = True) -> None:
        if namespaced:
            await self.custom.delete_namespaced_custom_object(
                kinds.GROUP, kinds.VERSION, self.namespace, plural, name
            )
        else:
            await self.custom.delete_cluster_custom_object(kinds.GROUP, kinds.VERSION, plural, name)


def custom_body(kind: str, name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A minimal valid object of one of the five kinds (``kind`` as a hint token)."""
    specs: dict[str, dict[str, Any]] = {
        "sandbox": {"runtime": "python:3.11"},
        "sandboxprofile": {"language": "python"},
        "warmpool": {"runtime": "python:3.11", "minSize": 1},
        "warmpod": {
            "poolRef": {"name": "pool"},
            "runtime": "python:3.11",
            "securityLevel": "standard",
            "resources": {"cpu": "500m", "memory": "512Mi", "ephemeralStorage": "1Gi"},
        },
        "runtimeenvironment": {
            "image": "ghcr.io/llmsafespace/runtime-python:3.11",
            "language": "python",
            "version": "3.11",
        },
    }
    resource = next(r for r in kinds.ALL if r.singular == kind)
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": resource.kind,
        "metadata": metadata,
        "spec": specs[kind],
    }


class Churn:
    """Keeps changing a set of namespaced objects (label patches, round-robin) until stopped.

    Failures (an API server that is down) are counted and the change is tried again later;
    whether a failed request was committed is unknown, so callers read the final state from
    the API server rather than trusting :attr:`changes`.
    """

    def __init__(
        self, objects: Objects, names: list[str], *, plural: str = "sandboxes", concurrency: int = 8
    ) -> None:
        self._objects = objects
        self._names = list(names)
        self._plural = plural
        self._concurrency = concurrency
        self.changes = 0
        self.failures = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def wait_changes(self, count: int, *, timeout_seconds: float = 120) -> None:
        """Wait until at least ``count`` changes in total have been committed."""
        await eventually.eventually(
            lambda: self.changes >= count,
            timeout_seconds=timeout_seconds,
            describe=f"{count} changes committed (now {self.changes}, {self.failures} failed)",
        )

    async def _run(self) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in self._names:
            queue.put_nowait(name)

        async def worker() -> None:
            round_number = 0
            while not self._stop.is_set():
                name = await queue.get()
                round_number += 1
                try:
                    await self._objects.patch(
                        self._plural,
                        name,
                        {"metadata": {"labels": {"churn": str(round_number)}}},
                    )
                except Exception:
                    self.failures += 1
                    # The API server is away: give it a moment instead of spinning.
                    await asyncio.sleep(0.05)
                else:
                    self.changes += 1
                finally:
                    queue.put_nowait(name)

        await asyncio.gather(*(worker() for _ in range(self._concurrency)))


async def current_versions(objects: Objects, *, plural: str = "sandboxes") -> dict[str, str]:
    """Name → resourceVersion of every object of ``plural`` in the namespace, right now."""
    listed = await objects.custom.list_namespaced_custom_object(
        kinds.GROUP, kinds.VERSION, objects.namespace, plural
    )
    return {
        item["metadata"]["name"]: item["metadata"]["resourceVersion"] for item in listed["items"]
    }
