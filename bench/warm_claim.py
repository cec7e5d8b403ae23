"""Warm claim latency, cold create latency, sustained claims/s and pool refill rate.

    uv run python bench/warm_claim.py [--state-dir DIR] [--pool-size 60] [--rounds-1 40] ...

The watcher, the sandbox reconciler and the pool manager run as their own processes against
the local platform (kube-apiserver + kwok, nats-server), on streams of their own, in a fresh
namespace enforcing Pod Security ``restricted``. Every latency is Sandbox create request →
the first ``phase: Running`` record for it on LSS_STATUS (an ordered push consumer), on this
process's monotonic clock; the record's ``launch`` says warm or cold.

Every phase is measured beside the **floor**, a bare apiserver create round trip (a
ConfigMap) taken in the same run, right before the phase and at the phase's concurrency, so
both see the same machine and the same API server queueing:

* **warm** at 1, 10 and 50 concurrent creates, in rounds; each round is preceded by a batch
  of as many concurrent bare creates (with ``--settle``, the default, a round starts once
  the previous round's sandboxes are deleted and the pool is full again, so the claims and
  their floor see the same quiet API server — the sustained phase measures claims beside
  deletions and refills; an unrecorded batch
  before it opens the client's connections, so neither side pays the TLS handshakes). Reported per
  concurrency: warm and floor p50/p95/p99, and their ratios (the issue's targets are at 10
  concurrent: warm p50 ≤ 3 and p99 ≤ 10 times the floor);
* **cold**: sandboxes asking for other resources than the pool's, one at a time, each after
  one bare create;
* **sustained**: ``--burst`` bare creates at 50 concurrent (the floor's creates/s), then as
  many sandboxes at 50 concurrent against the full pool while it refills: warm claims per
  second from the first create to the last warm Running, and the WarmPods that became Ready
  in that time per second (the refill under claims); then, once they are deleted and the
  pool is full again, the API requests per sandbox of their whole life (the API server's
  ``apiserver_request_total``);
* **refill**: ``--burst`` bare creates at 50 concurrent again, then the pool's minSize is
  raised by ``--pool-size`` with no claims running: Ready WarmPods per second until full.

Results: ``bench/results/warm_claim.json`` and the figure ``warm_claim.png`` beside it
(``bench/plot.py``, which can also re-draw an existing results file).
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
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.js import api

from lss_common import errors
from lss_common import settings as common_settings
from lss_common.bus import codec, topology
from lss_common.kube import client, objects
from lss_common.logic import subjects
from lss_common.models import kinds, messages
from lss_dev import controlplane
from lss_dev import processes as processes_module
from lss_pool_manager import settings as pool_settings
from lss_sandbox_reconciler import settings as reconciler_settings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# Sibling modules: the cold bench's helpers (process start, readiness, summaries, arrivals),
# the figure, the WarmPod watch.
import plot
import sandbox_cold_create as cold_bench
import warmpods

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "warm_claim.json"
IMAGE = cold_bench.IMAGE
CONCURRENCIES = (1, 10, 50)
BURST_CONCURRENCY = 50
TARGET_CONCURRENCY = 10
TARGET_P50_RATIO = 3
TARGET_P99_RATIO = 10
TARGET_CLAIMS_PER_SECOND = 100


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
    setup = await cold_bench.open_setup(args.state_dir, prefix="bench-warm")
    plat, logs, kube_api, kube = setup.plat, setup.logs, setup.kube_api, setup.kube
    namespace, language, runtime_name = setup.namespace, setup.language, setup.runtime_name
    watcher_settings = setup.watcher_settings
    ports = {name: controlplane.free_port() for name in ("watcher", "reconciler", "pool")}
    watcher_settings = watcher_settings.model_copy(
        update={
            "http": watcher_settings.http.model_copy(update={"port": ports["watcher"]}),
            "watcher": watcher_settings.watcher.model_copy(
                update={"resync_period_seconds": 3600.0}
            ),
        }
    )
    rec = reconciler_settings.SandboxReconcilerSettings(
        service_name="bench-reconciler",
        nats=watcher_settings.nats,
        kube=common_settings.KubeSettings(kubeconfig=setup.kubeconfigs["sandbox_reconciler"]),
        http=common_settings.HttpSettings(host="127.0.0.1", port=ports["reconciler"]),
    )
    pool = pool_settings.PoolManagerSettings(
        service_name="bench-pool-manager",
        nats=watcher_settings.nats,
        kube=common_settings.KubeSettings(kubeconfig=setup.kubeconfigs["pool_manager"]),
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
            common_settings.environment_of(
                rec, groups=("nats", "kube", "http", "consumer", "sandbox", "reconcile", "warm")
            ),
            logs / f"{namespace}-reconciler.log",
        ),
        cold_bench._start(
            "lss_pool_manager",
            common_settings.environment_of(
                pool, groups=("nats", "kube", "http", "consumer", "pool")
            ),
            logs / f"{namespace}-pool.log",
        ),
    ]
    serial = 0

    async def floor_sample() -> float:
        nonlocal serial
        serial += 1
        return await bare_create_seconds(kube, namespace=namespace, name=f"floor-{serial}")

    async def floor_batch(concurrency: int) -> list[float]:
        return list(await asyncio.gather(*(floor_sample() for _ in range(concurrency))))

    async def prime(concurrency: int) -> None:
        # N concurrent requests need N connections; opening them (TLS handshakes) would be
        # charged to whichever side of the comparison runs first, and aiohttp closes idle
        # ones after 15-30 s. One unrecorded batch opens them for the floor and the phase.
        await floor_batch(concurrency)

    async def floor_throughput(count: int, concurrency: int) -> tuple[float, list[float]]:
        await prime(concurrency)
        limit = asyncio.Semaphore(concurrency)

        async def one() -> float:
            async with limit:
                return await floor_sample()

        started = time.monotonic()
        samples = list(await asyncio.gather(*(one() for _ in range(count))))
        return count / (time.monotonic() - started), samples

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
        running: float = await records.arrivals.wait(name, timeout_seconds=120)
        return running - started

    async def delete_boxes(names: list[str]) -> None:
        await asyncio.gather(
            *(
                objects.delete_object(kube, resource=objects.SANDBOX, name=n, namespace=namespace)
                for n in names
            )
        )

    async def settle(names: list[str]) -> None:
        """Until the round's sandboxes are gone and the pool is full again."""

        async def gone(name: str) -> None:
            while True:
                try:
                    await objects.get_object(
                        kube, resource=objects.SANDBOX, name=name, namespace=namespace
                    )
                except errors.NotFoundError:
                    return
                await asyncio.sleep(0.02)

        await asyncio.gather(*(gone(n) for n in names))
        await pods.wait_ready(args.pool_size)

    platform_pids = {
        name: processes_module.pid_of(name, state_dir=plat.state_dir)
        for name in ("kube-apiserver", "etcd", "kube-controller-manager", "kwok")
    }
    # kube-apiserver CPU seconds spent while each phase's requests ran: what one claim costs
    # the API server beside what one bare create costs it (the floor).
    api_cpu: dict[str, list[float]] = {}

    def cpu_snapshot() -> dict[str, float]:
        """CPU seconds so far of the platform's busy processes and of our services."""
        pids = {name: pid for name, pid in platform_pids.items() if pid}
        services = ("reconciler", "pool-manager", "watcher")[: len(processes)]
        pids.update(zip(services, (p.pid for p in processes), strict=True))
        return {name: cpu_seconds(pid) for name, pid in pids.items()}

    def api_seconds() -> float:
        return cpu_snapshot().get("kube-apiserver", 0.0)

    pods = warmpods.WarmPods()
    floor: dict[str, list[float]] = {f"concurrency_{c}": [] for c in CONCURRENCIES}
    floor["beside_cold"] = []
    warm: dict[int, list[float]] = {c: [] for c in CONCURRENCIES}
    warm_fallbacks: dict[int, int] = dict.fromkeys(CONCURRENCIES, 0)
    cold: list[float] = []
    sustained: dict[str, Any] = {}
    refill: dict[str, Any] = {}
    try:
        watcher = cold_bench._start(
            "lss_watcher",
            common_settings.environment_of(
                watcher_settings, groups=("nats", "kube", "http", "consumer", "watcher")
            ),
            logs / f"{namespace}-watcher.log",
        )
        processes.append(watcher)
        for name, process in zip(("reconciler", "pool", "watcher"), processes, strict=True):
            await cold_bench._wait_ready(ports[name], process)
        async with pods.following(kube_api, namespace):
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
            await pods.wait_ready(args.pool_size)
            for _ in range(3):  # warm-up: connections, imports
                await floor_sample()
            await create_box("warmup-0")
            box = 0
            rounds = {1: args.rounds_1, 10: args.rounds_10, 50: args.rounds_50}
            for concurrency in CONCURRENCIES:
                for _ in range(rounds[concurrency]):
                    await pods.wait_ready(min(args.pool_size, concurrency + 5))
                    await prime(concurrency)
                    cpu_before = api_seconds()
                    floor[f"concurrency_{concurrency}"] += await floor_batch(concurrency)
                    api_cpu.setdefault(f"floor_{concurrency}", []).append(
                        (api_seconds() - cpu_before) / concurrency
                    )
                    names = [f"w{concurrency}-{box + i}" for i in range(concurrency)]
                    box += concurrency
                    cpu_before = api_seconds()
                    times = await asyncio.gather(*(create_box(n) for n in names))
                    api_cpu.setdefault(f"warm_{concurrency}", []).append(
                        (api_seconds() - cpu_before) / concurrency
                    )
                    for n, seconds in zip(names, times, strict=True):
                        if records.launch.get(n) == "warm":
                            warm[concurrency].append(seconds)
                        else:
                            warm_fallbacks[concurrency] += 1
                    await delete_boxes(names)
                    if args.settle:
                        await settle(names)
            for index in range(args.cold_count):
                floor["beside_cold"].append(await floor_sample())
                cold.append(await create_box(f"cold-{index}", resources={"cpu": "1"}))
            requests_before = await api_requests(kube)
            window_start = datetime.datetime.now(datetime.UTC)
            sustained = await _sustained(
                args, pods, records, create_box, floor_throughput, cpu_snapshot
            )
            burst_names = [f"burst-{i}" for i in range(args.burst)]
            await delete_boxes(burst_names)
            await settle(burst_names)
            sustained["api_requests_per_sandbox"] = _per_sandbox(
                requests_before, await api_requests(kube), sandboxes=args.burst
            )
            # To attribute the same requests to their clients with an audit log
            # (LSS_DEV_APISERVER_AUDIT=1, bench/audit_summary.py --since/--until).
            sustained["api_requests_window_utc"] = [
                window_start.isoformat(),
                datetime.datetime.now(datetime.UTC).isoformat(),
            ]
            refill = await _refill(args, pods, kube, namespace, floor_throughput)
            refill["create_rate_limit_per_second"] = pool.pool.create_rate_per_second
            refill["create_burst"] = pool.pool.create_burst
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
        await warmpods.delete_namespace(kube, namespace)
        with contextlib.suppress(Exception):
            await objects.delete_object(
                kube, resource=objects.RUNTIME_ENVIRONMENT, name=runtime_name
            )
        await kube_api.close()
    floor_summaries = {key: cold_bench._summary(v) for key, v in floor.items() if v}
    warm_summaries = {
        f"concurrency_{c}": {
            **(cold_bench._summary(v) if v else {"count": 0}),
            "fell_back_to_cold": warm_fallbacks[c],
        }
        for c, v in warm.items()
    }
    ratios = {
        key: _ratios(summary, floor_summaries[key])
        for key, summary in warm_summaries.items()
        if summary["count"] and key in floor_summaries
    }
    if cold and floor["beside_cold"]:
        ratios["cold"] = _ratios(cold_bench._summary(cold), floor_summaries["beside_cold"])
    at_target = ratios.get(f"concurrency_{TARGET_CONCURRENCY}", {})
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform_info.python_version(),
            "kernel": platform_info.release(),
            "load_average": os.getloadavg(),
        },
        "parameters": {k: v for k, v in vars(args).items() if k not in ("state_dir", "out")},
        "floor_bare_apiserver_create_round_trip": floor_summaries,
        "warm_claim_sandbox_to_running_on_lss_status": warm_summaries,
        "cold_create_sandbox_to_running_on_lss_status": (
            cold_bench._summary(cold) if cold else {"count": 0}
        ),
        "ratio_to_floor_at_same_concurrency": ratios,
        f"targets_at_concurrency_{TARGET_CONCURRENCY}": {
            "p50_ratio": at_target.get("p50"),
            "p50_target_ratio": TARGET_P50_RATIO,
            "p50_met": at_target.get("p50", float("inf")) <= TARGET_P50_RATIO,
            "p99_ratio": at_target.get("p99"),
            "p99_ratio_to_floor_p50": at_target.get("p99_to_floor_p50"),
            "p99_target_ratio": TARGET_P99_RATIO,
            "p99_met": at_target.get("p99", float("inf")) <= TARGET_P99_RATIO,
        },
        "api_server_cpu_ms_per_create": {
            key: round(1000 * sum(values) / len(values), 2)
            for key, values in sorted(api_cpu.items())
            if values
        },
        "sustained": sustained,
        "refill": refill,
        "samples": {
            "floor": floor,
            "warm": {str(c): v for c, v in warm.items()},
            "cold": cold,
        },
    }


