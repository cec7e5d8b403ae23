"""announcing.StatusAnnouncer: the record of a committed Sandbox goes out; failures never fail
the pass.

Matrix: a publish hands over the record of the Sandbox as committed (its resourceVersion, its
status) and the publisher is built once; a publish error, a publish that outlasts the
timeout, and a publisher that cannot even be built (NATS not started) are each logged as a
warning, counted in ``llmsafespace_sandbox_status_publish_failures_total`` and swallowed;
cancellation still goes through. The publisher stands in for ``StatusPublisher``, whose
behaviour against a real server is tested in ``libs/common``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

import msgspec
import prometheus_client
import pytest

from lss_common import errors
from lss_common.bus import status_publishing
from lss_common.models import messages
from lss_common.models import sandbox as sandbox_model
from lss_common.runtime import clock
from lss_sandbox_reconciler import announcing

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
FAILURES = "llmsafespace_sandbox_status_publish_failures_total"


def committed() -> sandbox_model.Sandbox:
    return sandbox_model.decode(
        msgspec.json.encode(
            {
                "metadata": {
                    "name": "demo",
                    "namespace": "team-a",
                    "uid": "u-1",
                    "resourceVersion": "77",
                },
                "spec": {"runtime": "python:3.11"},
                "status": {"phase": "Running", "podName": "demo"},
            }
        )
    )


class Recording:
    def __init__(self) -> None:
        self.records: list[messages.StatusRecord] = []

    async def publish(
        self, record: messages.StatusRecord, *, msg_id: str | None = None
    ) -> status_publishing.StatusResult:
        self.records.append(record)
        return status_publishing.StatusResult.PUBLISHED


class Failing:
    async def publish(
        self, record: messages.StatusRecord, *, msg_id: str | None = None
    ) -> status_publishing.StatusResult:
        raise errors.RetryableError("publish to lss.status.sandbox.team-a.demo failed: timeout")


class Hanging:
    async def publish(
        self, record: messages.StatusRecord, *, msg_id: str | None = None
    ) -> status_publishing.StatusResult:
        await asyncio.Event().wait()
        raise AssertionError("never set")


class Announcer:
    def __init__(
        self, publisher: announcing.Publishes | None, *, timeout_seconds: float = 5.0
    ) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.built = 0

        def build() -> announcing.Publishes:
            self.built += 1
            if publisher is None:
                raise RuntimeError("NatsConnection has not been started")
            return publisher

        self.announcer = announcing.StatusAnnouncer(
            build,
            clock=clock.FakeClock(NOW),
            timeout_seconds=timeout_seconds,
            metrics=announcing.StatusMetrics.register(self.registry),
        )

    def failures(self) -> float:
        return self.registry.get_sample_value(FAILURES) or 0.0


async def test_the_committed_record_is_published() -> None:
    publisher = Recording()
    running = Announcer(publisher)
    await running.announcer.announce(committed())
    await running.announcer.announce(committed())
    assert running.built == 1
    record = publisher.records[0]
    assert (record.kind, record.namespace, record.name, record.uid) == (
        "sandbox",
        "team-a",
        "demo",
        "u-1",
    )
    assert (record.resource_version, record.phase, record.launch) == ("77", "Running", "cold")
    assert record.observed_at == NOW
    assert running.failures() == 0


@pytest.mark.parametrize(
    ("publisher", "timeout_seconds"),
    [(Failing(), 5.0), (Hanging(), 0.01), (None, 5.0)],
    ids=["publish-error", "timeout", "no-connection"],
)
async def test_a_failure_is_logged_and_counted_never_raised(
    publisher: announcing.Publishes | None,
    timeout_seconds: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = Announcer(publisher, timeout_seconds=timeout_seconds)
    with caplog.at_level(logging.WARNING, logger=announcing.__name__):
        await failing.announcer.announce(committed())
    assert failing.failures() == 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


async def test_cancellation_goes_through() -> None:
    hanging = Announcer(Hanging())
    task = asyncio.create_task(hanging.announcer.announce(committed()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hanging.failures() == 0
