"""Helpers of the reconciler's integration tests: running the watcher and reconciler, objects.

The platform (kube-apiserver + kwok, nats-server) comes from ``lss_dev``'s pytest plugin.
Every test gets its own namespace (Pod Security ``restricted``), its own subject prefix and
streams on the shared NATS server, and a RuntimeEnvironment language of its own (runtimes
are cluster-scoped and selected by ``language:version``, so tests must not share one).
The reconciler's consumer is declared before the watcher starts publishing (interest
retention drops hints no consumer is interested in yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import nats

from lss_common import errors
from lss_common import settings as common_settings
from lss_common.bus import codec
from lss_common.kube import client, objects
from lss_common.logic import subjects
from lss_common.models import kinds, labels, messages
from lss_common.testing import eventually
from lss_dev import identities
from lss_dev import platform as platform_module
from lss_sandbox_reconciler import names
from lss_sandbox_reconciler import service as reconciler_service
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module
from lss_watcher import testing as watcher_testing

WAIT_SECONDS = 60.0


def reconciler_settings(
    *,
    kubeconfig: str,
    nats: common_settings.NatsSettings,
    tag: str,
    reconcile_options: Mapping[str, Any] | None = None,
    warm_options: Mapping[str, Any] | None = None,
    **sandbox_options: Any,
) -> settings_module.SandboxReconcilerSettings:
    """Reconciler settings on the given (isolated) NATS settings; fast test timings.

    ``sandbox_options`` override ``SandboxOptions``, ``reconcile_options`` ``ReconcileOptions``,
    ``warm_options`` ``WarmOptions``.
    """
    options: dict[str, Any] = {"deletion_poll_seconds": 0.5}
    options.update(sandbox_options)
    reconcile: dict[str, Any] = {"dns_timeout_seconds": 1.0}
    reconcile.update(reconcile_options or {})
    return settings_module.SandboxReconcilerSettings(
        service_name=f"reconciler-{tag}",
        nats=nats,
        kube=common_settings.KubeSettings(kubeconfig=kubeconfig, request_timeout_seconds=10.0),
        http=common_settings.HttpSettings(host="127.0.0.1", port=0),
        consumer=common_settings.ConsumerSettings(
            concurrency=32,
            ack_wait_seconds=10.0,
            fetch_timeout_seconds=0.5,
            backoff_seconds=[0.1, 0.2, 0.5, 1.0],
            shutdown_grace_seconds=5.0,
        ),
        sandbox=settings_module.SandboxOptions.model_validate(options),
        reconcile=settings_module.ReconcileOptions.model_validate(reconcile),
        warm=settings_module.WarmOptions.model_validate(dict(warm_options or {})),
    )


def environment(settings: settings_module.SandboxReconcilerSettings) -> dict[str, str]:
    """``settings`` as the ``LSS_*`` environment of a ``python -m lss_sandbox_reconciler``."""
    return {
        **common_settings.environment_of(
            settings, groups=("nats", "kube", "http", "consumer", "sandbox", "reconcile", "warm")
        ),
        "LSS_LOG__JSON_FORMAT": "true",
    }


class RunningReconciler:
    """``build(settings)`` running in this event loop until :meth:`stop`."""

    def __init__(self, settings: settings_module.SandboxReconcilerSettings) -> None:
        self.settings = settings
        self.service = reconciler_service.build(settings)
        self._task: asyncio.Task[int] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.service.run(handle_signals=False))

        async def ready() -> bool:
            if self._task is not None and self._task.done():
                raise RuntimeError(f"the reconciler exited with {self._task.result()}")
            try:
                port = self.service.http_port
            except RuntimeError:
                return False
            return await watcher_testing.readyz(f"http://127.0.0.1:{port}")

        await eventually.eventually(ready, timeout_seconds=60, describe="reconciler ready")

    @property
    def exited(self) -> bool:
        """Whether the service ended by itself (it runs until stopped)."""
        return self._task is not None and self._task.done()

    async def stop(self) -> int:
        if self._task is None:
            return 0
        task, self._task = self._task, None
        self.service.request_stop("test finished")
        return await task

    def sample(self, name: str, **labels: str) -> float:
        value = self.service.runtime.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def counted(self, name: str, value: float, **labels: str) -> None:
        """Until the counter ``name`` reads ``value`` (see ``eventually.reaches``)."""
        await eventually.reaches(
            lambda: self.sample(name, **labels), value, describe=f"{name}{labels}"
        )


class ReconcilerProcess:
    """``python -m lss_sandbox_reconciler`` in a subprocess (so kill -9 loses its work)."""

    def __init__(
        self, settings: settings_module.SandboxReconcilerSettings, *, log_file: Path
    ) -> None:
        self.settings = settings
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **environment(self.settings)}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lss_sandbox_reconciler"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, port: int) -> None:
        async def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"reconciler exited: {self.log_file.read_text()[-2000:]}")
            return await watcher_testing.readyz(f"http://127.0.0.1:{port}")

        await eventually.eventually(ready, timeout_seconds=60, describe="reconciler process ready")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def sandbox_of(child: dict[str, Any]) -> str | None:
    """The UID of the Sandbox a child belongs to: its UID label, else the UID of its
    controller reference when that is a Sandbox."""
    metadata = child.get("metadata") or {}
    labelled = (metadata.get("labels") or {}).get(owner_module.SANDBOX_UID)
    if labelled is not None:
        return str(labelled)
    for ref in metadata.get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == kinds.SANDBOX.kind:
            return str(ref.get("uid"))
    return None


class Cluster:
    """Create and read the objects of one test namespace through lss_common.kube."""

    def __init__(self, kube: client.Kube, *, namespace: str, language: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.language = language
        self.runtimes: list[str] = []

    @property
    def runtime(self) -> str:
        """The ``spec.runtime`` of this test's default RuntimeEnvironment."""
        return f"{self.language}:1.0"

    async def create_runtime(
        self,
        *,
        image: str = "ghcr.io/llmsafespace/runtime-python:3.11",
        version: str = "1.0",
        language: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> str:
        name = f"{language or self.language}-{version.replace('.', '-')}"
        body = {
            "apiVersion": kinds.API_VERSION,
            "kind": "RuntimeEnvironment",
            "metadata": {"name": name},
            "spec": {
                "image": image,
                "language": language or self.language,
                "version": version,
                **(spec or {}),
            },
        }
        await objects.create_object(self.kube, resource=objects.RUNTIME_ENVIRONMENT, body=body)
        self.runtimes.append(name)
        return f"{language or self.language}:{version}"

    async def create_profile(
        self, name: str, *, spec: dict[str, Any], namespace: str | None = None
    ) -> None:
        body = {
            "apiVersion": kinds.API_VERSION,
            "kind": "SandboxProfile",
            "metadata": {"name": name, "namespace": namespace or self.namespace},
            "spec": {"language": self.language, **spec},
        }
        await objects.create_object(
            self.kube,
            resource=objects.SANDBOX_PROFILE,
            body=body,
            namespace=namespace or self.namespace,
        )

    async def create_sandbox(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": kinds.API_VERSION,
            "kind": "Sandbox",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"runtime": self.runtime, **spec},
        }
        return await objects.create_object(
            self.kube, resource=objects.SANDBOX, body=body, namespace=self.namespace
        )

    async def sandbox(self, name: str) -> dict[str, Any] | None:
        try:
            return await objects.get_object(
                self.kube, resource=objects.SANDBOX, name=name, namespace=self.namespace
            )
        except errors.NotFoundError:
            return None

    async def delete_sandbox(self, name: str) -> None:
        await objects.delete_object(
            self.kube, resource=objects.SANDBOX, name=name, namespace=self.namespace
        )

    async def child(self, resource: objects.ApiResource, name: str) -> dict[str, Any] | None:
        try:
            return await objects.get_object(
                self.kube, resource=resource, name=name, namespace=self.namespace
            )
        except errors.NotFoundError:
            return None

    async def children(self, sandbox_uid: str | None = None) -> dict[str, list[str]]:
        """Names of every sandbox child in the namespace, by kind (of that sandbox, if given):
        what carries a sandbox's UID label, or no such label and a Sandbox's controller
        reference (a warm pod's Service, re-owned by the claim without a relabel)."""
        result: dict[str, list[str]] = {}
        for resource in (
            objects.POD,
            objects.SERVICE,
            objects.SERVICE_ACCOUNT,
            objects.NETWORK_POLICY,
            objects.PERSISTENT_VOLUME_CLAIM,
        ):
            found = await objects.list_objects(
                self.kube,
                resource=resource,
                namespace=self.namespace,
                label_selector=f"{labels.APP}={labels.APP_VALUE}",
            )
            result[resource.kind] = sorted(
                item["metadata"]["name"]
                for item in found.items
                if (owner := sandbox_of(item)) is not None
                and (sandbox_uid is None or owner == sandbox_uid)
            )
        return result

    async def wait_phase(
        self, name: str, phase: str, *, timeout_seconds: float = WAIT_SECONDS
    ) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            obj = await self.sandbox(name)
            if obj is not None and (obj.get("status") or {}).get("phase") == phase:
                return obj
            return None

        last: dict[str, Any] | None = None

        async def probe() -> dict[str, Any] | None:
            nonlocal last
            last = await self.sandbox(name)
            return await reached()

        try:
            result: dict[str, Any] = await eventually.eventually(
                probe,
                timeout_seconds=timeout_seconds,
                describe=f"sandbox {name} in phase {phase}",
            )
        except eventually.EventuallyTimeout as error:
            raise AssertionError(f"{error}; last status: {(last or {}).get('status')}") from None
        return result

    async def wait_gone(self, name: str, *, timeout_seconds: float = WAIT_SECONDS) -> None:
        async def gone() -> bool:
            return await self.sandbox(name) is None

        await eventually.eventually(
            gone, timeout_seconds=timeout_seconds, describe=f"sandbox {name} deleted"
        )

    async def delete_every_sandbox(self, *, timeout_seconds: float) -> None:
        """Delete this namespace's Sandboxes and wait until they are gone (best effort)."""
        found = await objects.list_objects(
            self.kube, resource=objects.SANDBOX, namespace=self.namespace
        )
        for item in found.items:
            with contextlib.suppress(errors.NotFoundError):
                await self.delete_sandbox(item["metadata"]["name"])

        async def gone() -> bool:
            left = await objects.list_objects(
                self.kube, resource=objects.SANDBOX, namespace=self.namespace
            )
            return not left.items

        with contextlib.suppress(eventually.EventuallyTimeout):
            await eventually.eventually(
                gone, timeout_seconds=timeout_seconds, describe="every sandbox deleted"
            )

    async def cleanup(self) -> None:
        for name in self.runtimes:
            with contextlib.suppress(errors.LssError):
                await objects.delete_object(
                    self.kube, resource=objects.RUNTIME_ENVIRONMENT, name=name
                )