async def bare_create_seconds(kube: client.Kube, *, namespace: str, name: str) -> float:
    """The floor: one bare API create round trip (a ConfigMap ``name``), in seconds."""
    started = time.monotonic()
    await objects.create_object(
        kube,
        resource=objects.CONFIG_MAP,
        namespace=namespace,
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}},
    )
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def _ratios(measured: dict[str, Any], floor: dict[str, Any]) -> dict[str, float]:
    """Measured percentile ÷ the floor's same percentile (and p99 ÷ floor p50, stricter)."""
    return {
        "p50": round(measured["p50_ms"] / floor["p50_ms"], 1),
        "p95": round(measured["p95_ms"] / floor["p95_ms"], 1),
        "p99": round(measured["p99_ms"] / floor["p99_ms"], 1),
        "p99_to_floor_p50": round(measured["p99_ms"] / floor["p50_ms"], 1),
    }


async def _sustained(
    args: argparse.Namespace,
    pods: warmpods.WarmPods,
    records: Records,
    create_box: Callable[[str], Awaitable[float]],
    floor_throughput: Callable[[int, int], Awaitable[tuple[float, list[float]]]],
    cpu_snapshot: Callable[[], dict[str, float]],
) -> dict[str, Any]:
    """A burst larger than the pool, created as fast as 50 writers can, while it refills."""
    await pods.wait_ready(args.pool_size)
    cpu_before = cpu_snapshot()
    floor_started = time.monotonic()
    floor_rate, floor = await floor_throughput(args.burst, BURST_CONCURRENCY)
    floor_cpu = _spent(cpu_before, cpu_snapshot())
    floor_wall = time.monotonic() - floor_started
    names = [f"burst-{i}" for i in range(args.burst)]
    limit = asyncio.Semaphore(BURST_CONCURRENCY)

    async def limited(n: str) -> float:
        async with limit:
            return await create_box(n)

    started = time.monotonic()
    cpu_before = cpu_snapshot()
    await asyncio.gather(*(limited(n) for n in names))
    burst_cpu = _spent(cpu_before, cpu_snapshot())
    burst_wall = time.monotonic() - started
    arrivals = records.arrivals.times
    warm_names = [n for n in names if records.launch.get(n) == "warm"]
    last_warm = max((arrivals[n] for n in warm_names), default=started)
    all_running = max(arrivals[n] for n in names)
    refilled = pods.ready_between(started, all_running)
    return {
        "created": args.burst,
        "concurrency": BURST_CONCURRENCY,
        "warm": len(warm_names),
        "cold": args.burst - len(warm_names),
        "pool_size": args.pool_size,
        "warm_claims_per_second": round(len(warm_names) / max(last_warm - started, 1e-9), 1),
        "target_warm_claims_per_second": TARGET_CLAIMS_PER_SECOND,
        "all_running_seconds": round(all_running - started, 2),
        "refilled_during_burst": refilled,
        "refill_warm_pods_per_second": round(refilled / max(all_running - started, 1e-9), 1),
        "floor_bare_creates_per_second": round(floor_rate, 1),
        "floor": cold_bench._summary(floor),
        # CPU while the burst ran (claims, their refill, what the platform does for both), per
        # process: ms per sandbox and cores busy; the same for the floor's creates. Which one
        # is the ceiling: a process near 1.0 core is single-threaded-bound (our services).
        "cpu_ms_per_sandbox": {
            name: round(1000 * spent / args.burst, 1) for name, spent in burst_cpu.items()
        },
        "cores_busy": {
            name: round(spent / max(burst_wall, 1e-9), 2) for name, spent in burst_cpu.items()
        },
        "floor_cpu_ms_per_create": {
            name: round(1000 * spent / args.burst, 2) for name, spent in floor_cpu.items()
        },
        "floor_cores_busy": {
            name: round(spent / max(floor_wall, 1e-9), 2) for name, spent in floor_cpu.items()
        },
    }


