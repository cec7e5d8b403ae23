"""The README's "run the product" path: ``llmsafespace dev up --samples`` on a running platform.

It must be idempotent (the platform is already up), apply every sample and print them in
``kubectl get llmsafespace`` form, then the environment lines.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from lss_dev import paths
from lss_dev import platform as platform_mod

pytestmark = pytest.mark.integration


def _cli(platform: platform_mod.Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lss_dev.cli", "dev", "--state-dir", str(platform.state_dir), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_up_with_samples_applies_and_lists_them(platform: platform_mod.Platform) -> None:
    proc = _cli(platform, "up", "--samples")
    assert proc.returncode == 0, proc.stderr
    for kind_and_name in (
        "runtimeenvironment.llmsafespace.dev/python-3.11",
        "sandboxprofile.llmsafespace.dev/python-data",
        "warmpool.llmsafespace.dev/python-data",
        "sandbox.llmsafespace.dev/hello",
    ):
        assert kind_and_name in proc.stdout
    assert f"export KUBECONFIG={platform.kubeconfig}" in proc.stdout
    assert f"export NATS_URL={platform.nats_url}" in proc.stdout
    platform.control_plane.kubectl("delete", "-f", str(paths.samples_dir()))


def test_env_prints_the_lines_to_use(platform: platform_mod.Platform) -> None:
    proc = _cli(platform, "env")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        f"export KUBECONFIG={platform.kubeconfig}",
        f"export NATS_URL={platform.nats_url}",
    ]


def test_unknown_state_dir_reports_not_up(tmp_path: pathlib.Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lss_dev.cli", "dev", "--state-dir", str(tmp_path), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    assert '"nats_reachable": false' in proc.stdout
