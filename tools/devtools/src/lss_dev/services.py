"""Running the service packages of the workspace as local daemons (``dev up --services``).

A service is started when its package is installed (``python -m lss_<service>``); services
that do not exist yet are skipped, so ``--services`` grows as the services are built. Each
runs as its own ServiceAccount with the RBAC of ``deploy/rbac`` (``lss_dev.identities``),
never as the platform's administrator.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from lss_dev import identities, platform, processes

SERVICES = ("watcher", "sandbox_reconciler", "pool_manager", "recycler", "validator")


def _installed(service: str) -> bool:
    return importlib.util.find_spec(f"lss_{service}") is not None


def start_all(
    plat: platform.Platform,
    *,
    timeout_seconds: float = 60,
    environment: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Start the installed services; the watcher last. ``environment``: more variables per
    service (``"watcher"``, ...), over the defaults (another NATS with its users, say).

    Not needed for correctness: LSS_EVENTS keeps a hint only for consumers that exist when it
    is published, but a service that creates its durable consumer after the watcher has
    announced the initial state asks the watchers for a resync round
    (``lss_common.bus.resync_requests``), as pods starting in any order do in a cluster. With
    the consumers first, the watcher's initial lists reach them directly and no extra round
    is published.
    """
    installed = [s for s in SERVICES if _installed(s)]
    if installed:
        identities.apply_rbac(plat.control_plane)
    extra = environment or {}
    consumers = [s for s in installed if s != "watcher"]
    for service in consumers:
        _start(plat, service, extra=extra.get(service, {}))
    _wait_ready(plat, consumers, timeout_seconds=timeout_seconds)
    if "watcher" in installed:
        _start(plat, "watcher", extra=extra.get("watcher", {}))
        _wait_ready(plat, ["watcher"], timeout_seconds=timeout_seconds)
    return installed


def _start(plat: platform.Platform, service: str, *, extra: Mapping[str, str]) -> None:
    name = f"svc-{service}"
    if processes.pid_of(name, state_dir=plat.state_dir) is not None:
        return
    # Each service as its own ServiceAccount, with the RBAC a cluster install gives it.
    kubeconfig = str(identities.kubeconfig_for(plat.control_plane, service))
    env = {
        "KUBECONFIG": kubeconfig,
        "LSS_KUBE__KUBECONFIG": kubeconfig,
        "LSS_NATS__URL": plat.nats_url,
        "LSS_HTTP__HOST": "127.0.0.1",
        "LSS_HTTP__PORT": str(plat.port(f"svc-{service}")),
        "LSS_SERVICE_NAME": service.replace("_", "-"),
        # As in the images (deploy/docker/service.Dockerfile): big buffers go back to the OS.
        "MALLOC_MMAP_THRESHOLD_": "131072",
        **extra,
    }
    processes.start(
        name, [sys.executable, "-m", f"lss_{service}"], state_dir=plat.state_dir, env=env
    )


def _wait_ready(plat: platform.Platform, services: list[str], *, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    for service in services:
        url = f"http://127.0.0.1:{plat.port(f'svc-{service}')}/readyz"
        while not is_ready(url):
            if processes.pid_of(f"svc-{service}", state_dir=plat.state_dir) is None:
                raise RuntimeError(
                    f"{service} exited; its log ends with:\n"
                    + processes.tail(f"svc-{service}", state_dir=plat.state_dir)
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} not ready after {timeout_seconds:.0f}s ({url})")
            time.sleep(0.1)


def is_ready(url: str) -> bool:
    """Whether a service's ``/readyz`` at ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop_all(plat: platform.Platform) -> None:
    for service in reversed(SERVICES):
        processes.stop(f"svc-{service}", state_dir=plat.state_dir)


def running(plat: platform.Platform) -> dict[str, int | None]:
    return {
        s: processes.pid_of(f"svc-{s}", state_dir=plat.state_dir) for s in SERVICES if _installed(s)
    }
