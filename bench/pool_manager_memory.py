"""pool-manager memory per WarmPod: its RSS over its idle baseline, divided by the WarmPods.

    uv run python bench/pool_manager_memory.py [--state-dir DIR] [--warm-pods 1000] [--pools 10]

The watcher and the pool manager run as their own processes (``python -m ...``, the pool
manager with its default settings) against the local platform (kube-apiserver + kwok,
nats-server; started if needed in ``--state-dir``), on streams of their own, in a fresh
namespace enforcing Pod Security ``restricted``.

1. **baseline**: once the pool manager is ready, and idle for ``--settle-seconds``, the
   median of ``--samples`` readings of its ``VmRSS`` (``/proc/<pid>/status``, one second
   apart; ``RssAnon``, the part that is not mapped files, beside it);
2. **stages**: ``--pools`` WarmPools of ``--warm-pods / --pools`` each are created in
   ``--stages`` equal groups; after each group, once every WarmPod is Ready (a watch of the
   namespace), the pool manager's consumer has nothing left to deliver and it has been idle
   for ``--settle-seconds``, the same median reading.

Reported per stage: (RSS - baseline) / WarmPods, in bytes. Over the baseline this includes
what the first pools cost once (code paths first run, connection pools, the allocator's
arenas); the **marginal** figure, between the last two stages, is what one more WarmPod
costs. The target is 4 KiB per WarmPod. CPython cannot be asked to collect garbage from
outside, hence the settling and the median. Each reading also counts the process's sockets
(nearly all API server connections): with glibc's default allocator the RSS growth follows
the most connections open at once, not the WarmPods (docs/pool-manager.md, "Memory").
Results: ``bench/results/pool_manager_memory.json``.
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
import statistics
import sys
import time
from typing import Any

import nats
from nats.js import JetStreamContext

from lss_common import settings as common_settings
from lss_common.bus import topology
from lss_common.kube import objects
from lss_common.models import kinds
from lss_dev import controlplane
from lss_pool_manager import settings as pool_settings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# Sibling modules: the cold bench's helpers (process start, readiness), the WarmPod watch.
import sandbox_cold_create as cold_bench
import warmpods

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "pool_manager_memory.json"
TARGET_BYTES_PER_WARM_POD = 4096
# Small pods: the three kwok nodes have 64 CPUs each, so 1,000 pods of the default 500m
# would not all be scheduled (and other benches' leftovers may hold some of them).
POD_RESOURCES = {"cpu": "50m", "memory": "64Mi"}
_STATUS_FIELDS = {"VmRSS": "vm_rss_bytes", "RssAnon": "rss_anon_bytes", "VmHWM": "vm_hwm_bytes"}


def _memory(pid: int) -> dict[str, int]:
    """The process's resident memory, in bytes, from ``/proc/<pid>/status`` (kB there)."""
    found: dict[str, int] = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in _STATUS_FIELDS:
            found[_STATUS_FIELDS[key]] = int(value.split()[0]) * 1024
    return found


def _sockets(pid: int) -> int:
    """Open sockets of the process: mostly its API server connections (module docstring)."""
    count = 0
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed between the listing and the readlink
            count += os.readlink(fd).startswith("socket:")
    return count


async def _reading(pid: int, *, samples: int) -> dict[str, Any]:
    """The median of ``samples`` readings one second apart (the raw RSS readings too)."""
    readings = []
    for index in range(samples):
        if index:
            await asyncio.sleep(1.0)
        readings.append(_memory(pid))
    return {
        "vm_rss_bytes": int(statistics.median(r["vm_rss_bytes"] for r in readings)),
        "rss_anon_bytes": int(statistics.median(r["rss_anon_bytes"] for r in readings)),
        "vm_rss_samples": [r["vm_rss_bytes"] for r in readings],
        "vm_hwm_bytes": readings[-1]["vm_hwm_bytes"],
        "open_sockets": _sockets(pid),
    }