RequestCounts = dict[tuple[str, str], float]
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})


async def api_requests(kube: client.Kube) -> RequestCounts:
    """The API server's ``apiserver_request_total`` so far, by (verb, resource[/sub])."""
    response = await kube.api.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False
    )
    async with response:
        text = (await response.read()).decode()
    counts: RequestCounts = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line[len("apiserver_request_total{") :].rpartition("} ")
        found = dict(part.split("=", 1) for part in labels_text.split(",") if "=" in part)
        label = {key: raw.strip('"') for key, raw in found.items()}
        resource = label.get("resource", "")
        if label.get("subresource"):
            resource += "/" + label["subresource"]
        key = (label.get("verb", ""), resource)
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def _per_sandbox(before: RequestCounts, after: RequestCounts, *, sandboxes: int) -> dict[str, Any]:
    """Requests the API server served per sandbox of the burst, over its whole life: its
    claim, the refill it caused, its deletion, and what controllers, kwok and the bench did
    for them (the bench's floor ConfigMaps left out; its reads include polling). The API
    server does not say for whom: whatever else it serves meanwhile counts too (such as a
    previous run's namespace still being deleted on a reused platform)."""
    spent = {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if after[key] > before.get(key, 0.0) and key[1] != "configmaps"
    }
    writes = {k: v for k, v in spent.items() if k[0] in _WRITES}
    top = sorted(writes.items(), key=lambda item: -item[1])
    return {
        "writes": round(sum(writes.values()) / sandboxes, 1),
        "reads": round(sum(v for k, v in spent.items() if k[0] not in _WRITES) / sandboxes, 1),
        "writes_by_verb_and_resource": {
            f"{verb} {resource}": round(value / sandboxes, 2) for (verb, resource), value in top
        },
    }


