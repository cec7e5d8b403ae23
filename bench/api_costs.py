"""What one API request of each kind costs the API server in CPU, on this platform.

The warm claim's latency under concurrency follows the API server's CPU per claim (on two
cores it is the bottleneck from ten concurrent claims on), so which requests are expensive
decides what is worth removing. Each kind is run ``--count`` times, ``--concurrency`` at a
time, on a quiet platform; the API server's CPU time (``/proc/<pid>/stat``) over the run,
divided by the count, is the cost. It includes what the request makes others do on the API
server (watch events to every watcher: kwok, the scheduler, the controller manager), not the
other processes' own CPU::

    uv run python bench/api_costs.py --state-dir /tmp/lss-bench [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import sandbox_cold_create as cold_bench
import warmpods

from lss_common import errors
from lss_common.kube import objects
from lss_common.models import kinds
from lss_dev import processes

Op = Callable[[int], Awaitable[Any]]


def _cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(pid: int, op: Op, *, count: int, concurrency: int) -> float:
    """ms of API server CPU per call of ``op`` (its indexes 0..count-1)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with limit:
            await op(index)

    await asyncio.sleep(1.0)  # let what came before settle
    before = _cpu_seconds(pid)
    await asyncio.gather(*(one(i) for i in range(count)))
    return round(1000 * (_cpu_seconds(pid) - before) / count, 2)


def _sandbox(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": "Sandbox",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"runtime": "python:1.0"},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    setup = await cold_bench.open_setup(args.state_dir, prefix="costs")
    kube, namespace = setup.kube, setup.namespace
    pid = processes.pid_of("kube-apiserver", state_dir=pathlib.Path(args.state_dir))
    if pid is None:
        raise RuntimeError("the API server is not running")
    n, c = args.count, args.concurrency
    costs: dict[str, float] = {}

    async def measure(label: str, op: Op) -> None:
        costs[label] = await _measure(pid, op, count=n, concurrency=c)
        print(f"{label}: {costs[label]} ms", flush=True)

    def cm(i: int) -> dict[str, Any]:
        return {"metadata": {"name": f"cm-{i}", "namespace": namespace}, "data": {"k": "v"}}

    await measure(
        "create configmap",
        lambda i: objects.create_object(
            kube, resource=objects.CONFIG_MAP, namespace=namespace, body=cm(i)
        ),
    )
    await measure(
        "get configmap (etcd)",
        lambda i: objects.get_object(
            kube, resource=objects.CONFIG_MAP, namespace=namespace, name=f"cm-{i}"
        ),
    )
    await measure(
        "list runtimeenvironments (watch cache)",
        lambda i: objects.list_objects(
            kube, resource=objects.RUNTIME_ENVIRONMENT, any_version=True
        ),
    )
    await measure(
        "create sandbox",
        lambda i: objects.create_object(
            kube, resource=objects.SANDBOX, namespace=namespace, body=_sandbox(f"sb-{i}", namespace)
        ),
    )
    await measure(
        "get sandbox (etcd)",
        lambda i: objects.get_object(
            kube, resource=objects.SANDBOX, namespace=namespace, name=f"sb-{i}"
        ),
    )
    await measure(
        "patch sandbox finalizer",
        lambda i: objects.patch_object(
            kube,
            resource=objects.SANDBOX,
            namespace=namespace,
            name=f"sb-{i}",
            body={"metadata": {"finalizers": [kinds.FINALIZER]}},
        ),
    )
    await measure(
        "patch sandbox status",
        lambda i: objects.patch_object(
            kube,
            resource=objects.SANDBOX,
            namespace=namespace,
            name=f"sb-{i}",
            subresource="status",
            body={"status": {"phase": "Running", "podName": f"pod-{i}"}},
        ),
    )
    await measure(
        "create pod (+ scheduler, kwok: bind, status)",
        lambda i: objects.create_object(
            kube, resource=objects.POD, namespace=namespace, body=cold_bench._bare_pod(f"p-{i}")
        ),
    )
    await asyncio.sleep(5)  # every pod Running
    await measure(
        "get pod (etcd)",
        lambda i: objects.get_object(
            kube, resource=objects.POD, namespace=namespace, name=f"p-{i}"
        ),
    )
    await measure(
        "get pod (watch cache)",
        lambda i: objects.get_object(
            kube, resource=objects.POD, namespace=namespace, name=f"p-{i}", not_older_than="1"
        ),
    )
    await measure(
        "patch pod labels",
        lambda i: objects.patch_object(
            kube,
            resource=objects.POD,
            namespace=namespace,
            name=f"p-{i}",
            body={"metadata": {"labels": {"adopted": "yes"}}},
        ),
    )

    def service(i: int) -> dict[str, Any]:
        return {
            "metadata": {"name": f"s-{i}", "namespace": namespace},
            "spec": {"selector": {"x": str(i)}, "ports": [{"port": 8080}]},
        }

    await measure(
        "create service (+ ClusterIP, endpoints)",
        lambda i: objects.create_object(
            kube, resource=objects.SERVICE, namespace=namespace, body=service(i)
        ),
    )
    await measure(
        "patch service labels (+ endpoints rewritten)",
        lambda i: objects.patch_object(
            kube,
            resource=objects.SERVICE,
            namespace=namespace,
            name=f"s-{i}",
            body={"metadata": {"labels": {"adopted": "yes"}}},
        ),
    )
    await measure(
        "patch service annotation",
        lambda i: objects.patch_object(
            kube,
            resource=objects.SERVICE,
            namespace=namespace,
            name=f"s-{i}",
            body={"metadata": {"annotations": {"adopted": "yes"}}},
        ),
    )

    def policy(i: int) -> dict[str, Any]:
        return {
            "metadata": {"name": f"np-{i}", "namespace": namespace},
            "spec": {"podSelector": {"matchLabels": {"x": str(i)}}, "policyTypes": ["Ingress"]},
        }

    await measure(
        "create networkpolicy",
        lambda i: objects.create_object(
            kube, resource=objects.NETWORK_POLICY, namespace=namespace, body=policy(i)
        ),
    )

    async def delete_pod(i: int) -> None:
        with contextlib.suppress(errors.NotFoundError):
            await objects.delete_object(
                kube, resource=objects.POD, namespace=namespace, name=f"p-{i}"
            )

    await measure("delete pod (+ kwok's final delete)", delete_pod)
    await asyncio.sleep(5)
    await warmpods.delete_namespace(kube, namespace)
    await setup.kube_api.close()
    return {"count": n, "concurrency": c, "api_server_cpu_ms_per_request": costs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default="/tmp/lss-bench")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    text = json.dumps(results, indent=2) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
