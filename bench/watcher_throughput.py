"""Watcher benchmark: changes/second from the API server to JetStream, commit → PubAck latency,
and memory per tracked object. Run it on an idle machine:

    uv run python bench/watcher_throughput.py [--state-dir DIR] [--objects 10000]

The watcher runs as its own process (``python -m lss_watcher``) against the local platform
(kube-apiserver + kwok, nats-server; started if needed in ``--state-dir``), restricted to a
fresh namespace per phase, with its own streams. Hints are read back through a durable
consumer; each hint's *store time* is the timestamp JetStream gave the message (the server's
clock, the same machine's clock as ours), so the bench process's own scheduling does not
distort it. A change's *commit time* is when the API server's response to the write arrived.

Phases:

1. ``latency``: 100 changes/s (open loop) for ``--seconds``; latency = store - commit, and the
   floor: the write round trip itself.
2. ``sustained``: as many writers as the API server accepts for ``--seconds``; the watcher
   must keep up (hint rate = write rate, bounded lag); its CPU share gives its headroom.
3. ``catch_up``: the watcher is stopped (SIGSTOP) while ``--backlog`` changes are written,
   then resumed (SIGCONT): the rate at which it announces the backlog is what the watcher
   itself sustains, beyond what this machine's API server can write.
4. ``memory``: RSS of the watcher process watching an empty namespace, then 1,000 and
   ``--objects`` sandboxes (created while it watches), then after a restart that lists them.

Results go to ``bench/results/watcher_throughput.json`` (each phase run replaces its own
entry and keeps the others) and are summarised on stdout. On a machine shared with other
work, tails (p99, max) move with the other load: run on an idle machine, and compare with
the floor (the write round trip) measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import pathlib
import platform as platform_info
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import nats
import nats.aio.client
import prometheus_client
from nats.js import api
from prometheus_client import parser as prometheus_parser

from lss_common import settings as common_settings
from lss_common.bus import codec, topology
from lss_common.kube import client, objects
from lss_common.logic import subjects
from lss_common.models import messages
from lss_common.observability import metrics as shared_metrics
from lss_dev import controlplane, identities
from lss_dev import platform as platform_module
from lss_watcher import testing

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "watcher_throughput.json"


class _Meta(msgspec.Struct, rename="camel"):
    resource_version: str = ""


class _Written(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


_written = msgspec.json.Decoder(_Written).decode


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (values in seconds)."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


class Writer:
    """Creates and patches sandboxes through lss_common.kube; records commit times."""

    def __init__(self, kube: client.Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.committed: dict[tuple[str, str], float] = {}
        self.round_trips: list[float] = []

    async def create(self, name: str) -> None:
        await objects.create_object(
            self.kube,
            resource=objects.SANDBOX,
            namespace=self.namespace,
            body=testing.custom_body("sandbox", name),
            decode=_written,
        )

    async def patch(self, name: str, value: str) -> None:
        started = time.time()
        result = await objects.patch_object(
            self.kube,
            resource=objects.SANDBOX,
            namespace=self.namespace,
            name=name,
            body={"metadata": {"labels": {"bench": value}}},
            decode=_written,
        )
        done = time.time()
        self.round_trips.append(done - started)
        self.committed[(name, result.metadata.resource_version)] = done


class Hints:
    """Every hint stored on the events stream, with its store time (durable pull consumer)."""

    def __init__(self, js: Any, settings: common_settings.NatsSettings) -> None:
        self._js = js
        self._settings = settings
        self.stored: dict[tuple[str, str | None], float] = {}
        self.count = 0
        self.first_store: float | None = None
        self.last_store: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await topology.declare_streams(self._js, settings=self._settings)
        self._sub = await self._js.pull_subscribe(
            subjects.events_filter(prefix=self._settings.subject_prefix),
            durable="bench",
            stream=self._settings.events_stream,
            # No acks: reading is all the bench does, and acks would cost the server time.
            config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE),
        )
        self._task = asyncio.create_task(self._pull())

    async def _pull(self) -> None:
        while True:
            try:
                batch = await self._sub.fetch(1000, timeout=0.5)
            except Exception:
                continue
            for msg in batch:
                event = codec.decode(msg.data, message_type=messages.ChangeEvent)
                stored = msg.metadata.timestamp.timestamp()
                self.stored.setdefault((event.name, event.resource_version), stored)
                self.count += 1
                self.first_store = stored if self.first_store is None else self.first_store
                self.last_store = (
                    stored if self.last_store is None else max(self.last_store, stored)
                )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for(self, keys: set[tuple[str, str]], *, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while not keys <= self.stored.keys():
            if time.monotonic() > deadline:
                missing = len(keys - self.stored.keys())
                raise TimeoutError(f"{missing} of {len(keys)} hints not stored")
            await asyncio.sleep(0.1)


class WatcherProcess:
    """``python -m lss_watcher`` for one phase."""

    def __init__(self, settings: Any, log_file: pathlib.Path) -> None:
        self.settings = settings
        self.port = settings.http.port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **testing.environment(self.settings), "LSS_LOG__LEVEL": "WARNING"}
        with self.log_file.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "lss_watcher"], env=env, stdout=log, stderr=log
            )

    async def start(self) -> None:
        self.process = self.spawn()
        deadline = time.monotonic() + 120
        while not await testing.readyz(f"http://127.0.0.1:{self.port}"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"watcher did not become ready; see {self.log_file}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = (
            pathlib.Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        )
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    async def metrics(self) -> dict[str, float]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/metrics") as response,
        ):
            text = await response.text()
        values: dict[str, float] = {}
        for family in prometheus_parser.text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}"] = sample.value
        return values


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.platform = platform_module.Platform(pathlib.Path(args.state_dir))
        self.logs = pathlib.Path(args.state_dir) / "bench-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.kube: client.Kube | None = None
        self.nc: nats.aio.client.Client | None = None

    async def setup(self) -> None:
        await asyncio.to_thread(self.platform.up)
        api = await client.create_api_client(
            common_settings.KubeSettings(kubeconfig=str(self.platform.kubeconfig))
        )
        self.kube = client.Kube(
            api=api,
            request_timeout_seconds=30,
            metrics=shared_metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
        )
        self.nc = await nats.connect(self.platform.nats_url)
        await self.wait_namespaces_gone()

    async def teardown(self) -> None:
        if self.kube is not None:
            await self.kube.api.close()
        if self.nc is not None:
            await self.nc.close()

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[tuple[Writer, Hints, WatcherProcess]]:
        assert self.kube is not None
        assert self.nc is not None
        namespace = f"bench-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        await objects.create_object(
            self.kube, resource=objects.NAMESPACE, body={"metadata": {"name": namespace}}
        )
        settings = testing.isolated_settings(
            # The watcher's own ServiceAccount and RBAC, as deployed.
            kubeconfig=identities.kubeconfigs(self.platform.control_plane)["watcher"],
            nats_url=self.platform.nats_url,
            namespace=namespace,
        )
        settings = settings.model_copy(
            update={
                "http": settings.http.model_copy(update={"port": controlplane.free_port()}),
                # Production-like: no test shortcuts in the watcher's own timings.
                "watcher": settings.watcher.model_copy(update={"resync_period_seconds": 3600.0}),
            }
        )
        hints = Hints(self.nc.jetstream(), settings.nats)
        await hints.start()
        watcher = WatcherProcess(settings, self.logs / f"{namespace}.log")
        try:
            yield Writer(self.kube, namespace), hints, watcher
        finally:
            watcher.stop()
            await hints.stop()
            js = self.nc.jetstream()
            for stream in (settings.nats.events_stream, settings.nats.status_stream):
                with contextlib.suppress(Exception):
                    await js.delete_stream(stream)
            with contextlib.suppress(Exception):
                await objects.delete_object(self.kube, resource=objects.NAMESPACE, name=namespace)
            # The next phase must not share the machine with this one's garbage collection.
            await self.wait_namespaces_gone()

    async def wait_namespaces_gone(self) -> None:
        """Wait (up to 10 minutes) until no bench namespace is left, e.g. from a crashed run."""
        assert self.kube is not None
        deadline = time.monotonic() + 600
        while True:
            listed = await objects.list_objects(self.kube, resource=objects.NAMESPACE)
            left = [
                item["metadata"]["name"]
                for item in listed.items
                if item["metadata"]["name"].startswith("bench-")
            ]
            if not left or time.monotonic() > deadline:
                return
            await asyncio.sleep(1)

    async def create_many(self, writer: Writer, names: list[str], *, concurrency: int = 32) -> None:
        queue = list(reversed(names))

        async def worker() -> None:
            while queue:
                await writer.create(queue.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    # -- phases -----------------------------------------------------------------------------

    async def latency(self) -> dict[str, Any]:
        rate, seconds = 100, self.args.seconds
        async with self.phase("latency") as (writer, hints, watcher):
            names = [f"sb-{i:03d}" for i in range(200)]
            await self.create_many(writer, names)
            await watcher.start()
            interval = 1.0 / rate
            started = time.monotonic()
            pending: set[asyncio.Task[None]] = set()
            for index in range(rate * seconds):
                target = started + index * interval
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(writer.patch(names[index % len(names)], str(index)))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)
            achieved = len(writer.committed) / (time.monotonic() - started)
            await hints.wait_for(set(writer.committed), timeout_seconds=60)
            latencies = [hints.stored[key] - at for key, at in writer.committed.items()]
            metrics = await watcher.metrics()
        return {
            "target_changes_per_second": rate,
            "achieved_changes_per_second": round(achieved, 1),
            "commit_to_stored": percentiles(latencies),
            "floor_write_round_trip": percentiles(writer.round_trips),
            "watcher_histogram_received_to_puback": histogram_summary(metrics, "events"),
            "negative_latencies": sum(1 for x in latencies if x < 0),
        }

    async def sustained(self) -> dict[str, Any]:
        seconds = self.args.seconds
        async with self.phase("sustained") as (writer, hints, watcher):
            names = [f"sb-{i:03d}" for i in range(500)]
            await self.create_many(writer, names)
            await watcher.start()
            cpu_before = watcher.cpu_seconds()
            started = time.monotonic()
            wall_start = time.time()
            stop_at = started + seconds

            async def worker(offset: int) -> None:
                index = offset
                while time.monotonic() < stop_at:
                    await writer.patch(names[index % len(names)], str(index))
                    index += self.args.writers

            await asyncio.gather(*(worker(i) for i in range(self.args.writers)))
            elapsed = time.monotonic() - started
            await hints.wait_for(set(writer.committed), timeout_seconds=120)
            cpu = watcher.cpu_seconds() - cpu_before
            latencies = [hints.stored[key] - at for key, at in writer.committed.items()]
            last_stored = max(hints.stored[key] for key in writer.committed)
            stored_rate = len(writer.committed) / (last_stored - wall_start)
        writes_per_second = len(writer.committed) / elapsed
        cpu_share = cpu / elapsed
        return {
            "writers": self.args.writers,
            "seconds": round(elapsed, 1),
            "changes": len(writer.committed),
            "api_server_writes_per_second": round(writes_per_second, 1),
            "hints_stored_per_second": round(stored_rate, 1),
            "commit_to_stored": percentiles(latencies),
            "floor_write_round_trip": percentiles(writer.round_trips),
            "watcher_cpu_seconds": round(cpu, 2),
            "watcher_cpu_share_of_one_core": round(cpu_share, 3),
            "projected_changes_per_second_per_core": round(writes_per_second / cpu_share, 0)
            if cpu_share
            else None,
        }

    async def catch_up(self) -> dict[str, Any]:
        backlog = self.args.backlog
        async with self.phase("catch_up") as (writer, hints, watcher):
            names = [f"sb-{i:03d}" for i in range(500)]
            await self.create_many(writer, names)
            await watcher.start()
            before = await watcher.metrics()
            watcher.signal(signal.SIGSTOP)
            try:
                queue = list(range(backlog))

                async def worker() -> None:
                    while queue:
                        index = queue.pop()
                        await writer.patch(names[index % len(names)], str(index))

                written_from = time.monotonic()
                await asyncio.gather(*(worker() for _ in range(self.args.writers)))
                write_seconds = time.monotonic() - written_from
            finally:
                resumed = time.time()
                watcher.signal(signal.SIGCONT)
            cpu_before = watcher.cpu_seconds()
            await hints.wait_for(set(writer.committed), timeout_seconds=300)
            last = max(hints.stored[key] for key in writer.committed)
            cpu = watcher.cpu_seconds() - cpu_before
            after = await watcher.metrics()
        took = last - resumed
        relists = sum(
            v for k, v in after.items() if k.startswith("llmsafespace_watcher_relists_total")
        ) - sum(v for k, v in before.items() if k.startswith("llmsafespace_watcher_relists_total"))
        return {
            "backlog_changes": len(writer.committed),
            "api_server_writes_per_second_while_stopped": round(
                len(writer.committed) / write_seconds, 1
            ),
            "seconds_to_announce_backlog": round(took, 2),
            "changes_per_second": round(len(writer.committed) / took, 1),
            "watcher_cpu_seconds": round(cpu, 2),
            "relists_during_catch_up": relists,
            "path": "relist" if relists else "watch (replayed from the API server's watch cache)",
        }

    async def memory(self) -> dict[str, Any]:
        total = self.args.objects
        result: dict[str, Any] = {}
        async with self.phase("memory") as (writer, hints, watcher):
            await watcher.start()
            await asyncio.sleep(2)  # settle after start (a measurement pause, not a sync)
            baseline = watcher.rss_bytes()
            result["baseline_rss_mib"] = mib(baseline)
            created = 0
            for step in (1000, total):
                names = [f"sb-{i:05d}" for i in range(created, step)]
                await self.create_many(writer, names)
                created = step
                await wait_until_stored(hints, step)
                await asyncio.sleep(2)
                rss = watcher.rss_bytes()
                result[f"rss_mib_{step}"] = mib(rss)
                result[f"bytes_per_object_{step}"] = round((rss - baseline) / step)
            watcher.stop()
            await watcher.start()
            await asyncio.sleep(2)
            rss = watcher.rss_bytes()
            result[f"rss_mib_{total}_after_restart_list"] = mib(rss)
            result[f"bytes_per_object_{total}_after_restart_list"] = round((rss - baseline) / total)
        return result


async def wait_until_stored(hints: Hints, count: int) -> None:
    deadline = time.monotonic() + 300
    while len({name for name, _ in hints.stored}) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(hints.stored)} of {count} hints stored")
        await asyncio.sleep(0.2)


async def wait_idle(threshold: float) -> None:
    deadline = time.monotonic() + 1800
    while True:
        if os.getloadavg()[0] < threshold or time.monotonic() > deadline:
            return
        await asyncio.sleep(5)


def mib(value: int) -> float:
    return round(value / 2**20, 1)


def histogram_summary(metrics: dict[str, float], target: str) -> dict[str, float]:
    """Approximate p50/p99 from the watcher's publish histogram (bucket upper bounds)."""
    name = "llmsafespace_watcher_publish_duration_seconds_bucket"
    buckets = sorted(
        (float(key.split("le=")[1].split(",")[0].rstrip("}")), value)
        for key, value in metrics.items()
        if key.startswith(name) and f"target={target}" in key
    )
    if not buckets:
        return {}
    total = buckets[-1][1]

    def upper(q: float) -> float:
        return next(bound for bound, count in buckets if count >= q * total) * 1000

    return {"count": total, "p50_le_ms": upper(0.5), "p99_le_ms": upper(0.99)}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default="/tmp/lss-bench")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--writers", type=int, default=48)
    parser.add_argument("--backlog", type=int, default=15000)
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument(
        "--phases", default="latency,sustained,catch_up,memory", help="comma-separated"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each phase, wait (up to 30 min) until the 1-minute load average is "
        "below this (0: do not wait)",
    )
    args = parser.parse_args()
    bench = Bench(args)
    await bench.setup()
    results: dict[str, Any] = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform_info.python_version(),
            "kernel": platform_info.release(),
        },
        "load_average_at_start": os.getloadavg(),
    }
    try:
        for phase in args.phases.split(","):
            if args.wait_idle:
                await wait_idle(args.wait_idle)
            print(f"== {phase}", flush=True)
            load_before = os.getloadavg()[0]
            results[phase] = await getattr(bench, phase)()
            # The machine may be shared: a busy neighbour moves the tails; say so.
            results[phase]["load_average_1m_before_after"] = [
                round(load_before, 2),
                round(os.getloadavg()[0], 2),
            ]
            print(json.dumps(results[phase], indent=2), flush=True)
    finally:
        await bench.teardown()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    # Phases run separately (--phases) update their part of the file and keep the others.
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(f"results written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
