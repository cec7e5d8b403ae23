"""Undecodable or unexpected objects do not crash the watcher.

The real kube-apiserver validates what it stores, so the bad input is injected by a small
fault-injecting proxy in front of it (the API server still answers every request; the proxy
only adds lines and items): the sandbox list gets three bad items, and the first sandbox
watch starts with a non-JSON line, an unknown event type, an object of the wrong shape, an
object without a uid, and a sandbox whose status is malformed. The watcher becomes ready,
counts every bad input in ``undecodable_total``, still announces the malformed-status sandbox
(without a status record), and goes on announcing the real changes that follow.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import nats.aio.client
import pytest
from aiohttp import web

from lss_common.bus import status_client
from lss_common.testing import eventually
from lss_dev import platform as platform_module
from lss_watcher import settings as settings_module
from lss_watcher import testing

pytestmark = pytest.mark.integration

BAD_LIST_ITEMS = [7, {"metadata": {"name": 7}}, {"metadata": {"name": "no-identity"}}]


def bad_watch_lines(namespace: str, version: str) -> list[bytes]:
    malformed_status = {
        "type": "ADDED",
        "object": {
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "Sandbox",
            "metadata": {
                "name": "bad-status",
                "namespace": namespace,
                "uid": "injected-uid",
                "resourceVersion": version,
            },
            "spec": {"runtime": "python:3.11"},
            "status": {"phase": "Running", "conditions": {"not": "a list"}},
        },
    }
    return [
        b"this is not json",
        b'{"type":"WEIRD","object":{}}',
        b'{"type":"ADDED","object":{"metadata":{"name":7}}}',
        b'{"type":"MODIFIED","object":{"metadata":{"name":"no-uid","namespace":"x"}}}',
        json.dumps(malformed_status).encode(),
    ]


class InjectingProxy:
    """Forwards to the API server with the admin credentials; adds bad input to sandboxes."""

    def __init__(self, platform: platform_module.Platform, namespace: str) -> None:
        pki = platform.control_plane.pki
        self._upstream = platform.control_plane.server
        self._ssl = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._ssl.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._namespace = namespace
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.injected_watches = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Watches are long requests: do not wait for them on shutdown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}
                    ],
                    "users": [{"name": "anonymous", "user": {}}],
                    "contexts": [
                        {"name": "proxy", "context": {"cluster": "proxy", "user": "anonymous"}}
                    ],
                    "current-context": "proxy",
                }
            )
        )
        return path

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        is_sandboxes = request.path.endswith("/sandboxes")
        is_watch = request.query.get("watch") in ("true", "1")
        async with self._session.request(
            request.method,
            self._upstream + request.path_qs,
            data=await request.read() or None,
            headers={
                k: v for k, v in request.headers.items() if k.lower() in ("accept", "content-type")
            },
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=None),
        ) as upstream:
            content_type = upstream.headers.get("Content-Type", "application/json")
            if is_watch and upstream.status == 200:
                response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
                await response.prepare(request)
                if is_sandboxes and self.injected_watches == 0:
                    self.injected_watches += 1
                    version = request.query.get("resourceVersion", "")
                    for line in bad_watch_lines(self._namespace, version):
                        await response.write(line + b"\n")
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                return response
            body = await upstream.read()
            if is_sandboxes and request.method == "GET" and upstream.status == 200:
                document = json.loads(body)
                document["items"] = BAD_LIST_ITEMS + document.get("items", [])
                body = json.dumps(document).encode()
            return web.Response(
                status=upstream.status, body=body, headers={"Content-Type": content_type}
            )


@pytest.fixture
async def proxy(
    platform: platform_module.Platform, namespace: str
) -> AsyncIterator[InjectingProxy]:
    server = InjectingProxy(platform, namespace)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_bad_input_is_counted_and_skipped(
    tmp_path: Path,
    proxy: InjectingProxy,
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    settings = settings.model_copy(
        update={
            "kube": settings.kube.model_copy(
                update={"kubeconfig": str(proxy.kubeconfig(tmp_path / "proxy.kubeconfig"))}
            )
        }
    )
    cleanup_streams(settings)
    ns = objects.namespace
    await objects.create("sandboxes", testing.custom_body("sandbox", "before"))
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings) as running,
    ):
        await log.wait_for(
            lambda r: r.key == ("sandbox", ns, "before"), describe="the real object of the list"
        )
        await eventually.eventually(
            lambda: proxy.injected_watches == 1,
            timeout_seconds=20,
            describe="the bad watch lines were sent",
        )
        bad = await log.wait_for(
            lambda r: r.key == ("sandbox", ns, "bad-status"),
            describe="the sandbox with a malformed status is still announced",
        )
        assert bad.event.uid == "injected-uid"
        # Real changes after the bad input still flow.
        after = await objects.create("sandboxes", testing.custom_body("sandbox", "after"))
        await log.wait_for(
            lambda r: (
                r.key == ("sandbox", ns, "after")
                and r.event.resource_version == after["metadata"]["resourceVersion"]
            ),
            describe="a real change after the bad input",
        )
        # 3 bad list items + 5 bad watch lines (the unknown type and the status included).
        assert running.sample("llmsafespace_watcher_undecodable_total", kind="sandbox") == 8
        assert (
            running.sample("llmsafespace_watcher_events_total", kind="sandbox", type="OTHER") == 1
        )
        assert running.exit_code is None
        assert await running.is_ready()
        assert (
            await status_client.get_status(
                nc.jetstream(),
                kind="sandbox",
                namespace=ns,
                name="bad-status",
                stream=settings.nats.status_stream,
                prefix=settings.nats.subject_prefix,
            )
            is None
        )
        await eventually.eventually(
            lambda: status_client.get_status(
                nc.jetstream(),
                kind="sandbox",
                namespace=ns,
                name="after",
                stream=settings.nats.status_stream,
                prefix=settings.nats.subject_prefix,
            ),
            timeout_seconds=20,
            describe="the real sandbox's status record",
        )
