"""Fixtures for the pool manager's integration tests: the real watcher feeds the hints.

Every test gets its own namespace (Pod Security ``restricted``), its own subject prefix and
streams on the shared NATS server, and a RuntimeEnvironment of its own language (runtimes are
cluster-scoped; a shared ``python:3.11`` would be ambiguous across tests). Hints come from the
real watcher (``lss_watcher.service``) running in-process and watching the test's namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from lss_common import settings as common_settings
from lss_common.kube import client, objects
from lss_common.models import kinds, meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.testing import eventually
from lss_dev import identities
from lss_dev import platform as platform_module
from lss_pool_manager import service as pool_service
from lss_pool_manager import settings as settings_module
from lss_watcher import testing as watcher_testing


@pytest.fixture
async def runtime_name(kube: client.Kube) -> AsyncIterator[str]:
    """``<language>:1.0`` of a fresh RuntimeEnvironment (deleted after the test)."""
    language = f"l{uuid.uuid4().hex[:10]}"
    await create_runtime(kube, language=language)
    try:
        yield f"{language}:1.0"
    finally:
        with contextlib.suppress(Exception):
            await objects.delete_object(kube, resource=objects.RUNTIME_ENVIRONMENT, name=language)


async def create_runtime(kube: client.Kube, *, language: str) -> None:
    """The RuntimeEnvironment ``<language>:1.0`` (cluster-scoped: named by the language)."""
    await objects.create_object(
        kube,
        resource=objects.RUNTIME_ENVIRONMENT,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "RuntimeEnvironment",
            "metadata": {"name": language},
            "spec": {
                "image": "ghcr.io/llmsafespace/runtime-python:3.11",
                "language": language,
                "version": "1.0",
            },
        },
    )


async def set_runtime_image(kube: client.Kube, *, runtime: str, image: str) -> None:
    """Give the RuntimeEnvironment of ``runtime`` (``<language>:1.0``) another image."""
    await objects.patch_object(
        kube,
        resource=objects.RUNTIME_ENVIRONMENT,
        name=runtime.partition(":")[0],
        body={"spec": {"image": image}},
    )


async def poke_pool(kube: client.Kube, *, namespace: str, name: str) -> None:
    """A change of the pool that only wakes it (a pool pass; nothing else changes)."""
    await objects.patch_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name=name,
        body={"metadata": {"annotations": {"test.llmsafespace.dev/poke": uuid.uuid4().hex}}},
    )


def pool_settings(
    watcher: common_settings.CommonSettings, *, kubeconfig: str, **pool: Any
) -> settings_module.PoolManagerSettings:
    values: dict[str, Any] = {
        "deletion_poll_seconds": 0.3,
        "heartbeat_interval_seconds": 0.0,
        "expectation_timeout_seconds": 10.0,
        "leaked_claim_grace_seconds": 3600.0,
    }
    values.update(pool)
    return settings_module.PoolManagerSettings(
        service_name=f"pool-manager-{uuid.uuid4().hex[:6]}",
        nats=watcher.nats,
        kube=common_settings.KubeSettings(kubeconfig=kubeconfig, request_timeout_seconds=10.0),
        http=common_settings.HttpSettings(host="127.0.0.1", port=0),
        consumer=common_settings.ConsumerSettings(
            fetch_timeout_seconds=0.5,
            backoff_seconds=[0.05, 0.1, 0.2, 0.5],
            shutdown_grace_seconds=5.0,
        ),
        pool=settings_module.PoolOptions.model_validate(values),
    )


def environment(settings: settings_module.PoolManagerSettings) -> dict[str, str]:
    """``settings`` as ``LSS_*`` variables for ``python -m lss_pool_manager``."""
    return common_settings.environment_of(
        settings, groups=("nats", "kube", "http", "consumer", "pool")
    )


class RunningPoolManager:
    """``build(settings)`` running in this event loop until stopped."""

    def __init__(self, settings: settings_module.PoolManagerSettings) -> None:
        self.settings = settings
        self.service = pool_service.build(settings)
        self._task: asyncio.Task[int] | None = None

    async def start(self) -> RunningPoolManager:
        self._task = asyncio.create_task(self.service.run(handle_signals=False))
        await eventually.eventually(
            self._is_ready, timeout_seconds=30, describe="the pool manager reports ready"
        )
        return self

    async def _is_ready(self) -> bool:
        if self._task is not None and self._task.done():
            raise RuntimeError(f"the pool manager exited with {self._task.result()}")
        try:
            port = self.service.http_port
        except RuntimeError:
            return False
        return await watcher_testing.readyz(f"http://127.0.0.1:{port}")

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            self.service.request_stop("test finished")
            await task

    def sample(self, name: str, **labels: str) -> float:
        value = self.service.runtime.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


class Stack:
    """The watcher and pool managers of one test."""

    def __init__(self, *, platform: platform_module.Platform, nats_url: str, namespace: str):
        # Each service as its own ServiceAccount with the RBAC of deploy/rbac.
        kubeconfigs = identities.kubeconfigs(platform.control_plane)
        self.kubeconfig = kubeconfigs["pool_manager"]
        self.watcher_settings = watcher_testing.isolated_settings(
            kubeconfig=kubeconfigs["watcher"], nats_url=nats_url, namespace=namespace
        )
        self.managers: list[RunningPoolManager] = []
        self.watcher: watcher_testing.RunningWatcher | None = None

    def settings(self, **pool: Any) -> settings_module.PoolManagerSettings:
        return pool_settings(self.watcher_settings, kubeconfig=self.kubeconfig, **pool)

    async def start_manager(self, **pool: Any) -> RunningPoolManager:
        return await self.start_manager_with(self.settings(**pool))

    async def start_manager_with(
        self, settings: settings_module.PoolManagerSettings
    ) -> RunningPoolManager:
        manager = await RunningPoolManager(settings).start()
        self.managers.append(manager)
        return manager

    async def start_watcher(self) -> None:
        self.watcher = watcher_testing.RunningWatcher(self.watcher_settings)
        await self.watcher.__aenter__()

    async def close(self) -> None:
        for manager in self.managers:
            with contextlib.suppress(Exception):
                await manager.stop()
        if self.watcher is not None:
            await self.watcher.stop()


@pytest.fixture
async def stack(
    platform: platform_module.Platform, nats_url: str, namespace: str
) -> AsyncIterator[Stack]:
    running = Stack(platform=platform, nats_url=nats_url, namespace=namespace)
    try:
        yield running
    finally:
        await running.close()
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        for stream in (
            running.watcher_settings.nats.events_stream,
            running.watcher_settings.nats.status_stream,
        ):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()


# -- object helpers ----------------------------------------------------------------------------


async def create_pool(
    kube: client.Kube, *, namespace: str, name: str, runtime: str, **spec: Any
) -> warmpool_model.WarmPool:
    return await objects.create_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "WarmPool",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"runtime": runtime, **spec},
        },
        decode=warmpool_model.decode,
    )


async def get_pool(kube: client.Kube, *, namespace: str, name: str) -> warmpool_model.WarmPool:
    return await objects.get_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name=name,
        decode=warmpool_model.decode,
    )


async def warm_pods(kube: client.Kube, *, namespace: str) -> list[warmpod_model.WarmPod]:
    found = await objects.list_objects(
        kube, resource=objects.WARM_POD, namespace=namespace, decode=warmpod_model.decode
    )
    return found.items


async def pods(kube: client.Kube, *, namespace: str) -> list[dict[str, Any]]:
    return (await objects.list_objects(kube, resource=objects.POD, namespace=namespace)).items


def by_phase(items: list[warmpod_model.WarmPod], phase: str) -> list[warmpod_model.WarmPod]:
    return [
        wp
        for wp in items
        if warmpod_model.status_of(wp).phase == phase and not wp.metadata.deletion_timestamp
    ]


async def claim(kube: client.Kube, warm_pod: warmpod_model.WarmPod, *, sandbox_uid: str) -> None:
    """The claim CAS: Ready → Assigned with the resourceVersion read."""
    await objects.patch_object(
        kube,
        resource=objects.WARM_POD,
        namespace=warm_pod.metadata.namespace,
        name=warm_pod.metadata.name or "",
        subresource="status",
        body={
            "metadata": {"resourceVersion": warm_pod.metadata.resource_version},
            "status": {
                "phase": "Assigned",
                "assignedTo": sandbox_uid,
                # Now: a claim of a sandbox that does not exist is a leaked claim once it is
                # older than the grace period (pool_settings makes that longer than a test).
                "assignedAt": meta.format_timestamp(datetime.datetime.now(tz=datetime.UTC)),
            },
        },
    )


async def wait_consumer(stack: Stack, durable: str) -> None:
    """Until a (subprocess) pool manager has declared its durable consumer: the watcher may
    publish only then (interest retention drops hints nobody is interested in yet)."""
    settings = stack.watcher_settings.nats
    nc = await nats.connect(settings.url)
    try:
        js = nc.jetstream()

        async def declared() -> bool:
            try:
                await js.consumer_info(settings.events_stream, durable)
            except Exception:
                return False
            return True

        await eventually.eventually(
            declared, timeout_seconds=60, describe="the subprocess declared its consumer"
        )
    finally:
        await nc.close()


async def counted(manager: RunningPoolManager, name: str, value: float, **labels: str) -> None:
    """Until the manager's counter ``name`` reads ``value`` (see ``eventually.reaches``)."""
    await eventually.reaches(
        lambda: manager.sample(name, **labels), value, describe=f"{name}{labels}"
    )