class FakeDns:
    """The answers of this event loop's ``getaddrinfo`` for test domains.

    The reconciler resolves egress domains with ``loop.getaddrinfo`` (``observe.py``) in the
    loop it runs in, which is the test's own (``RunningReconciler``): replacing that one
    method lets a test change what a domain resolves to while the product's own resolution
    (timeout, cache, address filtering) runs unchanged. Only names under :attr:`SUFFIX` are
    answered here (``.test`` is reserved, RFC 2606: no real resolver knows them); every other
    name goes to the real resolver. A name without answers fails like an unknown host.
    """

    SUFFIX = ".lss.test"

    def __init__(self, real: Callable[..., Awaitable[list[Any]]]) -> None:
        self._real = real
        self.answers: dict[str, tuple[str, ...]] = {}

    def domain(self, label: str) -> str:
        """A fresh test domain (unique per call: the reconciler caches answers by name)."""
        return f"{label}-{uuid.uuid4().hex[:8]}{self.SUFFIX}"

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        # The reconciler asks for fully qualified names (a trailing dot).
        name = host.removesuffix(".") if isinstance(host, str) else host
        if not (isinstance(name, str) and name.endswith(self.SUFFIX)):
            return await self._real(host, port, family=family, type=type, proto=proto, flags=flags)
        addresses = self.answers.get(name, ())
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        number = int(port) if isinstance(port, int | str) and str(port).isdigit() else 0
        kind = type or socket.SOCK_STREAM
        result: list[Any] = []
        for address in addresses:
            if ipaddress.ip_address(address).version == 4:
                result.append((socket.AF_INET, kind, proto, "", (address, number)))
            else:
                result.append((socket.AF_INET6, kind, proto, "", (address, number, 0, 0)))
        return result


