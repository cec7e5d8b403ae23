"""Warm claim latency, cold create latency, sustained claims/s and pool refill rate.

    uv run python bench/warm_claim.py [--state-dir DIR] [--pool-size 60]

The watcher, the sandbox reconciler and the pool manager run as their own processes against
the local platform (kube-apiserver + kwok, nats-server), on streams of their own, in a fresh
namespace enforcing Pod Security ``restricted``. Every latency is Sandbox create request →
the first ``phase: Running`` record for it on LSS_STATUS (an ordered push consumer), on this
process's monotonic clock; the record's ``launch`` says warm or cold.

* **floor**: a bare apiserver create round trip (a ConfigMap), measured in the same run
  between the rounds;
* **warm** at 1, 10 and 50 concurrent creates (rounds; the pool refills between them);
* **cold**: sandboxes asking for other resources than the pool's, one at a time;
* **sustained**: ``--burst`` sandboxes created at once against the pool while it refills;
  warm claims per second from the first create to the last warm Running;
* **refill**: after the burst, Ready WarmPods per second until the pool is full again.

Results: ``bench/results/warm_claim.json``, and ``warm_claim.png`` when matplotlib imports.
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
import sys
import time
import uuid
from typing import Any

import nats
import prometheus_client
from nats.js import api

from lss_common import settings as common_settings
from lss_common.bus import codec, topology
from lss_common.kube import client, objects
from lss_common.logic import subjects
from lss_common.models import kinds, messages
from lss_common.observability import metrics as shared_metrics
from lss_dev import controlplane
from lss_dev import platform as platform_module
from lss_pool_manager import settings as pool_settings
from lss_sandbox_reconciler import settings as reconciler_settings
from lss_watcher import testing as watcher_testing

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# Shared helpers of the cold bench (process start, readiness, summaries, arrivals).
import sandbox_cold_create as cold_bench

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "warm_claim.json"
PLOT = RESULTS.with_suffix(".png")
IMAGE = cold_bench.IMAGE


class Records:
    """name → (monotonic arrival of the first Running record, launch)."""

    def __init__(self) -> None:
        self.arrivals = cold_bench.Arrivals()
        self.launch: dict[str, str | None] = {}

    async def on_status(self, msg: Any) -> None:
        record = codec.decode(msg.data, message_type=messages.StatusRecord)
        if record.phase == "Running" and record.name not in self.launch:
            self.launch[record.name] = record.launch
            self.arrivals.seen(record.name)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    state = pathlib.Path(args.state_dir)
    plat = platform_module.Platform(state)
    await asyncio.to_thread(plat.up)
    logs = state / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    kube_api = await client.create_api_client(
        common_settings.KubeSettings(kubeconfig=str(plat.kubeconfig))
    )
    kube = client.Kube(
        api=kube_api,
        request_timeout_seconds=30,
        metrics=shared_metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
    )
    namespace = f"bench-warm-{uuid.uuid4().hex[:6]}"
    await objects.create_object(
        kube,
        resource=objects.NAMESPACE,
        body={"metadata": {"name": namespace, "labels": cold_bench.PSS}},
    )
    language = f"bench{uuid.uuid4().hex[:6]}"
    runtime_name = f"{language}-1-0"
    await objects.create_object(
        kube,
        resource=objects.RUNTIME_ENVIRONMENT,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "RuntimeEnvironment",
            "metadata": {"name": runtime_name},
            "spec": {"image": IMAGE, "language": language, "version": "1.0"},
        },
    )
    watcher_settings = watcher_testing.isolated_settings(
        kubeconfig=str(plat.kubeconfig), nats_url=plat.nats_url, namespace=namespace
    )
    ports = {name: controlplane.free_port() for name in ("watcher", "reconciler", "pool")}
    watcher_settings = watcher_settings.model_copy(
        update={
            "http": watcher_settings.http.model_copy(update={"port": ports["watcher"]}),
            "watcher": watcher_settings.watcher.model_copy(
                update={"resync_period_seconds": 3600.0}
            ),
        }
    )
    kube_settings = common_settings.KubeSettings(kubeconfig=str(plat.kubeconfig))
    rec = reconciler_settings.SandboxReconcilerSettings(
        service_name="bench-reconciler",
        nats=watcher_settings.nats,
        kube=kube_settings,
        http=common_settings.HttpSettings(host="127.0.0.1", port=ports["reconciler"]),
    )
    pool = pool_settings.PoolManagerSettings(
        service_name="bench-pool-manager",
        nats=watcher_settings.nats,
        kube=kube_settings,
        http=common_settings.HttpSettings(host="127.0.0.1", port=ports["pool"]),
        pool=pool_settings.PoolOptions(
            heartbeat_interval_seconds=0.0, create_rate_per_second=100.0, create_burst=100
        ),
    )
    nc = await nats.connect(plat.nats_url)
    js = nc.jetstream()
    await topology.declare_streams(js, settings=rec.nats)
    records = Records()
    status_sub = await js.subscribe(
        subjects.status_filter("sandbox", prefix=rec.nats.subject_prefix),
        stream=rec.nats.status_stream,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.ALL,
        cb=records.on_status,
    )
    processes = [
        cold_bench._start(
            "lss_sandbox_reconciler",
            cold_bench._env(
                rec, ("nats", "kube", "http", "consumer", "sandbox", "reconcile", "warm")
            ),
            logs / f"{namespace}-reconciler.log",
        ),
        cold_bench._start(
            "lss_pool_manager",
            cold_bench._env(pool, ("nats", "kube", "http", "consumer", "pool")),
            logs / f"{namespace}-pool.log",
        ),
    ]
    serial = 0

    async def floor_sample() -> float:
        nonlocal serial
        serial += 1
        started = time.monotonic()
        await objects.create_object(
            kube,
            resource=_CONFIG_MAP,
            namespace=namespace,
            body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"floor-{serial}"}},
        )
        return time.monotonic() - started

    async def create_box(name: str, **spec: Any) -> float:
        started = time.monotonic()
        await objects.create_object(
            kube,
            resource=objects.SANDBOX,
            namespace=namespace,
            body={
                "apiVersion": kinds.API_VERSION,
                "kind": "Sandbox",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"runtime": f"{language}:1.0", "timeout": 3600, **spec},
            },
        )
        return await records.arrivals.wait(name, timeout_seconds=120) - started

    async def ready_count() -> int:
        found = await objects.list_objects(kube, resource=objects.WARM_POD, namespace=namespace)
        return sum(1 for wp in found.items if (wp.get("status") or {}).get("phase") == "Ready")

    async def wait_pool(count: int) -> None:
        deadline = time.monotonic() + 180
        while await ready_count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pool never reached {count} Ready")
            await asyncio.sleep(0.1)

    async def delete_boxes(names: list[str]) -> None:
        await asyncio.gather(
            *(
                objects.delete_object(kube, resource=objects.SANDBOX, name=n, namespace=namespace)
                for n in names
            )
        )

    floor: list[float] = []
    warm: dict[int, list[float]] = {1: [], 10: [], 50: []}
    warm_fallbacks: dict[int, int] = {1: 0, 10: 0, 50: 0}
    cold: list[float] = []
    sustained: dict[str, Any] = {}
    refill: dict[str, Any] = {}
    try:
        watcher = cold_bench._start(
            "lss_watcher",
            cold_bench._env(watcher_settings, ("nats", "kube", "http", "consumer", "watcher")),
            logs / f"{namespace}-watcher.log",
        )
        processes.append(watcher)
        for name, process in zip(("reconciler", "pool", "watcher"), processes, strict=True):
            await cold_bench._wait_ready(ports[name], process)
        await objects.create_object(
            kube,
            resource=objects.WARM_POOL,
            namespace=namespace,
            body={
                "apiVersion": kinds.API_VERSION,
                "kind": "WarmPool",
                "metadata": {"name": "bench", "namespace": namespace},
                "spec": {"runtime": f"{language}:1.0", "minSize": args.pool_size},
            },
        )
        await wait_pool(args.pool_size)
        for _ in range(3):  # warm-up: connections, imports
            await floor_sample()
        await create_box("warmup-0")
        box = 0
        for concurrency, rounds in ((1, args.rounds_1), (10, args.rounds_10), (50, args.rounds_50)):
            for _ in range(rounds):
                await wait_pool(min(args.pool_size, concurrency + 5))
                floor.extend([await floor_sample() for _ in range(5)])
                names = [f"w{concurrency}-{box + i}" for i in range(concurrency)]
                box += concurrency
                times = await asyncio.gather(*(create_box(n) for n in names))
                for n, seconds in zip(names, times, strict=True):
                    if records.launch.get(n) == "warm":
                        warm[concurrency].append(seconds)
                    else:
                        warm_fallbacks[concurrency] += 1
                await delete_boxes(names)
        for index in range(args.cold_count):
            floor.append(await floor_sample())
            cold.append(await create_box(f"cold-{index}", resources={"cpu": "1"}))
        # Sustained: a burst larger than the pool, created as fast as possible.
        await wait_pool(args.pool_size)
        names = [f"burst-{i}" for i in range(args.burst)]
        started = time.monotonic()
        limit = asyncio.Semaphore(50)

        async def limited(n: str) -> float:
            async with limit:
                return await create_box(n)

        await asyncio.gather(*(limited(n) for n in names))
        warm_names = [n for n in names if records.launch.get(n) == "warm"]
        last_warm = max(records.arrivals.times[n] for n in warm_names) if warm_names else started
        sustained = {
            "created": args.burst,
            "warm": len(warm_names),
            "cold": args.burst - len(warm_names),
            "pool_size": args.pool_size,
            "warm_claims_per_second": round(len(warm_names) / max(last_warm - started, 1e-9), 1),
            "all_running_seconds": round(
                max(records.arrivals.times[n] for n in names) - started, 2
            ),
        }
        await delete_boxes(names)
        # Refill: from the drained pool back to full.
        refill_started = time.monotonic()
        first = await ready_count()
        await wait_pool(args.pool_size)
        refill_seconds = time.monotonic() - refill_started
        refill = {
            "ready_at_start": first,
            "refilled_to": args.pool_size,
            "seconds": round(refill_seconds, 2),
            "warm_pods_per_second": round((args.pool_size - first) / max(refill_seconds, 1e-9), 1),
        }
    finally:
        for process in reversed(processes):
            process.terminate()
            with contextlib.suppress(Exception):
                process.wait(timeout=20)
        await status_sub.unsubscribe()
        for stream in (rec.nats.events_stream, rec.nats.status_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()
        with contextlib.suppress(Exception):
            await objects.delete_object(kube, resource=objects.NAMESPACE, name=namespace)
        with contextlib.suppress(Exception):
            await objects.delete_object(
                kube, resource=objects.RUNTIME_ENVIRONMENT, name=runtime_name
            )
        await kube_api.close()
    floor_summary = cold_bench._summary(floor)
    warm_summaries = {
        f"concurrency_{c}": {
            **(cold_bench._summary(v) if v else {"count": 0}),
            "fell_back_to_cold": warm_fallbacks[c],
        }
        for c, v in warm.items()
    }
    at_10 = warm_summaries["concurrency_10"]
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform_info.python_version(),
            "kernel": platform_info.release(),
        },
        "floor_bare_apiserver_create_round_trip": floor_summary,
        "warm_claim_sandbox_to_running_on_lss_status": warm_summaries,
        "cold_create_sandbox_to_running_on_lss_status": cold_bench._summary(cold),
        "targets_at_concurrency_10": {
            "p50_ratio_to_floor_p50": round(at_10.get("p50_ms", 0) / floor_summary["p50_ms"], 1),
            "p99_ratio_to_floor_p50": round(at_10.get("p99_ms", 0) / floor_summary["p50_ms"], 1),
            "p50_target_ratio": 3,
            "p99_target_ratio": 10,
        },
        "sustained": sustained,
        "refill": refill,
        "samples": {"floor": floor, "warm": {str(c): v for c, v in warm.items()}, "cold": cold},
    }


_CONFIG_MAP = objects.CONFIG_MAP


def plot(results: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    samples = results["samples"]
    series = [("floor (create RTT)", samples["floor"])]
    series += [(f"warm x{c}", v) for c, v in samples["warm"].items() if v]
    series.append(("cold", samples["cold"]))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.boxplot([[s * 1000 for s in v] for _, v in series], showfliers=True)
    axis.set_xticks(range(1, len(series) + 1), [label for label, _ in series])
    axis.set_yscale("log")
    axis.set_ylabel("ms (log)")
    axis.set_title("Sandbox created → Running on LSS_STATUS, beside the create round trip")
    figure.tight_layout()
    figure.savefig(PLOT, dpi=120)
    return True


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default="/tmp/lss-bench")
    parser.add_argument("--pool-size", type=int, default=60)
    parser.add_argument("--rounds-1", type=int, default=40)
    parser.add_argument("--rounds-10", type=int, default=6)
    parser.add_argument("--rounds-50", type=int, default=2)
    parser.add_argument("--cold-count", type=int, default=20)
    parser.add_argument("--burst", type=int, default=150)
    args = parser.parse_args()
    results = await run(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    summary = {k: v for k, v in results.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    print(f"results written to {RESULTS}" + (f" and {PLOT}" if plot(results) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
