"""The README's product path, end to end: every service as its own process (as
``llmsafespace dev up --services`` starts them) on the real platform, the samples applied,
the sample Sandbox Running on a warm pod, and a clean deletion.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from lss_common.testing import eventually
from lss_dev import paths, processes, services
from lss_dev import platform as platform_mod

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NS = "llmsafespace-samples"


@pytest.fixture
def running_services(platform: platform_mod.Platform) -> Iterator[list[str]]:
    try:
        yield services.start_all(platform)
    finally:
        services.stop_all(platform)


def _diagnosis(platform: platform_mod.Platform, running: list[str]) -> str:
    """What the objects and the services' logs say, for a failure's report."""
    cp = platform.control_plane
    parts = [
        cp.kubectl("get", "sandboxes,warmpools,warmpods,pods", "-n", NS, "-o", "yaml", check=False)
    ]
    for service in running:
        log = processes.tail(f"svc-{service}", state_dir=platform.state_dir, lines=60)
        parts.append(f"--- {service} log (last 60 lines) ---\n{log}")
    return "\n".join(parts)


def _get(platform: platform_mod.Platform, *args: str) -> dict[str, object]:
    out = platform.control_plane.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out) if out else {}


async def test_samples_run_and_clean_up(
    platform: platform_mod.Platform, running_services: list[str]
) -> None:
    assert {"watcher", "sandbox_reconciler", "pool_manager"} <= set(running_services)
    cp = platform.control_plane
    for path in sorted(paths.samples_dir().glob("*.yaml")):
        cp.kubectl("apply", "--server-side", "-f", str(path))

    def hello_running() -> dict[str, object] | None:
        status = _get(platform, "sandbox", "hello", "-n", NS).get("status") or {}
        assert isinstance(status, dict)
        return status if status.get("phase") == "Running" else None

    try:
        status = await eventually.eventually(
            hello_running, timeout_seconds=60, describe="sample sandbox Running"
        )
    except eventually.EventuallyTimeout as error:
        raise AssertionError(f"{error}\n{_diagnosis(platform, running_services)}") from None
    # Started warm (the sample pool matches it) it keeps the Service its pod was prepared
    # with; started cold it has its own.
    service = f"warm-{status['podName']}" if status.get("warmPodRef") else "sandbox-hello"
    assert status["endpoint"] == f"{service}.{NS}.svc.cluster.local"
    for kind, name in (("pod", str(status["podName"])), ("service", service)):
        metadata = _get(platform, kind, name, "-n", NS)["metadata"]
        assert isinstance(metadata, dict)
        controllers = [o for o in metadata["ownerReferences"] if o.get("controller")]
        assert [(o["kind"], o["name"]) for o in controllers] == [("Sandbox", "hello")], kind

    cp.kubectl("delete", "sandbox", "hello", "-n", NS, "--wait=false")

    def hello_gone() -> bool:
        return not _get(platform, "sandbox", "hello", "-n", NS)

    await eventually.eventually(hello_gone, timeout_seconds=60, describe="sandbox deleted")
    cp.kubectl("delete", "warmpool", "python-data", "-n", NS, "--wait=false")

    def pool_empty() -> bool:
        pods = _get(platform, "pods", "-n", NS, "-l", "app=llmsafespace")
        services = _get(platform, "services", "-n", NS, "-l", "app=llmsafespace")
        return (
            not _get(platform, "warmpool", "python-data", "-n", NS)
            and pods.get("items") == []
            and services.get("items") == []
        )

    await eventually.eventually(
        pool_empty, timeout_seconds=60, describe="pool, pods and Services gone"
    )