def pod_name(sandbox: str) -> str:
    return names.pod_name(sandbox)


def condition(obj: dict[str, Any], condition_type: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or ():
        if item["type"] == condition_type:
            return dict(item)
    raise AssertionError(f"no {condition_type} condition in {obj.get('status')}")


class World:
    """The watcher and reconciler(s) of one test, on NATS names of its own."""

    def __init__(
        self,
        *,
        platform: platform_module.Platform,
        nats_url: str,
        namespace: str,
        watcher_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``watcher_options`` override ``WatcherOptions`` (by default the watcher sees only
        ``namespace``: ``{"namespace": None}`` makes it watch the whole cluster).

        Every service runs as its own ServiceAccount with the RBAC of ``deploy/rbac``.
        """
        self.kubeconfigs = identities.kubeconfigs(platform.control_plane)
        self.kubeconfig = self.kubeconfigs["sandbox_reconciler"]
        self.nats_url = nats_url
        self.watcher_settings = watcher_testing.isolated_settings(
            kubeconfig=self.kubeconfigs["watcher"],
            nats_url=nats_url,
            **{"namespace": namespace, **(watcher_options or {})},
        )
        self.nats = self.watcher_settings.nats
        self.tag = self.nats.subject_prefix
        self.watcher: watcher_testing.RunningWatcher | None = None
        self.reconcilers: list[RunningReconciler] = []

    def settings(
        self,
        *,
        reconcile_options: Mapping[str, Any] | None = None,
        warm_options: Mapping[str, Any] | None = None,
        **sandbox_options: Any,
    ) -> settings_module.SandboxReconcilerSettings:
        return reconciler_settings(
            kubeconfig=self.kubeconfig,
            nats=self.nats,
            tag=self.tag,
            reconcile_options=reconcile_options,
            warm_options=warm_options,
            **sandbox_options,
        )

    async def start_reconciler(
        self,
        *,
        reconcile_options: Mapping[str, Any] | None = None,
        warm_options: Mapping[str, Any] | None = None,
        **sandbox_options: Any,
    ) -> RunningReconciler:
        running = RunningReconciler(
            self.settings(
                reconcile_options=reconcile_options, warm_options=warm_options, **sandbox_options
            )
        )
        await running.start()
        self.reconcilers.append(running)
        return running

    async def start_watcher(self) -> watcher_testing.RunningWatcher:
        self.watcher = watcher_testing.RunningWatcher(self.watcher_settings)
        await self.watcher.__aenter__()
        return self.watcher

    async def hint(self, *, namespace: str, name: str) -> None:
        """What the watcher would publish when the sandbox or one of its children changes."""
        event = messages.ChangeEvent(
            kind="sandbox",
            namespace=namespace,
            name=name,
            event_type="RESYNC",
            observed_at=datetime.datetime.now(tz=datetime.UTC),
        )
        connection = await nats.connect(self.nats_url)
        try:
            await connection.jetstream().publish(
                subjects.event_subject(
                    "sandbox", namespace=namespace, name=name, prefix=self.nats.subject_prefix
                ),
                codec.encode(event),
                stream=self.nats.events_stream,
                headers={"Nats-Msg-Id": f"test/{uuid.uuid4().hex}"},
            )
        finally:
            await connection.close()

    async def stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        for running in self.reconcilers:
            await running.stop()
        connection = await nats.connect(self.nats_url)
        try:
            js = connection.jetstream()
            for stream in (self.nats.events_stream, self.nats.status_stream):
                with contextlib.suppress(Exception):
                    await js.delete_stream(stream)
        finally:
            await connection.close()


class PhaseRecorder:
    """Every ``status.phase`` one Sandbox goes through, in order, from a watch (a poll could
    miss a phase that lasts milliseconds). Use as ``async with PhaseRecorder(...) as r``,
    entered before the Sandbox is created; ``r.phases`` drops repeats, ``None`` is no phase
    yet (Pending) and ``"<deleted>"`` ends it."""

    DELETED = "<deleted>"

    def __init__(self, kube: client.Kube, *, namespace: str, name: str) -> None:
        self._kube = kube
        self._path = objects.SANDBOX.path(namespace=namespace)
        self._name = name
        self.phases: list[str | None] = []
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def __aenter__(self) -> PhaseRecorder:
        self._task = asyncio.create_task(self._watch())
        await asyncio.wait_for(self._started.wait(), timeout=WAIT_SECONDS)
        return self

    async def until(self, phase: str | None) -> None:
        """Until the watch has delivered ``phase`` (a poll can see it a moment before)."""
        seen: bool = await eventually.eventually(
            lambda: phase in self.phases, timeout_seconds=WAIT_SECONDS, describe=f"{phase} seen"
        )
        assert seen

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        response = await self._kube.api.call_api(
            self._path,
            "GET",
            query_params=[
                ("watch", "true"),
                ("fieldSelector", f"metadata.name={self._name}"),
                ("timeoutSeconds", "600"),
            ],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        async with response:
            assert response.status == 200, await response.read()
            self._started.set()
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "DELETED":
                    phase: str | None = self.DELETED
                else:
                    phase = (event["object"].get("status") or {}).get("phase")
                if not self.phases or self.phases[-1] != phase:
                    self.phases.append(phase)
