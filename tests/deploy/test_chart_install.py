"""The Helm chart installed by the pinned helm on a fresh cluster of its own (a second local
control plane: the chart's cluster-wide objects must not meet the shared platform's), then
the whole system run from what the chart rendered.

The install runs its hooks: kwok completes the topology Jobs' pods, so that the Jobs' and the
Deployments' pods are admitted in a namespace enforcing Pod Security ``restricted`` is what
the cluster shows. kwok runs no containers, so each Job's and Deployment's container is then
run here as a process with exactly the environment the chart gave it (Secret references
resolved from the cluster's Secret) and the token of the ServiceAccount the chart made:
the Jobs declare the NATS topology as ``setup`` on a nats-server running
``deploy/nats/authorization.conf``, the services run as their own NATS users, and the
sample objects (``deploy/samples``) give a sandbox started warm. Then an upgrade and the
uninstall, which leaves no cluster-wide object behind.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lss_dev import (
    controlplane,
    fixtures_nats,
    helm,
    identities,
    paths,
    processes,
    prometheus_rules,
    services,
)
from lss_dev import platform as platform_mod

pytestmark = pytest.mark.integration

NAMESPACE = "llmsafespace-system"
SECRET = "nats-users"
COMPONENTS = ("watcher", "sandbox-reconciler", "pool-manager")
SAMPLES = paths.repo_root() / "deploy" / "samples"
SAMPLES_NAMESPACE = "llmsafespace-samples"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    """A control plane of this module's own, with two kwok nodes."""
    state = Path(tmp_path_factory.mktemp("chart", numbered=True))
    cp = platform_mod.Platform(state, nodes=2).control_plane
    try:
        cp.start(nodes=2)
        yield cp
    finally:
        for component in COMPONENTS:
            processes.stop(f"svc-{component}", state_dir=cp.state_dir)
        cp.stop()
        shutil.rmtree(state / "etcd", ignore_errors=True)


def _wait(
    check: Callable[[], bool],
    *,
    what: str,
    log: Callable[[], str] = lambda: "",
    timeout_seconds: float = 120,
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log()}")
        time.sleep(0.25)


def _get(cp: controlplane.ControlPlane, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cp.kubectl("get", "-o", "json", *args))
    return found