def _spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


async def _refill(
    args: argparse.Namespace,
    pods: warmpods.WarmPods,
    kube: client.Kube,
    namespace: str,
    floor_throughput: Callable[[int, int], Awaitable[tuple[float, list[float]]]],
) -> dict[str, Any]:
    """``--pool-size`` missing WarmPods and no claims: how fast the pool manager fills them.

    Raising minSize takes the same path as a refill after claims (fewer unassigned than
    wanted → create the difference) without claims competing for the API server, and its
    start is a single write this process makes, so the clock starts exactly there.
    """
    await pods.wait_ready(args.pool_size)
    floor_rate, floor = await floor_throughput(args.burst, BURST_CONCURRENCY)
    target = 2 * args.pool_size
    started = time.monotonic()
    await objects.patch_object(
        kube,
        resource=objects.WARM_POOL,
        name="bench",
        namespace=namespace,
        body={"spec": {"minSize": target}},
    )
    seconds = await pods.wait_ready(target) - started
    return {
        "missing": args.pool_size,
        "refilled_to": target,
        "seconds": round(seconds, 2),
        "warm_pods_per_second": round(args.pool_size / max(seconds, 1e-9), 1),
        "floor_bare_creates_per_second": round(floor_rate, 1),
        "floor": cold_bench._summary(floor),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default="/tmp/lss-bench")
    parser.add_argument("--pool-size", type=int, default=60, help="the WarmPool's minSize")
    parser.add_argument("--rounds-1", type=int, default=40, help="rounds of 1 create")
    parser.add_argument("--rounds-10", type=int, default=6, help="rounds of 10 concurrent")
    parser.add_argument("--rounds-50", type=int, default=2, help="rounds of 50 concurrent")
    parser.add_argument("--cold-count", type=int, default=20, help="cold creates, one at a time")
    parser.add_argument(
        "--burst", type=int, default=150, help="sandboxes of the sustained phase (> pool size)"
    )
    parser.add_argument(
        "--out", type=pathlib.Path, default=RESULTS, help="results JSON; the PNG goes beside it"
    )
    parser.add_argument(
        "--settle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start each warm round once the previous round's sandboxes are gone and the "
        "pool is full again (--no-settle: their deletion and the refill overlap the next "
        "round, as in the sustained phase)",
    )
    args = parser.parse_args()
    results = asyncio.run(run(args))
    out: pathlib.Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    summary = {k: v for k, v in results.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    plot.write_png(results, out.with_suffix(".png"))
    print(f"results written to {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
