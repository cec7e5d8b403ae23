"""Service over a real local HTTP port. Matrix: start order and reverse stop; /readyz while
starting, running (all ready / one not ready / check raises / check hangs) and the JSON body;
/healthz alive and stalled (fake clock); /metrics in Prometheus text; exit codes for stop
request, SIGTERM, failed start, stop during start and a guarded task's unexpected exit; a
transient start failure retried (and a stop while retrying); a component overrunning the
grace period is cancelled and the rest still stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.runtime import clock, service
from lss_common.testing import eventually


class Probe:
    """A component that records what happens to it; behaviour is set per test."""

    def __init__(self, name: str, journal: list[str]) -> None:
        self.name = name
        self.journal = journal
        self.ready = True
        self.start_gate: asyncio.Event | None = None
        self.start_error: Exception | None = None
        self.start_errors: list[Exception] = []
        """Raised by the next starts, one each, before ``start_error``."""
        self.stop_hangs = False
        self.ready_raises = False
        self.ready_hangs = False

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")
        if self.start_gate is not None:
            await self.start_gate.wait()
        if self.start_errors:
            raise self.start_errors.pop(0)
        if self.start_error is not None:
            raise self.start_error

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        if self.stop_hangs:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.journal.append(f"cancelled {self.name}")
                raise

    async def is_ready(self) -> bool:
        if self.ready_raises:
            raise RuntimeError("probe exploded")
        if self.ready_hangs:
            await asyncio.Event().wait()
        return self.ready


def make_settings(*, grace_seconds: float = 5.0) -> settings_module.CommonSettings:
    return settings_module.CommonSettings(
        service_name="test",
        http=settings_module.HttpSettings(
            host="127.0.0.1", port=0, readiness_check_timeout_seconds=0.2
        ),
        consumer=settings_module.ConsumerSettings(shutdown_grace_seconds=grace_seconds),
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(
    session: aiohttp.ClientSession, svc: service.Service, path: str
) -> tuple[int, dict[str, object]]:
    async with session.get(f"http://127.0.0.1:{svc.http_port}{path}") as response:
        return response.status, await response.json()


async def wait_ready(
    session: aiohttp.ClientSession, svc: service.Service
) -> dict[str, object] | None:
    async def ready() -> dict[str, object] | None:
        status, body = await get(session, svc, "/readyz")
        return body if status == 200 else None

    return await eventually.eventually(ready, timeout_seconds=10, describe="/readyz is 200")


async def test_runs_components_in_order_and_stops_in_reverse(
    http: aiohttp.ClientSession,
) -> None:
    journal: list[str] = []
    components = [Probe(n, journal) for n in ("kube", "nats", "consumer")]
    svc = service.Service(service.create_runtime(make_settings()), components=components)
    run = asyncio.create_task(svc.run(handle_signals=False))
    body = await wait_ready(http, svc)
    assert body == {
        "ready": True,
        "phase": "running",
        "components": {"kube": "ready", "nats": "ready", "consumer": "ready"},
        "not_ready": [],
    }
    svc.request_stop("test")
    assert await run == 0
    assert journal == [
        "start kube",
        "start nats",
        "start consumer",
        "stop consumer",
        "stop nats",
        "stop kube",
    ]


async def test_readyz_lists_components_that_are_not_ready(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[str] = []
    kube, nats, slow = Probe("kube", journal), Probe("nats", journal), Probe("slow", journal)
    svc = service.Service(service.create_runtime(make_settings()), components=[kube, nats, slow])
    run = asyncio.create_task(svc.run(handle_signals=False))
    await wait_ready(http, svc)
    nats.ready = False
    kube.ready_raises = True
    slow.ready_hangs = True
    with caplog.at_level(logging.WARNING, logger="lss_common.runtime.service"):
        status, body = await get(http, svc, "/readyz")
    assert status == 503
    assert body["ready"] is False
    assert body["components"] == {
        "kube": "error: RuntimeError",
        "nats": "not ready",
        "slow": "timeout",
    }
    assert body["not_ready"] == ["kube", "nats", "slow"]
    changed = [r for r in caplog.records if r.getMessage() == "component readiness changed"]
    assert {r.__dict__["component"] for r in changed} == {"kube", "nats", "slow"}
    nats.ready = True
    kube.ready_raises = False
    slow.ready_hangs = False
    await wait_ready(http, svc)
    svc.request_stop("test")
    assert await run == 0


async def test_readyz_is_503_while_starting_and_healthz_answers(
    http: aiohttp.ClientSession,
) -> None:
    journal: list[str] = []
    slow = Probe("slow", journal)
    slow.start_gate = asyncio.Event()
    svc = service.Service(service.create_runtime(make_settings()), components=[slow])
    run = asyncio.create_task(svc.run(handle_signals=False))
    await eventually.eventually(lambda: svc.http_port, timeout_seconds=10, describe="serving")
    status, body = await get(http, svc, "/readyz")
    assert (status, body["phase"], body["ready"]) == (503, "starting", False)
    status, body = await get(http, svc, "/healthz")
    assert (status, body["alive"]) == (200, True)
    slow.start_gate.set()
    await wait_ready(http, svc)
    svc.request_stop("test")
    assert await run == 0


async def test_metrics_endpoint_serves_the_registry(http: aiohttp.ClientSession) -> None:
    runtime = service.create_runtime(make_settings())
    svc = service.Service(runtime, components=[])
    run = asyncio.create_task(svc.run(handle_signals=False))
    await wait_ready(http, svc)
    async with http.get(f"http://127.0.0.1:{svc.http_port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert "llmsafespace_runtime_event_loop_lag_seconds" in text
    assert "process_cpu_seconds_total" in text or "python_info" in text
    svc.request_stop("test")
    assert await run == 0


async def test_healthz_fails_when_the_loop_stalls(http: aiohttp.ClientSession) -> None:
    fake = clock.FakeClock()
    runtime = service.create_runtime(make_settings(), clock=fake)
    svc = service.Service(runtime, components=[])
    run = asyncio.create_task(svc.run(handle_signals=False))
    await wait_ready(http, svc)
    status, _ = await get(http, svc, "/healthz")
    assert status == 200
    # The heartbeat expected to wake after 1 s and wakes 120 s later: a stalled loop.
    fake.advance(120)
    await eventually.eventually(
        lambda: runtime.registry.get_sample_value("llmsafespace_runtime_event_loop_lag_seconds"),
        timeout_seconds=10,
        describe="heartbeat recorded the lag",
    )
    status, body = await get(http, svc, "/healthz")
    assert status == 503
    assert body["alive"] is False
    assert body["event_loop_lag_seconds"] == pytest.approx(119.0)
    svc.request_stop("test")
    assert await run == 0


async def test_failed_start_stops_what_started_and_exits_1() -> None:
    journal: list[str] = []
    first, broken, never = Probe("a", journal), Probe("b", journal), Probe("c", journal)
    broken.start_error = RuntimeError("cannot connect")
    svc = service.Service(
        service.create_runtime(make_settings()), components=[first, broken, never]
    )
    assert await svc.run(handle_signals=False) == 1
    assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_a_start_that_fails_transiently_is_retried_not_ready_until_it_starts(
    http: aiohttp.ClientSession,
) -> None:
    journal: list[str] = []
    first, flaky, last = Probe("a", journal), Probe("b", journal), Probe("c", journal)
    flaky.start_errors = [errors.RetryableError("API server away"), errors.RetryableError("again")]
    svc = service.Service(service.create_runtime(make_settings()), components=[first, flaky, last])
    run = asyncio.create_task(svc.run(handle_signals=False))
    await eventually.eventually(
        lambda: journal.count("start b") == 2, timeout_seconds=10, describe="a first retry"
    )
    status, _ = await get(http, svc, "/readyz")
    assert status == 503
    await wait_ready(http, svc)
    svc.request_stop("test")
    assert await run == 0
    # Each failed start is undone before the next; the components after it start once.
    assert journal == [
        "start a",
        "start b",
        "stop b",
        "start b",
        "stop b",
        "start b",
        "start c",
        "stop c",
        "stop b",
        "stop a",
    ]


async def test_a_stop_while_a_start_is_retried_exits_0() -> None:
    journal: list[str] = []
    first, away = Probe("a", journal), Probe("b", journal)
    away.start_error = errors.RetryableError("NATS away")
    svc = service.Service(service.create_runtime(make_settings()), components=[first, away])
    run = asyncio.create_task(svc.run(handle_signals=False))
    await eventually.eventually(
        lambda: journal.count("start b") == 2, timeout_seconds=10, describe="retried"
    )
    svc.request_stop("test")
    assert await run == 0
    assert journal[:4] == ["start a", "start b", "stop b", "start b"]
    assert journal[-2:] == ["stop b", "stop a"]


async def test_stop_during_start_cancels_it_and_exits_0() -> None:
    journal: list[str] = []
    first, hanging = Probe("a", journal), Probe("b", journal)
    hanging.start_gate = asyncio.Event()
    svc = service.Service(service.create_runtime(make_settings()), components=[first, hanging])
    run = asyncio.create_task(svc.run(handle_signals=False))
    await eventually.eventually(
        lambda: "start b" in journal, timeout_seconds=10, describe="second start began"
    )
    svc.request_stop("test")
    assert await run == 0
    assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_unexpected_task_exit_stops_the_service_with_exit_1() -> None:
    journal: list[str] = []
    runtime = service.create_runtime(make_settings())
    svc = service.Service(runtime, components=[Probe("a", journal)])
    run = asyncio.create_task(svc.run(handle_signals=False))
    await eventually.eventually(lambda: "start a" in journal, timeout_seconds=10, describe="up")

    async def consumer_loop() -> None:
        raise RuntimeError("lost the plot")

    runtime.tasks.spawn(consumer_loop(), name="consumer-loop")
    assert await run == 1
    assert journal[-1] == "stop a"


async def test_overrunning_stop_is_cancelled_and_the_rest_still_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    first, stuck, last = Probe("a", journal), Probe("b", journal), Probe("c", journal)
    stuck.stop_hangs = True
    svc = service.Service(
        service.create_runtime(make_settings(grace_seconds=0.2)), components=[first, stuck, last]
    )
    run = asyncio.create_task(svc.run(handle_signals=False))
    await eventually.eventually(lambda: "start c" in journal, timeout_seconds=10, describe="up")
    with caplog.at_level(logging.ERROR, logger="lss_common.runtime.service"):
        svc.request_stop("test")
        assert await run == 0
    assert journal[3:] == ["stop c", "stop b", "cancelled b", "stop a"]
    assert any(
        r.getMessage() == "component did not stop in time; cancelled"
        and r.__dict__["component"] == "b"
        for r in caplog.records
    )


async def test_sigterm_stops_gracefully_with_exit_0(http: aiohttp.ClientSession) -> None:
    journal: list[str] = []
    svc = service.Service(service.create_runtime(make_settings()), components=[Probe("a", journal)])
    run = asyncio.create_task(svc.run())
    await wait_ready(http, svc)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await run == 0
    assert journal == ["start a", "stop a"]


def test_component_names_must_be_unique() -> None:
    journal: list[str] = []
    with pytest.raises(ValueError, match="unique"):
        service.Service(
            service.create_runtime(make_settings()),
            components=[Probe("a", journal), Probe("a", journal)],
        )


class Declarer(Probe):
    """A component that declares what it uses on NATS (``--declare-topology``)."""

    def __init__(self, name: str, journal: list[str], *, error: Exception | None = None) -> None:
        super().__init__(name, journal)
        self.declare_error = error

    async def declare_topology(self) -> None:
        self.journal.append(f"declare {self.name}")
        if self.declare_error is not None:
            raise self.declare_error


async def test_declaring_the_topology_declares_in_order_stops_and_starts_nothing() -> None:
    journal: list[str] = []
    runtime = service.create_runtime(make_settings())
    svc = service.Service(
        runtime,
        components=[Declarer("nats", journal), Probe("kube", journal), Declarer("c", journal)],
    )
    assert await svc.declare_topology() == 0
    assert journal == ["declare nats", "declare c", "stop c", "stop nats"]

    journal.clear()
    failing = service.Service(
        runtime,
        components=[
            Declarer("nats", journal, error=errors.RetryableError("no NATS")),
            Declarer("c", journal),
        ],
    )
    assert await failing.declare_topology() == 1
    assert journal == ["declare nats", "stop c", "stop nats"]


def test_an_unknown_argument_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def build(_: settings_module.CommonSettings) -> service.Service:
        raise AssertionError("built")

    assert service.main(build, make_settings(), argv=["--declare"]) == 2
    assert "--declare-topology" in capsys.readouterr().err
