"""The least a warm claim can take on this platform: its required writes alone, made directly.

    uv run python bench/claim_floor.py [--state-dir DIR] [--rounds 20] [--concurrencies 1,10,50]

What a claim must write, whatever the implementation (issue 5 and DESIGN.md section 5), made
by this process with nothing else around them — no watch hop from the Sandbox's create to a
controller, no message bus, no reads, no finalizer, no Service, no status record to publish:

1. the user's Sandbox create (the measured interval starts with its request, as in
   ``warm_claim.py``);
2. the CAS on a Ready WarmPod's status (``Ready`` → ``Assigned``, with its resourceVersion);
3. the pod's adoption (owner reference and labels) and the sandbox's NetworkPolicy, together;
4. the Sandbox's ``Running`` status.

Four round trips in sequence, each a write the API server must validate, store in etcd and
fan out to its watchers. The WarmPods and their pods are made beforehand by this script (no
pool manager runs). Each round of N concurrent claims (``--concurrencies``: 1, 10, 50) is
preceded by as many concurrent bare creates (a ConfigMap: ``warm_claim.py``'s floor), so both
see the same machine. Reported: p50/p95/p99 of both, their ratios, the API server's CPU
time per claim and per bare create (``/proc``), and how many of each completed per second of
their batches (at 50 concurrent: about the most claims per second the platform completes
with nothing else to do — no refill, no deletion). No real claim can be faster than this one
on the same platform: it is the bound the issue's targets are to be read against.

**Sustained** (``--sustained``, 300): claims at 50 concurrent, each beside the least a pool's
refill writes for one WarmPod (the WarmPod; its pod beside its Service; its Ready status):
claims per second over the burst, issue 5's "while the pool refills".

The same for a **cold** start (``--cold-count``, one at a time, each after a bare pod's
create → Ready, ``sandbox_cold_create.py``'s floor): the Sandbox's create; its ServiceAccount
and default-deny NetworkPolicy, together; its pod and Service, together (admission needs the
account first); the pod's Ready condition seen on a watch (kwok); the ``Running`` status.
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
from typing import Any

from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import watch as k8s_watch

from lss_common.kube import client, objects
from lss_common.models import kinds
from lss_dev import processes as processes_module

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import sandbox_cold_create as cold_bench
import warm_claim

AGENT_PORT = 8080


def _warm_pod_body(name: str, *, runtime: str) -> dict[str, Any]:
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": "WarmPod",
        "metadata": {"name": name, "labels": {"bench": "claim-floor"}},
        "spec": {
            "poolRef": {"name": "bench"},
            "runtime": runtime,
            "securityLevel": "standard",
            "resources": {"cpu": "500m", "memory": "512Mi", "ephemeralStorage": "1Gi"},
        },
    }


def _pod_body(name: str) -> dict[str, Any]:
    """``sandbox_cold_create``'s bare pod with small requests: the run's few hundred pods
    must fit on the kwok nodes (requests do not change how fast kwok runs a pod)."""
    pod = cold_bench._bare_pod(name)
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    return pod


def _policy_body(name: str, *, sandbox_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-deny", "labels": {"bench": "claim-floor"}},
        "spec": {
            "podSelector": {"matchLabels": {"llmsafespace.dev/sandbox-uid": sandbox_uid}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": "llmsafespace-api"}}}],
                    "ports": [{"protocol": "TCP", "port": AGENT_PORT}],
                }
            ],
        },
    }


class Claims:
    """The warm pods made for the run, and the claims of them."""

    def __init__(self, kube: client.Kube, *, namespace: str, runtime: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._runtime = runtime
        self._ready: list[dict[str, Any]] = []
        self._serial = 0

    async def prepare(self, count: int, *, concurrency: int = 20) -> None:
        """``count`` Ready WarmPods, each with a pod it controls."""
        limit = asyncio.Semaphore(concurrency)

        async def one(index: int) -> dict[str, Any]:
            async with limit:
                return await self._warm_pod(f"warm-{index}", service=False)

        self._ready = list(await asyncio.gather(*(one(i) for i in range(count))))

    async def refill(self) -> None:
        """The least a pool's refill writes for one WarmPod: the WarmPod, its pod beside the
        Service prepared with it, its Ready status."""
        await self._warm_pod(self._next_name("refill"), service=True)

    async def _warm_pod(self, name: str, *, service: bool) -> dict[str, Any]:
        kube, namespace = self._kube, self._namespace
        warm_pod = await objects.create_object(
            kube,
            resource=objects.WARM_POD,
            namespace=namespace,
            body=_warm_pod_body(name, runtime=self._runtime),
        )
        owner = {
            "apiVersion": kinds.API_VERSION,
            "kind": "WarmPod",
            "name": name,
            "uid": warm_pod["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        pod = _pod_body(f"{name}-pod")
        pod["metadata"]["ownerReferences"] = [owner]
        creates = [objects.create_object(kube, resource=objects.POD, namespace=namespace, body=pod)]
        if service:
            creates.append(
                objects.create_object(
                    kube,
                    resource=objects.SERVICE,
                    namespace=namespace,
                    body={
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": f"warm-{name}", "ownerReferences": [owner]},
                        "spec": {
                            "selector": {"llmsafespace.dev/warmpod-uid": owner["uid"]},
                            "ports": [{"port": AGENT_PORT, "targetPort": AGENT_PORT}],
                        },
                    },
                )
            )
        await asyncio.gather(*creates)
        ready: dict[str, Any] = await objects.patch_object(
            kube,
            resource=objects.WARM_POD,
            namespace=namespace,
            name=name,
            subresource="status",
            body={"status": {"phase": "Ready", "podName": f"{name}-pod"}},
        )
        return ready

    def _next_name(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._serial}"

    async def _create_sandbox(self, name: str) -> str:
        """The user's create; the new Sandbox's UID."""
        sandbox = await objects.create_object(
            self._kube,
            resource=objects.SANDBOX,
            namespace=self._namespace,
            body={
                "apiVersion": kinds.API_VERSION,
                "kind": "Sandbox",
                "metadata": {"name": name},
                "spec": {"runtime": self._runtime, "timeout": 3600},
            },
        )
        return str(sandbox["metadata"]["uid"])

    async def _set_running(self, name: str, *, pod_name: str, **status: Any) -> None:
        await objects.patch_object(
            self._kube,
            resource=objects.SANDBOX,
            namespace=self._namespace,
            name=name,
            subresource="status",
            body={
                "status": {
                    "phase": "Running",
                    "podName": pod_name,
                    "podNamespace": self._namespace,
                    **status,
                }
            },
        )

    async def claim(self) -> float:
        """One claim's required writes in sequence; seconds from the Sandbox's create
        request to its Running status written."""
        warm_pod = self._ready.pop()
        name = self._next_name("box")
        kube, namespace = self._kube, self._namespace
        started = time.monotonic()
        uid = await self._create_sandbox(name)
        warm_name = warm_pod["metadata"]["name"]
        await objects.patch_object(
            kube,
            resource=objects.WARM_POD,
            namespace=namespace,
            name=warm_name,
            subresource="status",
            body={
                "metadata": {"resourceVersion": warm_pod["metadata"]["resourceVersion"]},
                "status": {"phase": "Assigned", "assignedTo": uid},
            },
        )
        pod_name = f"{warm_name}-pod"
        owner = {
            "apiVersion": kinds.API_VERSION,
            "kind": "Sandbox",
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        await asyncio.gather(
            objects.patch_object(
                kube,
                resource=objects.POD,
                namespace=namespace,
                name=pod_name,
                body={
                    "metadata": {
                        "ownerReferences": [owner],
                        "labels": {"llmsafespace.dev/sandbox-uid": uid},
                    }
                },
            ),
            objects.create_object(
                kube,
                resource=objects.NETWORK_POLICY,
                namespace=namespace,
                body=_policy_body(name, sandbox_uid=uid),
            ),
        )
        await self._set_running(
            name, pod_name=pod_name, warmPodRef={"name": warm_name, "namespace": namespace}
        )
        return time.monotonic() - started

    async def cold(self, *, ready: cold_bench.Arrivals) -> float:
        """One cold start's required writes; seconds from the Sandbox's create request to
        its Running status written."""
        name = self._next_name("cold")
        kube, namespace = self._kube, self._namespace
        started = time.monotonic()
        uid = await self._create_sandbox(name)
        labels = {"llmsafespace.dev/sandbox-uid": uid, "bench": "floor"}
        await asyncio.gather(
            objects.create_object(
                kube,
                resource=objects.SERVICE_ACCOUNT,
                namespace=namespace,
                body={
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": name},
                    "automountServiceAccountToken": False,
                },
            ),
            objects.create_object(
                kube,
                resource=objects.NETWORK_POLICY,
                namespace=namespace,
                body=_policy_body(name, sandbox_uid=uid),
            ),
        )
        pod = _pod_body(f"{name}-pod")
        pod["metadata"]["labels"] = labels
        pod["spec"]["serviceAccountName"] = name
        await asyncio.gather(
            objects.create_object(kube, resource=objects.POD, namespace=namespace, body=pod),
            objects.create_object(
                kube,
                resource=objects.SERVICE,
                namespace=namespace,
                body={
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name},
                    "spec": {
                        "selector": {"llmsafespace.dev/sandbox-uid": uid},
                        "ports": [{"port": AGENT_PORT, "targetPort": AGENT_PORT}],
                    },
                },
            ),
        )
        await ready.wait(f"{name}-pod")
        await self._set_running(name, pod_name=f"{name}-pod")
        return time.monotonic() - started


async def _watch_ready(kube_api: Any, *, namespace: str, ready: cold_bench.Arrivals) -> None:
    """Every pod labelled ``bench=floor`` whose Ready condition turns True, as it is seen."""
    core = k8s_client.CoreV1Api(kube_api)
    while True:
        watcher = k8s_watch.Watch()
        async for event in watcher.stream(
            core.list_namespaced_pod, namespace, label_selector="bench=floor", timeout_seconds=300
        ):
            pod = event["object"]
            for condition in pod.status.conditions or ():
                if condition.type == "Ready" and condition.status == "True":
                    ready.seen(pod.metadata.name)


async def _cold_phase(
    claims: Claims, *, kube: client.Kube, namespace: str, count: int, kube_api: Any
) -> dict[str, Any]:
    ready = cold_bench.Arrivals()
    watch = asyncio.create_task(_watch_ready(kube_api, namespace=namespace, ready=ready))
    floor: list[float] = []
    cold: list[float] = []
    try:
        for index in range(-1, count):  # the first of each: a warm-up, not counted
            name = f"bare-{index + 1}"
            started = time.monotonic()
            await objects.create_object(
                kube, resource=objects.POD, namespace=namespace, body=_pod_body(name)
            )
            bare = await ready.wait(name) - started
            seconds = await claims.cold(ready=ready)
            if index >= 0:
                floor.append(bare)
                cold.append(seconds)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    floor_summary = cold_bench._summary(floor)
    cold_summary = cold_bench._summary(cold)
    return {
        "floor_bare_pod_create_to_ready": floor_summary,
        "required_writes_cold": cold_summary,
        "ratio_p50": round(cold_summary["p50_ms"] / floor_summary["p50_ms"], 2),
        "samples": {"floor_s": floor, "cold_s": cold},
    }


async def _sustained_phase(claims: Claims, *, count: int, concurrency: int) -> dict[str, Any]:
    """``count`` claims, ``concurrency`` at a time, each beside the refill of one WarmPod:
    claims per second over the whole burst (issue 5: ≥ 100 while the pool refills)."""
    limit = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with limit:
            await asyncio.gather(claims.claim(), claims.refill())

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(count)))
    seconds = time.monotonic() - started
    return {
        "claims": count,
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "claims_per_second": round(count / seconds, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    setup = await cold_bench.open_setup(args.state_dir, prefix="bench-claim-floor")
    kube, namespace = setup.kube, setup.namespace
    runtime = f"{setup.language}:1.0"
    apiserver = processes_module.pid_of(
        "kube-apiserver", state_dir=setup.plat.control_plane.state_dir
    )
    if apiserver is None:
        raise RuntimeError("kube-apiserver is not running")
    claims = Claims(kube, namespace=namespace, runtime=runtime)
    concurrencies: list[int] = args.concurrencies
    await claims.prepare(args.rounds * sum(concurrencies) + args.sustained)
    serial = 0

    async def floor_sample() -> float:
        nonlocal serial
        serial += 1
        return await warm_claim.bare_create_seconds(
            kube, namespace=namespace, name=f"floor-{serial}"
        )

    phases: dict[str, Any] = {}
    for concurrency in concurrencies:
        # One unrecorded batch opens the client's connections (TLS) for both sides.
        await asyncio.gather(*(floor_sample() for _ in range(concurrency)))
        floor: list[float] = []
        claimed: list[float] = []
        floor_cpu = claim_cpu = floor_wall = claim_wall = 0.0
        for _ in range(args.rounds):
            await asyncio.sleep(args.pause_seconds)
            before, started = warm_claim.cpu_seconds(apiserver), time.monotonic()
            floor += await asyncio.gather(*(floor_sample() for _ in range(concurrency)))
            after_floor, floor_wall = (
                warm_claim.cpu_seconds(apiserver),
                floor_wall + time.monotonic() - started,
            )
            await asyncio.sleep(args.pause_seconds)
            before_claims, started = warm_claim.cpu_seconds(apiserver), time.monotonic()
            claimed += await asyncio.gather(*(claims.claim() for _ in range(concurrency)))
            claim_wall += time.monotonic() - started
            floor_cpu += after_floor - before
            claim_cpu += warm_claim.cpu_seconds(apiserver) - before_claims
        floor_summary = cold_bench._summary(floor)
        claim_summary = cold_bench._summary(claimed)
        phases[f"concurrency_{concurrency}"] = {
            "floor": floor_summary,
            "required_writes_claim": claim_summary,
            "ratios": warm_claim._ratios(claim_summary, floor_summary),
            "apiserver_cpu_ms": {
                "per_bare_create": round(floor_cpu * 1000 / len(floor), 2),
                "per_claim": round(claim_cpu * 1000 / len(claimed), 2),
            },
            # While the batches ran (their rounds' wall time): the most such claims the
            # platform completes per second at this concurrency, with nothing else to do.
            "per_second": {
                "bare_creates": round(len(floor) / floor_wall, 1),
                "claims": round(len(claimed) / claim_wall, 1),
            },
            "samples": {"floor_s": floor, "claim_s": claimed},
        }
    sustained = None
    if args.sustained > 0:
        await asyncio.sleep(args.pause_seconds)
        sustained = await _sustained_phase(claims, count=args.sustained, concurrency=50)
    cold = None
    if args.cold_count > 0:
        cold = await _cold_phase(
            claims, kube=kube, namespace=namespace, count=args.cold_count, kube_api=setup.kube_api
        )
    await setup.kube_api.close()
    return {
        "measured_at": datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform_info.python_version()},
        "rounds": args.rounds,
        "phases": phases,
        "sustained_with_refill": sustained,
        "cold": cold,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default="/tmp/lss-bench")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--concurrencies",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1, 10, 50],
        help="comma-separated concurrencies, each measured for --rounds rounds",
    )
    parser.add_argument(
        "--cold-count", type=int, default=50, help="cold starts, one at a time (0: none)"
    )
    parser.add_argument(
        "--sustained",
        type=int,
        default=300,
        help="claims at 50 concurrent, each beside a WarmPod's refill (0: none)",
    )
    parser.add_argument(
        "--pause-seconds",
        type=float,
        default=0.5,
        help="quiet time before each batch (the previous batch's watch events settle)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("/tmp/claim-floor.json"))
    args = parser.parse_args()
    results = asyncio.run(run(args))
    out: pathlib.Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    phases = {
        **results["phases"],
        "sustained_with_refill": results["sustained_with_refill"] or {},
        "cold": results["cold"] or {},
    }
    summary = {
        name: {key: value for key, value in phase.items() if key != "samples"}
        for name, phase in phases.items()
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
