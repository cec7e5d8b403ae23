"""The API server's optional diagnostics: off unless asked for, and well-formed when on."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from lss_dev import controlplane, paths


def plane(state_dir: pathlib.Path) -> controlplane.ControlPlane:
    return controlplane.ControlPlane(
        state_dir=state_dir,
        binaries={"kube-apiserver": pathlib.Path("/bin/kube-apiserver")},
        etcd_port=1,
        etcd_peer_port=2,
        apiserver_port=3,
        kwok_port=4,
    )


def test_no_audit_log_unless_asked(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(controlplane.AUDIT_ENV, raising=False)
    argv = plane(tmp_path)._argv("kube-apiserver")
    assert not [arg for arg in argv if arg.startswith("--audit")]
    assert not (tmp_path / "audit-policy.yaml").exists()
    assert "--profiling=false" in argv


def test_audit_log_at_metadata_level_when_asked(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(controlplane.AUDIT_ENV, "1")
    argv = plane(tmp_path)._argv("kube-apiserver")
    flags = dict(arg.split("=", 1) for arg in argv if arg.startswith("--audit"))
    assert flags["--audit-log-path"] == str(tmp_path / controlplane.AUDIT_LOG)
    assert flags["--audit-log-format"] == "json"
    policy = yaml.safe_load(pathlib.Path(flags["--audit-policy-file"]).read_text())
    assert policy["kind"] == "Policy"
    assert policy["rules"] == [{"level": "Metadata"}]
    assert policy["omitStages"] == ["RequestReceived"]


def test_each_crd_is_waited_for_through_its_watch_cache() -> None:
    crds = sorted(str(p) for p in paths.crds_dir().glob("*.yaml"))
    found = controlplane._crd_cache_paths(crds)
    assert len(found) == len(crds) == 5
    assert "/apis/llmsafespace.dev/v1/sandboxes?resourceVersion=0&limit=1" in found
    assert all(path.endswith("?resourceVersion=0&limit=1") for path in found)
