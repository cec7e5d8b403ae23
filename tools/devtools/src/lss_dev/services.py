"""Running the service packages of the workspace as local daemons (``dev up --services``).

A service is started when its package is installed (``python -m lss_<service>``); services
that do not exist yet are skipped, so ``--services`` grows as the services are built.
"""

from __future__ import annotations

import importlib.util
import sys

from lss_dev import platform, processes

SERVICES = ("watcher", "sandbox_reconciler", "pool_manager", "recycler", "validator")


def _installed(service: str) -> bool:
    return importlib.util.find_spec(f"lss_{service}") is not None


def start_all(plat: platform.Platform) -> list[str]:
    started = []
    for index, service in enumerate(SERVICES):
        if not _installed(service):
            continue
        name = f"svc-{service}"
        if processes.pid_of(name, state_dir=plat.state_dir) is None:
            env = {
                "KUBECONFIG": str(plat.kubeconfig),
                "LSS_KUBE__KUBECONFIG": str(plat.kubeconfig),
                "LSS_NATS__URL": plat.nats_url,
                "LSS_HTTP__PORT": str(18081 + index),
                "LSS_SERVICE_NAME": service.replace("_", "-"),
            }
            processes.start(
                name, [sys.executable, "-m", f"lss_{service}"], state_dir=plat.state_dir, env=env
            )
        started.append(service)
    return started


def stop_all(plat: platform.Platform) -> None:
    for service in reversed(SERVICES):
        processes.stop(f"svc-{service}", state_dir=plat.state_dir)


def running(plat: platform.Platform) -> dict[str, int | None]:
    return {
        s: processes.pid_of(f"svc-{s}", state_dir=plat.state_dir) for s in SERVICES if _installed(s)
    }
