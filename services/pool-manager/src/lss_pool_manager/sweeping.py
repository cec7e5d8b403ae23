"""Release leaked claims of one pool: read the sandboxes, confirm, delete (reads and writes).

The decisions are ``sweep``'s. Called by the pool pass with the WarmPods it observed; at most
once per ``leaked_claim_check_interval_seconds`` per pool (in memory: a restart checks
again at once, which costs one list), and only while some Assigned WarmPod is past the
grace period:

1. one consistent list of the Sandboxes in the pool's namespace (a claim is always in the
   sandbox's own namespace), indexed by UID: ``assignedTo`` is a UID, and there is no field
   selector for it;
2. for each claim judged leaked, the verdict is confirmed on fresh reads (the Sandbox by
   name, consistent; the pod) just before acting, so a list that lagged behind a status
   write cannot release a claim in use;
3. the pod is deleted first (UID and resourceVersion preconditions: a pod adopted since it
   was read is left alone), then the WarmPod (UID and the observed resourceVersion: a
   WarmPod changed since is judged again next time). The deletion wakes the pool, which
   refills.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from lss_common import errors
from lss_common.kube import client, objects, writes
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.observability import logs
from lss_common.runtime import clock as clock_module
from lss_pool_manager import apply, names, observe, sizing, sweep
from lss_pool_manager import metrics as metrics_module
from lss_pool_manager import settings as settings_module

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Swept:
    """What a sweep released, and when the pool wants another look."""

    released: frozenset[str] = frozenset()
    """UIDs of the WarmPods deleted."""
    requeue_after_seconds: float | None = None


class Sweeper:
    """Leaked-claim sweeps for one pool manager process."""

    def __init__(
        self,
        kube: Callable[[], client.Kube],
        *,
        options: settings_module.PoolOptions,
        metrics: metrics_module.PoolManagerMetrics,
        clock: clock_module.Clock,
    ) -> None:
        self._kube = kube
        self._grace = options.leaked_claim_grace_seconds
        self._interval = options.leaked_claim_check_interval_seconds
        self._metrics = metrics
        self._clock = clock
        self._checked: dict[str, float] = {}

    def forget(self, pool_uid: str) -> None:
        self._checked.pop(pool_uid, None)

    async def run(
        self, pool: warmpool_model.WarmPool, *, warm_pods: Sequence[warmpod_model.WarmPod]
    ) -> Swept:
        uid = pool.metadata.uid or ""
        now = self._clock.now()
        monotonic = self._clock.monotonic()
        last = self._checked.get(uid)
        since = None if last is None else monotonic - last
        released: set[str] = set()
        candidates = sweep.due(warm_pods, now=now, grace_seconds=self._grace)
        if candidates and (since is None or since >= self._interval):
            self._checked[uid] = monotonic
            since = 0.0
            holders = await self._holders(pool.metadata.namespace or "")
            for warm_pod in candidates:
                holder = holders.get(warmpod_model.status_of(warm_pod).assigned_to or "")
                verdict = sweep.judge(warm_pod, holder=holder, now=now, grace_seconds=self._grace)
                if verdict.is_leaked and await self._release(warm_pod, holder=holder):
                    released.add(warm_pod.metadata.uid or "")
        remaining = [wp for wp in warm_pods if (wp.metadata.uid or "") not in released]
        return Swept(
            released=frozenset(released),
            requeue_after_seconds=sweep.next_check_seconds(
                remaining,
                now=now,
                grace_seconds=self._grace,
                seconds_since_check=since,
                interval_seconds=self._interval,
            ),
        )

    async def _holders(self, namespace: str) -> dict[str, sweep.Holder]:
        found = await objects.list_objects(
            self._kube(), resource=objects.SANDBOX, namespace=namespace
        )
        holders = (sweep.holder_of(item) for item in found.items)
        return {holder.uid: holder for holder in holders if holder.uid}

    async def _fresh_holder(self, holder: sweep.Holder | None) -> sweep.Holder | None:
        if holder is None:
            return None
        try:
            found: dict[str, Any] = await objects.get_object(
                self._kube(), resource=objects.SANDBOX, namespace=holder.namespace, name=holder.name
            )
        except errors.NotFoundError:
            return None
        return sweep.same_holder(holder, found)

    async def _release(
        self, warm_pod: warmpod_model.WarmPod, *, holder: sweep.Holder | None
    ) -> bool:
        kube = self._kube()
        metadata = warm_pod.metadata
        namespace = metadata.namespace or ""
        holder = await self._fresh_holder(holder)
        verdict = sweep.judge(
            warm_pod, holder=holder, now=self._clock.now(), grace_seconds=self._grace
        )
        if not verdict.is_leaked:
            return False
        status = warmpod_model.status_of(warm_pod)
        pod_name = status.pod_name or names.pod_name(metadata.name or "", uid=metadata.uid or "")
        pod = await observe.get_pod(kube, namespace=namespace, name=pod_name)
        if sweep.holds_for_its_pod(pod, warm_pod=warm_pod, holder=holder):
            return False  # judged again later, once the pod is gone
        with logs.bind(warm_pod=metadata.name, sandbox_uid=status.assigned_to):
            if pod is not None and sweep.may_delete_pod(pod, warm_pod=warm_pod, holder=holder):
                pod_meta = pod.get("metadata") or {}
                try:
                    await writes.delete_if_present(
                        kube,
                        resource=objects.POD,
                        namespace=namespace,
                        name=pod_name,
                        uid=pod_meta.get("uid"),
                        resource_version=pod_meta.get("resourceVersion"),
                    )
                except errors.ConflictError:
                    _log.info("leaked claim's pod changed since read; judged again later")
                    return False
            deleted = await apply.delete_warm_pod(
                kube,
                namespace=namespace,
                name=metadata.name or "",
                uid=metadata.uid or "",
                resource_version=metadata.resource_version or None,
            )
            if not deleted:
                return False
            self._metrics.leaked_claims_released_total.labels(verdict.value).inc()
            self._metrics.pods_deleted_total.labels(sizing.DeleteReason.LEAKED_CLAIM.value).inc()
            _log.warning("leaked claim released", extra=logs.extra(verdict=verdict.value))
        return True
