"""Announce on LSS_STATUS the Sandbox status this replica has just committed (best effort).

The API service waits for ``Running`` on LSS_STATUS. Left to the watcher alone, a record
costs a hop after the status write: API server → watch event → watcher → publish. The
answer to the reconciler's status write *is* the committed object at its new
resourceVersion, so the reconciler publishes its record right away
(``lss_common.bus.status_publishing``, compare-and-set): the watcher's record of the same
version then finds it stored (stale, or a deduplicated msg id) and an older record never
replaces a newer one, whoever publishes first.

Best effort: the watcher publishes every committed status anyway, so a failure (NATS away,
a timeout, anything) is logged as a warning and counted in
``llmsafespace_sandbox_status_publish_failures_total``, never raised into the pass and
never retried. The whole publish (direct get, CAS publish, re-decisions after conflicts) is
bounded by ``nats.publish_timeout_seconds``. This module decides nothing about what to
write; ``handler.py`` calls it after a pass whose status write went through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import typing
from collections.abc import Callable
from typing import Final, Protocol

import prometheus_client

from lss_common.bus import status_publishing
from lss_common.logic import status_records
from lss_common.models import messages
from lss_common.models import sandbox as sandbox_model
from lss_common.runtime import clock as clock_module

_log = logging.getLogger(__name__)

#: Subjects whose last stream sequence is remembered (about 200 bytes each). A sandbox's
#: records are published by the passes of its short start; beyond this many sandboxes the
#: oldest memory goes, which costs one direct get if that sandbox's status changes again.
MAX_REMEMBERED: Final = 10_000


class Publishes(Protocol):
    """What the announcer needs of a ``status_publishing.StatusPublisher``."""

    async def publish(
        self, record: messages.StatusRecord, *, msg_id: str | None = None
    ) -> status_publishing.StatusResult: ...


@dataclasses.dataclass(frozen=True, slots=True)
class StatusMetrics:
    """The announcer's metrics on the service's registry."""

    records_total: prometheus_client.Counter
    publish_failures_total: prometheus_client.Counter

    @classmethod
    def register(cls, registry: prometheus_client.CollectorRegistry) -> typing.Self:
        return cls(
            records_total=prometheus_client.Counter(
                "llmsafespace_sandbox_status_records_total",
                "LSS_STATUS records of this replica's own status writes, by result "
                "(published, stale, duplicate, conflict).",
                ["result"],
                registry=registry,
            ),
            publish_failures_total=prometheus_client.Counter(
                "llmsafespace_sandbox_status_publish_failures_total",
                "Status records of this replica's own status writes that could not be "
                "published (the watcher publishes the committed status anyway).",
                registry=registry,
            ),
        )


class StatusAnnouncer:
    """Publishes the StatusRecord of a Sandbox the API server returned from a status write."""

    def __init__(
        self,
        publisher: Callable[[], Publishes],
        *,
        clock: clock_module.Clock,
        timeout_seconds: float,
        metrics: StatusMetrics,
    ) -> None:
        """``publisher`` builds the publisher on first use (the NATS connection exists only
        once the service has started); it is kept, with its memory of stored sequences."""
        self._factory = publisher
        self._publisher: Publishes | None = None
        self._clock = clock
        self._timeout_seconds = timeout_seconds
        self._metrics = metrics

    async def announce(self, committed: sandbox_model.Sandbox) -> None:
        """Publish the record of ``committed``; never raises (but lets cancellation through)."""
        try:
            record = status_records.record_of_sandbox(committed, observed_at=self._clock.now())
            if self._publisher is None:
                self._publisher = self._factory()
            async with asyncio.timeout(self._timeout_seconds):
                result = await self._publisher.publish(record)
        except Exception as error:
            # Best effort by design (module docstring): the pass must not fail or wait
            # longer for a copy the watcher also publishes.
            self._metrics.publish_failures_total.inc()
            _log.warning(
                "status record not published; the watcher will publish it",
                extra={"error": repr(error)},
            )
            return
        _log.debug("status record", extra={"result": result.value})
