"""WarmPods of one namespace as a watch sees them, and removing a bench's namespace.

A watch instead of polling lists: a consistent list takes ≈ 100 ms on this API server and a
bench polling it every 100 ms would add its own load to what it measures; the watch also
timestamps each WarmPod's first ``Ready`` as it arrives, which is what the refill rates
are computed from.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import watch as k8s_watch

from lss_common.kube import client, objects
from lss_common.models import kinds


class WarmPods:
    """uid → phase of every WarmPod that exists, and when each was first seen Ready."""

    def __init__(self) -> None:
        self.phase: dict[str, str | None] = {}
        self.ready_at: dict[str, float] = {}
        self._changed = asyncio.Condition()
        self._failed: BaseException | None = None

    def ready(self) -> int:
        """WarmPods Ready now (claimable): Assigned and deleted ones are not."""
        return sum(1 for phase in self.phase.values() if phase == "Ready")

    def ready_between(self, start: float, end: float) -> int:
        """WarmPods that became Ready in [start, end] on this process's monotonic clock."""
        return sum(1 for at in self.ready_at.values() if start <= at <= end)

    async def wait_ready(self, count: int, *, timeout_seconds: float = 180) -> float:
        """Wait until at least ``count`` are Ready; the monotonic time it happened."""
        async with asyncio.timeout(timeout_seconds), self._changed:
            await self._changed.wait_for(lambda: self._failed or self.ready() >= count)
        if self._failed is not None:
            raise RuntimeError("the WarmPod watch failed") from self._failed
        return time.monotonic()

    async def _seen(self, kind: str, item: dict[str, Any]) -> None:
        uid = item["metadata"]["uid"]
        if kind == "DELETED":
            self.phase.pop(uid, None)
        else:
            phase = (item.get("status") or {}).get("phase")
            self.phase[uid] = phase
            if phase == "Ready":
                self.ready_at.setdefault(uid, time.monotonic())
        async with self._changed:
            self._changed.notify_all()

    async def _follow(self, api: k8s_client.ApiClient, namespace: str) -> None:
        custom = k8s_client.CustomObjectsApi(api)
        resource_version: str | None = None
        while True:
            # Resumed from the last version seen: a fresh watch would replay every WarmPod
            # as ADDED but could not tell which ones were deleted in between.
            options: dict[str, Any] = {"timeout_seconds": 300}
            if resource_version is not None:
                options["resource_version"] = resource_version
            stream = k8s_watch.Watch().stream(
                custom.list_namespaced_custom_object,
                kinds.GROUP,
                kinds.VERSION,
                namespace,
                kinds.WARM_POD.plural,
                **options,
            )
            async for event in stream:
                item: dict[str, Any] = event["object"]
                resource_version = item["metadata"]["resourceVersion"]
                await self._seen(event["type"], item)

    async def _follow_or_fail(self, api: k8s_client.ApiClient, namespace: str) -> None:
        try:
            await self._follow(api, namespace)
        except Exception as error:
            # A waiter must fail now rather than at its timeout, minutes later.
            self._failed = error
            async with self._changed:
                self._changed.notify_all()
            raise

    @contextlib.asynccontextmanager
    async def following(self, api: k8s_client.ApiClient, namespace: str) -> AsyncIterator[None]:
        """Keep this view current while the context runs."""
        task = asyncio.create_task(self._follow_or_fail(api, namespace))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def delete_namespace(kube: client.Kube, namespace: str) -> None:
    """Delete the namespace, after removing our finalizers from what is left in it.

    Called once the services are stopped, so nothing adds them back; left in place they
    keep the namespace Terminating forever (Sandboxes left running, WarmPools).
    """
    for resource in (objects.SANDBOX, objects.WARM_POOL, objects.WARM_POD):
        with contextlib.suppress(Exception):
            found = await objects.list_objects(kube, resource=resource, namespace=namespace)
            await asyncio.gather(
                *(
                    objects.patch_object(
                        kube,
                        resource=resource,
                        name=item["metadata"]["name"],
                        namespace=namespace,
                        body={"metadata": {"finalizers": None}},
                    )
                    for item in found.items
                    if item["metadata"].get("finalizers")
                ),
                return_exceptions=True,
            )
    with contextlib.suppress(Exception):
        await objects.delete_object(kube, resource=objects.NAMESPACE, name=namespace)