def _resolve(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet would give it."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def _secret_data(cp: controlplane.ControlPlane, name: str) -> dict[str, str]:
    data = _get(cp, "secret", name, f"--namespace={NAMESPACE}")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _module(workload: dict[str, Any]) -> str:
    component = str(workload["metadata"]["labels"]["app.kubernetes.io/component"])
    return "lss_" + component.replace("-", "_")


def _manifest_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _helm(cp: controlplane.ControlPlane, *args: str, values: dict[str, Any] | None = None) -> str:
    done = helm.run(*args, values=values, kubeconfig=cp.kubeconfig)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_chart_installs_on_a_fresh_cluster_and_the_system_runs_from_what_it_rendered(
    cluster: controlplane.ControlPlane,
    secured_nats: fixtures_nats.SecuredNats,
) -> None:
    cp = cluster
    # What operations.md asks for first: the namespace (restricted) and the NATS Secret.
    cp.kubectl("apply", "-f", str(paths.repo_root() / "deploy" / "rbac" / "namespace.yaml"))
    literals = [
        f"--from-literal={user}-password={secured_nats.passwords[user]}"
        for user in ("watcher", "sandbox-reconciler", "pool-manager", "setup")
    ]
    cp.kubectl("create", "secret", "generic", SECRET, f"--namespace={NAMESPACE}", *literals)
    values = {"nats": {"url": secured_nats.url, "auth": {"existingSecret": SECRET}}}
    _helm(
        cp,
        "install",
        helm.RELEASE,
        str(helm.chart_dir()),
        f"--namespace={NAMESPACE}",
        "--wait",
        "--timeout=180s",
        values=values,
    )

    # Every pod admitted under restricted: the Deployments are available, the hooks ran.
    for component in COMPONENTS:
        deployment = _get(cp, "deployment", f"llmsafespace-{component}", f"--namespace={NAMESPACE}")
        assert deployment["status"].get("availableReplicas") == 2, deployment["status"]
    events = _get(cp, "events", f"--namespace={NAMESPACE}")["items"]
    refused = [e["message"] for e in events if e.get("reason") == "FailedCreate"]
    assert refused == []
    hooks = _manifest_docs(_helm(cp, "get", "hooks", helm.RELEASE, f"--namespace={NAMESPACE}"))
    jobs = [d for d in hooks if d["kind"] == "Job"]
    assert len(jobs) == 3
    manifest = _manifest_docs(
        _helm(cp, "get", "manifest", helm.RELEASE, f"--namespace={NAMESPACE}")
    )
    deployments = [d for d in manifest if d["kind"] == "Deployment"]
    assert len(deployments) == 3
    secrets = {SECRET: _secret_data(cp, SECRET)}

    # The topology Jobs' containers: no Kubernetes credentials at all, NATS user "setup".
    for job in jobs:
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {**_resolve(container, secrets), "KUBECONFIG": str(cp.state_dir / "missing")}
        _run_container(_module(job), container["args"], env=env)

    # The Deployments' containers, each with its chart-made account's token.
    ports: dict[str, int] = {}
    for deployment in deployments:
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        config = identities.account_kubeconfig(
            cp,
            pod["serviceAccountName"],
            namespace=NAMESPACE,
            path=cp.state_dir / "identities" / f"{component}.kubeconfig",
        )
        ports[component] = controlplane.free_port()
        env = {
            **_resolve(container, secrets),
            # In a pod: the in-cluster account and 0.0.0.0:8081.
            "KUBECONFIG": str(config),
            "LSS_HTTP__HOST": "127.0.0.1",
            "LSS_HTTP__PORT": str(ports[component]),
        }
        processes.start(
            f"svc-{component}",
            [sys.executable, "-m", _module(deployment), *container.get("args", [])],
            state_dir=cp.state_dir,
            env=env,
        )
    for component, port in ports.items():
        url = f"http://127.0.0.1:{port}/readyz"
        name = f"svc-{component}"
        _wait(
            functools.partial(services.is_ready, url),
            what=f"{component} ready",
            log=functools.partial(processes.tail, name, state_dir=cp.state_dir),
        )

    # The samples: a pool fills, then the sample sandbox starts on one of its pods.
    for name in ("00-namespace", "10-runtimeenvironment", "20-sandboxprofile", "30-warmpool"):
        cp.kubectl("apply", "-f", str(SAMPLES / f"{name}.yaml"))

    def pool_ready() -> bool:
        pool = _get(cp, "warmpool", "python-data", f"--namespace={SAMPLES_NAMESPACE}")
        return int(pool.get("status", {}).get("availablePods", 0)) >= 1

    _wait(pool_ready, what="the sample pool has a Ready pod")
    cp.kubectl("apply", "-f", str(SAMPLES / "40-sandbox.yaml"))

    def running() -> bool:
        box = _get(cp, "sandbox", "hello", f"--namespace={SAMPLES_NAMESPACE}")
        return bool(box.get("status", {}).get("phase") == "Running")

    _wait(running, what="the sample sandbox Running")
    box = _get(cp, "sandbox", "hello", f"--namespace={SAMPLES_NAMESPACE}")
    assert box["status"].get("warmPodRef"), box["status"]
    pod = _get(cp, "pod", box["status"]["podName"], f"--namespace={SAMPLES_NAMESPACE}")
    (owner,) = [o for o in pod["metadata"]["ownerReferences"] if o.get("controller")]
    assert (owner["kind"], owner["name"]) == ("Sandbox", "hello")
    # Every metric the alert rules select is one the services export.
    exported: set[str] = set()
    for port in ports.values():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            exposition = resp.read().decode()
        exported |= {
            line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")
        }
    for rule, metrics in prometheus_rules.selected_metrics(prometheus_rules.alerts_file()).items():
        # A counter's TYPE line names it without its _total sample suffix.
        missing = [
            m for m in metrics if m not in exported and m.removesuffix("_total") not in exported
        ]
        assert missing == [], rule
    violations = [
        line
        for line in secured_nats.log_file.read_text().splitlines()
        if "Permissions Violation" in line
    ]
    assert violations == []
    for component in COMPONENTS:
        processes.stop(f"svc-{component}", state_dir=cp.state_dir)

    # An upgrade (its hooks run again) that changes a component's replicas and settings.
    upgraded = {**values, "sandboxReconciler": {"replicas": 1}, "env": {"LSS_LOG__LEVEL": "DEBUG"}}
    _helm(
        cp,
        "upgrade",
        helm.RELEASE,
        str(helm.chart_dir()),
        f"--namespace={NAMESPACE}",
        "--wait",
        "--timeout=180s",
        values=upgraded,
    )
    reconciler = _get(
        cp, "deployment", "llmsafespace-sandbox-reconciler", f"--namespace={NAMESPACE}"
    )
    assert reconciler["spec"]["replicas"] == 1
    (container,) = reconciler["spec"]["template"]["spec"]["containers"]
    assert {"name": "LSS_LOG__LEVEL", "value": "DEBUG"} in container["env"]
    budgets = _get(cp, "poddisruptionbudgets", f"--namespace={NAMESPACE}")["items"]
    assert sorted(b["metadata"]["name"] for b in budgets) == [
        "llmsafespace-pool-manager",
        "llmsafespace-watcher",
    ]

    # The uninstall leaves no cluster-wide object of the chart (CRDs stay: Helm's policy).
    _helm(cp, "uninstall", helm.RELEASE, f"--namespace={NAMESPACE}", "--wait")
    selector = "--selector=app.kubernetes.io/part-of=llmsafespace"
    for kind in (
        "clusterroles",
        "clusterrolebindings",
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ):
        assert _get(cp, kind, selector)["items"] == [], kind
    for kind in ("deployments", "serviceaccounts", "services", "networkpolicies", "jobs"):
        left = _get(cp, kind, f"--namespace={NAMESPACE}", selector)["items"]
        assert left == [], kind
    assert _get(cp, "crd", "sandboxes.llmsafespace.dev")["metadata"]["name"]


def _run_container(module: str, args: list[str], *, env: dict[str, str]) -> None:
    """The container's command, with its environment and none of the test's LSS_ settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LSS_")}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (module, done.stdout[-3000:], done.stderr[-3000:])
