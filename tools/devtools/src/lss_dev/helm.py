"""Helm for the chart in ``deploy/helm/llmsafespace``, built from its pinned module
(``tools/platform/helm``) like the rest of the local platform.

Helm's own state (repositories, cache, plugins) stays under the platform cache, never in the
user's ``~/.config/helm``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lss_dev import build, paths

RELEASE = "llmsafespace"


def chart_dir() -> Path:
    return paths.repo_root() / "deploy" / "helm" / "llmsafespace"


def binary() -> Path:
    return build.ensure(build.HELM)["helm"]


def kube_version() -> str:
    """The local platform's Kubernetes version: what ``helm template`` renders for."""
    return build.KUBERNETES.version_of("k8s.io/kubernetes")


def _environment(kubeconfig: Path | None) -> dict[str, str]:
    home = paths.cache_dir() / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def run(
    *args: str,
    values: Mapping[str, Any] | None = None,
    kubeconfig: Path | None = None,
    timeout_seconds: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``helm <args>``, with ``values`` given on stdin (``--values -``); never raises on a
    failed command (the caller reads ``returncode`` and ``stderr``)."""
    argv = [str(binary()), *args]
    if values is not None:
        argv += ["--values", "-"]
    return subprocess.run(
        argv,
        input=yaml.safe_dump(dict(values)) if values is not None else None,
        capture_output=True,
        text=True,
        env=_environment(kubeconfig),
        timeout=timeout_seconds,
        check=False,
    )


def render(
    values: Mapping[str, Any], *, namespace: str, release: str = RELEASE
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart for ``values`` (hooks included), for this platform's
    Kubernetes version; the caller reads ``returncode``, ``stdout`` and ``stderr``."""
    return run(
        "template",
        release,
        str(chart_dir()),
        f"--namespace={namespace}",
        f"--kube-version={kube_version()}",
        values=values,
    )


def template(
    values: Mapping[str, Any], *, namespace: str, release: str = RELEASE
) -> list[dict[str, Any]]:
    """The chart's objects for ``values`` (hooks included); raises with helm's message."""
    done = render(values, namespace=namespace, release=release)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]
