"""Delete a pool's orphaned warm pods (reads and writes; the decisions are ``orphans``').

Once per ``pool_resync_seconds`` per pool (in memory: a restart looks at once), from the
pool's pass, after its sizing: the pool's pods are listed by the pool-UID label from the
watch cache (a pod it does not show yet is looked at next time), each candidate's WarmPod is
read again by name, and an orphan is deleted with its UID and resourceVersion as
preconditions (a pod changed since, e.g. adopted, is left alone). A failed read or delete
ends the pass like any other (retried or re-checked by the handler); the next look is still
an interval away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from lss_common import errors
from lss_common.kube import client, objects, writes
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.observability import logs
from lss_common.runtime import clock as clock_module
from lss_pool_manager import metrics as metrics_module
from lss_pool_manager import observe, orphans

_log = logging.getLogger(__name__)


class OrphanSweeper:
    """Orphaned-pod sweeps for one pool manager process."""

    def __init__(
        self,
        kube: Callable[[], client.Kube],
        *,
        interval_seconds: float,
        metrics: metrics_module.PoolManagerMetrics,
        clock: clock_module.Clock,
    ) -> None:
        self._kube = kube
        self._interval = interval_seconds
        self._metrics = metrics
        self._clock = clock
        self._checked: dict[str, float] = {}

    def forget(self, pool_uid: str) -> None:
        self._checked.pop(pool_uid, None)

    async def run(
        self, pool: warmpool_model.WarmPool, *, warm_pods: Sequence[warmpod_model.WarmPod]
    ) -> int:
        """Look for the pool's orphaned pods if it is time; returns how many were deleted."""
        uid = pool.metadata.uid or ""
        now = self._clock.monotonic()
        last = self._checked.get(uid)
        if last is not None and now - last < self._interval:
            return 0
        self._checked[uid] = now
        kube = self._kube()
        pods = await observe.list_pool_pods(kube, pool=pool, any_version=True)
        found = orphans.candidates(pods, warm_pod_uids={wp.metadata.uid or "" for wp in warm_pods})
        deleted = 0
        for candidate in found:
            if await self._delete_if_orphan(kube, pool=pool, candidate=candidate):
                deleted += 1
        return deleted

    async def _delete_if_orphan(
        self,
        kube: client.Kube,
        *,
        pool: warmpool_model.WarmPool,
        candidate: orphans.Candidate,
    ) -> bool:
        namespace = pool.metadata.namespace or ""
        warm_pod = await observe.get_warm_pod(
            kube, namespace=namespace, name=candidate.warm_pod_name
        )
        if not orphans.is_orphan(candidate, warm_pod=warm_pod):
            return False
        with logs.bind(pod=candidate.pod_name, warm_pod=candidate.warm_pod_name):
            try:
                deleted = await writes.delete_if_present(
                    kube,
                    resource=objects.POD,
                    namespace=namespace,
                    name=candidate.pod_name,
                    uid=candidate.pod_uid or None,
                    resource_version=candidate.pod_resource_version or None,
                )
            except errors.ConflictError:
                return False  # changed since listed (adopted, or a newer view): next time
            if not deleted:
                return False
            self._metrics.orphan_pods_deleted_total.inc()
            _log.warning("orphaned warm pod deleted (its WarmPod is gone)")
        return True