async def _wait_idle(
    js: JetStreamContext, *, stream: str, durable: str, timeout_seconds: float
) -> int:
    """Wait until the consumer has delivered everything; the messages still unacknowledged.

    Unacknowledged includes the pool manager's delayed requeues (heartbeats, resyncs), which
    never drain: only what is still to be delivered must be zero.
    """
    async with asyncio.timeout(timeout_seconds):
        while True:
            info = await js.consumer_info(stream, durable)
            if not info.num_pending:
                return info.num_ack_pending or 0
            await asyncio.sleep(0.5)


def _per_warm_pod(reading: dict[str, Any], base: dict[str, Any], count: int) -> dict[str, int]:
    return {
        "vm_rss_bytes_per_warm_pod": round(
            (reading["vm_rss_bytes"] - base["vm_rss_bytes"]) / count
        ),
        "rss_anon_bytes_per_warm_pod": round(
            (reading["rss_anon_bytes"] - base["rss_anon_bytes"]) / count
        ),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.warm_pods % args.pools or args.pools % args.stages:
        raise SystemExit("--warm-pods must divide into --pools, --pools into --stages")
    per_pool = args.warm_pods // args.pools
    setup = await cold_bench.open_setup(args.state_dir, prefix="bench-poolmem")
    plat, logs, kube_api, kube = setup.plat, setup.logs, setup.kube_api, setup.kube
    namespace, language, runtime_name = setup.namespace, setup.language, setup.runtime_name
    watcher_settings = setup.watcher_settings
    ports = {name: controlplane.free_port() for name in ("watcher", "pool")}
    watcher_settings = watcher_settings.model_copy(
        update={"http": watcher_settings.http.model_copy(update={"port": ports["watcher"]})}
    )
    pool = pool_settings.PoolManagerSettings(
        service_name="bench-pool-manager",
        nats=watcher_settings.nats,
        kube=common_settings.KubeSettings(kubeconfig=setup.kubeconfigs["pool_manager"]),
        http=common_settings.HttpSettings(host="127.0.0.1", port=ports["pool"]),
    )
    nc = await nats.connect(plat.nats_url)
    js = nc.jetstream()
    await topology.declare_streams(js, settings=pool.nats)
    processes = []
    pods = warmpods.WarmPods()
    stages: list[dict[str, Any]] = []
    try:
        processes.append(
            cold_bench._start(
                "lss_pool_manager",
                {
                    **common_settings.environment_of(
                        pool, groups=("nats", "kube", "http", "consumer", "pool")
                    ),
                    # As deploy/docker/service.Dockerfile runs it (0: glibc's default).
                    **(
                        {"MALLOC_MMAP_THRESHOLD_": str(args.malloc_mmap_threshold)}
                        if args.malloc_mmap_threshold
                        else {}
                    ),
                },
                logs / f"{namespace}-pool.log",
            )
        )
        processes.append(
            cold_bench._start(
                "lss_watcher",
                common_settings.environment_of(
                    watcher_settings, groups=("nats", "kube", "http", "consumer", "watcher")
                ),
                logs / f"{namespace}-watcher.log",
            )
        )
        for name, process in zip(("pool", "watcher"), processes, strict=True):
            await cold_bench._wait_ready(ports[name], process)
        pid = processes[0].pid
        await asyncio.sleep(args.settle_seconds)
        baseline = await _reading(pid, samples=args.samples)
        print(f"baseline: {baseline['vm_rss_bytes'] / 2**20:.1f} MiB", flush=True)
        pools_per_stage = args.pools // args.stages
        async with pods.following(kube_api, namespace):
            for stage in range(args.stages):
                started = time.monotonic()
                names = [
                    f"pool-{i}"
                    for i in range(stage * pools_per_stage, (stage + 1) * pools_per_stage)
                ]
                await asyncio.gather(
                    *(
                        objects.create_object(
                            kube,
                            resource=objects.WARM_POOL,
                            namespace=namespace,
                            body={
                                "apiVersion": kinds.API_VERSION,
                                "kind": "WarmPool",
                                "metadata": {"name": name, "namespace": namespace},
                                "spec": {
                                    "runtime": f"{language}:1.0",
                                    "minSize": per_pool,
                                    "resources": POD_RESOURCES,
                                },
                            },
                        )
                        for name in names
                    )
                )
                total = (stage + 1) * pools_per_stage * per_pool
                filled = await pods.wait_ready(
                    total, timeout_seconds=max(180.0, total * args.seconds_per_warm_pod)
                )
                sockets_when_filled = _sockets(pid)
                unacked = await _wait_idle(
                    js,
                    stream=pool.nats.events_stream,
                    durable=pool.pool.consumer_name,
                    timeout_seconds=120,
                )
                await asyncio.sleep(args.settle_seconds)
                reading = await _reading(pid, samples=args.samples)
                stages.append(
                    {
                        "pools": (stage + 1) * pools_per_stage,
                        "warm_pods": total,
                        "fill_seconds": round(filled - started, 1),
                        "requeues_held_by_the_consumer": unacked,
                        "open_sockets_when_filled": sockets_when_filled,
                        **reading,
                        **_per_warm_pod(reading, baseline, total),
                    }
                )
                print(
                    f"{total} WarmPods: {reading['vm_rss_bytes'] / 2**20:.1f} MiB, "
                    f"{stages[-1]['vm_rss_bytes_per_warm_pod']} B per WarmPod over the baseline",
                    flush=True,
                )
    finally:
        for process in reversed(processes):
            process.terminate()
            with contextlib.suppress(Exception):
                process.wait(timeout=20)
        for stream in (pool.nats.events_stream, pool.nats.status_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()
        await warmpods.delete_namespace(kube, namespace)
        with contextlib.suppress(Exception):
            await objects.delete_object(
                kube, resource=objects.RUNTIME_ENVIRONMENT, name=runtime_name
            )
        await kube_api.close()
    last = stages[-1]
    marginal: dict[str, int] | None = None
    if len(stages) > 1:
        before = stages[-2]
        marginal = _per_warm_pod(last, before, last["warm_pods"] - before["warm_pods"])
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform_info.python_version(),
            "kernel": platform_info.release(),
            "load_average": os.getloadavg(),
        },
        "parameters": {k: v for k, v in vars(args).items() if k not in ("state_dir", "out")},
        "pool_manager_settings": pool.pool.model_dump(mode="json"),
        "pod_resources": POD_RESOURCES,
        "baseline": baseline,
        "stages": stages,
        "bytes_per_warm_pod": {
            "over_baseline": last["vm_rss_bytes_per_warm_pod"],
            "marginal_last_stage": marginal["vm_rss_bytes_per_warm_pod"] if marginal else None,
            "rss_anon_over_baseline": last["rss_anon_bytes_per_warm_pod"],
            "rss_anon_marginal_last_stage": (
                marginal["rss_anon_bytes_per_warm_pod"] if marginal else None
            ),
            "target": TARGET_BYTES_PER_WARM_POD,
            "over_baseline_met": last["vm_rss_bytes_per_warm_pod"] <= TARGET_BYTES_PER_WARM_POD,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default="/tmp/lss-bench")
    parser.add_argument("--warm-pods", type=int, default=1000, help="WarmPods in all, at the end")
    parser.add_argument("--pools", type=int, default=10, help="WarmPools sharing them equally")
    parser.add_argument("--stages", type=int, default=2, help="groups the pools are created in")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=35.0,
        help="idle before reading: aiohttp closes an API server connection 15-30 s after "
        "its last request, so idle connections are gone by then",
    )
    parser.add_argument("--samples", type=int, default=5, help="readings per median")
    parser.add_argument(
        "--seconds-per-warm-pod",
        type=float,
        default=0.5,
        help="fill timeout per WarmPod (at least 180 s in all)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="results JSON")
    parser.add_argument(
        "--malloc-mmap-threshold",
        type=int,
        default=131072,
        help="MALLOC_MMAP_THRESHOLD_ for the pool manager, as the images set it (0: glibc's "
        "default, which keeps freed connection buffers resident)",
    )
    args = parser.parse_args()
    results = asyncio.run(run(args))
    out: pathlib.Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "stages"}, indent=2))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
