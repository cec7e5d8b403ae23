"""Cold create latency: Sandbox created → Running seen on LSS_STATUS, beside the bare floor.

    uv run python bench/sandbox_cold_create.py [--state-dir DIR] [--count 100]

The watcher and the sandbox reconciler run as their own processes (``python -m ...``) against
the local platform (kube-apiserver + kwok, nats-server; started if needed in ``--state-dir``),
on streams of their own, in a fresh namespace enforcing Pod Security ``restricted``.

One sample at a time, alternating, so both see the same machine:

* **floor**: a bare restricted pod created by this process → its Ready condition seen on a
  watch of the namespace's pods (the API server create round trip + scheduler + kwok);
* **cold create**: a Sandbox created → the first ``phase: Running`` record for it on
  LSS_STATUS (read by an ordered push consumer started before the run).

Both times are taken on this process's monotonic clock, from just before the create request
to the arrival of the event. API writes per cold sandbox come from the reconciler's
``llmsafespace_sandbox_api_writes_total{kind,verb}`` after the creates, and again after the
sandboxes are deleted. Results go to ``bench/results/sandbox_cold_create.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import platform as platform_info
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
import nats
import prometheus_client
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import watch as k8s_watch
from nats.js import api
from prometheus_client import parser as prometheus_parser

from lss_common import settings as common_settings
from lss_common.bus import codec, topology
from lss_common.kube import client, objects
from lss_common.logic import subjects
from lss_common.models import kinds, messages
from lss_common.observability import metrics as shared_metrics
from lss_dev import controlplane, identities
from lss_dev import platform as platform_module
from lss_sandbox_reconciler import settings as reconciler_settings
from lss_watcher import settings as watcher_settings_module
from lss_watcher import testing as watcher_testing

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "sandbox_cold_create.json"
PSS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "llmsafespace.dev/sandboxes": "enabled",
}
IMAGE = "ghcr.io/llmsafespace/runtime-python:3.11"


def _start(module: str, env: dict[str, str], log: pathlib.Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not await watcher_testing.readyz(f"http://127.0.0.1:{port}"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"process on port {port} did not become ready")
        await asyncio.sleep(0.05)


async def _scrape(port: int) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    values: dict[str, float] = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "llmsafespace_sandbox_api_writes_total":
                key = f"{sample.labels['kind']}/{sample.labels['verb']}"
                values[key] = sample.value
    return values


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


def _bare_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "floor"}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                }
            ],
        },
    }


class Arrivals:
    """name → monotonic time of the first event satisfying a condition."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future[float]] = {}

    def seen(self, name: str) -> None:
        if name in self.times:
            return
        now = time.monotonic()
        self.times[name] = now
        waiter = self._waiters.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)

    async def wait(self, name: str, *, timeout_seconds: float = 60) -> float:
        if name in self.times:
            return self.times[name]
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[name] = future
        return await asyncio.wait_for(future, timeout_seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class Setup:
    """What every bench starts from: the platform, a client, a restricted namespace, a
    RuntimeEnvironment of its own and a watcher's settings isolated to that namespace."""

    plat: platform_module.Platform
    logs: pathlib.Path
    kube_api: k8s_client.ApiClient
    kube: client.Kube
    namespace: str
    language: str
    runtime_name: str
    watcher_settings: watcher_settings_module.WatcherSettings
    # Each service's kubeconfig: its own ServiceAccount with the RBAC of deploy/rbac, as
    # deployed (the bench's own requests use the administrator's).
    kubeconfigs: dict[str, str]


async def open_setup(state_dir: str, *, prefix: str) -> Setup:
    """Start the platform in ``state_dir`` if needed, then create the bench's namespace
    (``<prefix>-<random>``, Pod Security ``restricted``) and RuntimeEnvironment."""
    state = pathlib.Path(state_dir)
    plat = platform_module.Platform(state)
    await asyncio.to_thread(plat.up)
    kubeconfigs = await asyncio.to_thread(identities.kubeconfigs, plat.control_plane)
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
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await objects.create_object(
        kube,
        resource=objects.NAMESPACE,
        body={"metadata": {"name": namespace, "labels": PSS}},
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
    return Setup(
        plat=plat,
        logs=logs,
        kube_api=kube_api,
        kube=kube,
        namespace=namespace,
        language=language,
        runtime_name=runtime_name,
        watcher_settings=watcher_testing.isolated_settings(
            kubeconfig=kubeconfigs["watcher"], nats_url=plat.nats_url, namespace=namespace
        ),
        kubeconfigs=kubeconfigs,
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    setup = await open_setup(args.state_dir, prefix="bench-cold")
    plat, logs, kube_api, kube = setup.plat, setup.logs, setup.kube_api, setup.kube
    namespace, language, runtime_name = setup.namespace, setup.language, setup.runtime_name
    watcher_settings = setup.watcher_settings
    watcher_port = controlplane.free_port()
    watcher_settings = watcher_settings.model_copy(
        update={
            "http": watcher_settings.http.model_copy(update={"port": watcher_port}),
            "watcher": watcher_settings.watcher.model_copy(
                update={"resync_period_seconds": 3600.0}
            ),
        }
    )
    reconciler_port = controlplane.free_port()
    settings = reconciler_settings.SandboxReconcilerSettings(
        service_name="bench-reconciler",
        nats=watcher_settings.nats,
        kube=common_settings.KubeSettings(kubeconfig=setup.kubeconfigs["sandbox_reconciler"]),
        http=common_settings.HttpSettings(host="127.0.0.1", port=reconciler_port),
    )
    nc = await nats.connect(plat.nats_url)
    js = nc.jetstream()
    await topology.declare_streams(js, settings=settings.nats)
    running = Arrivals()

    async def on_status(msg: Any) -> None:
        try:
            record = codec.decode(msg.data, message_type=messages.StatusRecord)
        except Exception as error:
            print(f"undecodable status record: {error}", flush=True)
            return
        if record.phase == "Running":
            running.seen(record.name)

    status_sub = await js.subscribe(
        subjects.status_filter("sandbox", prefix=settings.nats.subject_prefix),
        stream=settings.nats.status_stream,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.ALL,
        cb=on_status,
    )
    ready_pods = Arrivals()

    async def watch_pods() -> None:
        core = k8s_client.CoreV1Api(kube_api)
        while True:
            watcher = k8s_watch.Watch()
            async for event in watcher.stream(
                core.list_namespaced_pod,
                namespace,
                label_selector="bench=floor",
                timeout_seconds=300,
            ):
                pod = event["object"]
                for condition in pod.status.conditions or ():
                    if condition.type == "Ready" and condition.status == "True":
                        ready_pods.seen(pod.metadata.name)

    pod_watch = asyncio.create_task(watch_pods())
    reconciler = _start(
        "lss_sandbox_reconciler",
        common_settings.environment_of(
            settings, groups=("nats", "kube", "http", "consumer", "sandbox", "reconcile")
        ),
        logs / f"{namespace}-reconciler.log",
    )
    watcher = _start(
        "lss_watcher",
        common_settings.environment_of(
            watcher_settings, groups=("nats", "kube", "http", "consumer", "watcher")
        ),
        logs / f"{namespace}-watcher.log",
    )
    cold: list[float] = []
    floor: list[float] = []
    try:
        await _wait_ready(reconciler_port, reconciler)
        await _wait_ready(watcher_port, watcher)
        # Warm-up (connection pools, imports): one of each, not counted.
        for index in range(-args.warmup, args.count):
            pod = f"floor-{index + args.warmup}"
            started = time.monotonic()
            await objects.create_object(
                kube, resource=objects.POD, body=_bare_pod(pod), namespace=namespace
            )
            pod_seconds = await ready_pods.wait(pod) - started
            box = f"cold-{index + args.warmup}"
            started = time.monotonic()
            await objects.create_object(
                kube,
                resource=objects.SANDBOX,
                namespace=namespace,
                body={
                    "apiVersion": kinds.API_VERSION,
                    "kind": "Sandbox",
                    "metadata": {"name": box, "namespace": namespace},
                    "spec": {"runtime": f"{language}:1.0", "timeout": 3600},
                },
            )
            try:
                box_seconds = await running.wait(box) - started
            except TimeoutError:
                subject = subjects.status_subject(
                    "sandbox", namespace=namespace, name=box, prefix=settings.nats.subject_prefix
                )
                with contextlib.suppress(Exception):
                    last = await js.get_last_msg(settings.nats.status_stream, subject)
                    print(f"last status record of {box}: {last.data!r}", flush=True)
                print(f"status subscription: {status_sub.pending_msgs} pending", flush=True)
                raise
            if index >= 0:
                floor.append(pod_seconds)
                cold.append(box_seconds)
        created_writes = await _scrape(reconciler_port)
        boxes = args.count + args.warmup
        for index in range(boxes):
            await objects.delete_object(
                kube, resource=objects.SANDBOX, name=f"cold-{index}", namespace=namespace
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            left = await objects.list_objects(kube, resource=objects.SANDBOX, namespace=namespace)
            if not left.items:
                break
            await asyncio.sleep(0.2)
        all_writes = await _scrape(reconciler_port)
    finally:
        pod_watch.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pod_watch
        for process in (watcher, reconciler):
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
        await status_sub.unsubscribe()
        for stream in (settings.nats.events_stream, settings.nats.status_stream):
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
    deletion_writes = {
        key: all_writes.get(key, 0.0) - created_writes.get(key, 0.0) for key in all_writes
    }
    cold_summary = _summary(cold)
    floor_summary = _summary(floor)
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform_info.python_version(),
            "kernel": platform_info.release(),
        },
        "count": args.count,
        "cold_create_sandbox_to_running_on_lss_status": cold_summary,
        "floor_bare_pod_create_to_ready": floor_summary,
        "p50_ratio_cold_to_floor": round(cold_summary["p50_ms"] / floor_summary["p50_ms"], 2),
        "api_writes_per_cold_sandbox": {
            "total": round(sum(created_writes.values()) / boxes, 2),
            "by_kind_verb": {k: round(v / boxes, 2) for k, v in sorted(created_writes.items())},
        },
        "api_writes_per_deletion": {
            "total": round(sum(deletion_writes.values()) / boxes, 2),
            "by_kind_verb": {
                k: round(v / boxes, 2) for k, v in sorted(deletion_writes.items()) if v
            },
        },
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default="/tmp/lss-bench")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    results = await run(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"results written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
