"""Builds the local platform's binaries from pinned Go modules, once per content key.

Four modules under ``tools/platform``: ``kubernetes`` (kube-apiserver,
kube-controller-manager, kube-scheduler, kubectl and etcd from k8s.io/kubernetes and
go.etcd.io/etcd at the versions in its go.mod), ``kwok`` (kwok, kwokctl), ``helm`` (which
renders and installs the chart in deploy/helm) and ``promrules`` (which loads the alert rules
in deploy/prometheus as Prometheus does). The cache key hashes go.mod, go.sum, the module's own
Go files, the build flags and the Go version, so editing a pin or a command rebuilds and
nothing else does. Progress is shown as the
count of compiled packages against ``go list -deps``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lss_dev import paths


@dataclass(frozen=True)
class GoModule:
    """One pinned Go module and the commands built from it (import path → binary name)."""

    name: str
    commands: dict[str, str]
    ldflags: str = "-s -w"

    @property
    def directory(self) -> Path:
        return paths.repo_root() / "tools" / "platform" / self.name

    def version_of(self, module: str) -> str:
        text = (self.directory / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
        if not match:
            raise RuntimeError(f"{module} is not required by {self.directory / 'go.mod'}")
        return match.group(1)


def _kubernetes_ldflags() -> str:
    version = KUBERNETES.version_of("k8s.io/kubernetes")
    major, minor = version.lstrip("v").split(".")[:2]
    stamp = []
    # Without a stamped version the apiserver reports v0.0.0-master and clients warn on skew.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        stamp += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return "-s -w " + " ".join(stamp)


KUBERNETES = GoModule(
    name="kubernetes",
    commands={
        "k8s.io/kubernetes/cmd/kube-apiserver": "kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager": "kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-scheduler": "kube-scheduler",
        "k8s.io/kubernetes/cmd/kubectl": "kubectl",
        "go.etcd.io/etcd/server/v3": "etcd",
    },
)
KWOK = GoModule(
    name="kwok",
    commands={"sigs.k8s.io/kwok/cmd/kwok": "kwok", "sigs.k8s.io/kwok/cmd/kwokctl": "kwokctl"},
)
HELM = GoModule(name="helm", commands={"helm.sh/helm/v3/cmd/helm": "helm"})
PROMRULES = GoModule(
    name="promrules",
    commands={"github.com/llmsafespace/llmsafespace/tools/platform/promrules": "promrules"},
)
#: What the local platform runs (``./lss up``, the test fixtures).
PLATFORM_MODULES = (KUBERNETES, KWOK)
#: Everything, the tools the tests use included (``llmsafespace dev build``).
MODULES = (*PLATFORM_MODULES, HELM, PROMRULES)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain is needed to build the local platform (go not found)")
    return go


def _helm_ldflags() -> str:
    # Unstamped, helm calls itself v3.x+unreleased; charts' version checks read this one.
    version = HELM.version_of("helm.sh/helm/v3")
    return f"-s -w -X helm.sh/helm/v3/internal/version.version={version}"


def _ldflags(module: GoModule) -> str:
    if module is KUBERNETES:
        return _kubernetes_ldflags()
    if module is HELM:
        return _helm_ldflags()
    return module.ldflags


def cache_key(module: GoModule) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((module.directory / name).read_bytes())
    # A command of the module's own (promrules) is source too; tools.go only records pins.
    for path in sorted(module.directory.glob("*.go")):
        if path.name != "tools.go":
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    digest.update(_ldflags(module).encode())
    go_version = subprocess.run(
        [_go(), "env", "GOVERSION"], capture_output=True, text=True, check=True
    ).stdout.strip()
    digest.update(go_version.encode())
    return digest.hexdigest()[:12]


def bin_dir(module: GoModule) -> Path:
    return paths.cache_dir() / "platform" / f"{module.name}-{cache_key(module)}" / "bin"


def _is_complete(directory: Path, module: GoModule) -> bool:
    return all((directory / binary).is_file() for binary in module.commands.values())


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # go.sum is committed: a build must not rewrite it or reach for newer versions.
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=readonly").strip()
    return env


def _count_packages(module: GoModule) -> int:
    out = subprocess.run(
        [_go(), "list", "-deps", *module.commands],
        cwd=module.directory,
        capture_output=True,
        text=True,
        env=_go_env(),
        check=True,
    ).stdout
    return len(out.split())


def build(module: GoModule, *, out: Path, log: Path | None = None) -> None:
    """Build every command of ``module`` into ``out``, printing progress on stderr."""
    total = _count_packages(module)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    print(
        f"building {module.name} ({', '.join(module.commands.values())}): "
        f"{total} packages, cached ones are skipped",
        file=sys.stderr,
        flush=True,
    )
    # One go build for all commands lets them share compiled packages; -v names each
    # package as it is compiled, which is the progress we count.
    cmd = [_go(), "build", "-v", "-trimpath", "-ldflags", _ldflags(module), "-o", f"{tmp}/"]
    proc = subprocess.Popen(
        [*cmd, *module.commands],
        cwd=module.directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_go_env(),
    )
    assert proc.stdout is not None
    last_print = 0.0
    tail: list[str] = []
    log_file = log.open("a") if log else None
    for done, line in enumerate(proc.stdout, start=1):
        if log_file:
            log_file.write(line)
        tail = ([*tail, line.rstrip()])[-40:]
        done += 1
        now = time.monotonic()
        if now - last_print >= 5:
            last_print = now
            pct = min(99, int(100 * done / max(total, 1)))
            print(
                f"  {module.name}: {done}/{total} packages compiled ({pct}%), {now - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    if log_file:
        log_file.close()
    if proc.wait() != 0:
        raise RuntimeError(f"go build of {module.name} failed:\n" + "\n".join(tail))
    # go build names a module-root main package after its path (etcd's is ".../server/v3").
    for import_path, binary in module.commands.items():
        default_name = import_path.rstrip("/").split("/")[-1]
        if re.fullmatch(r"v\d+", default_name):
            default_name = import_path.rstrip("/").split("/")[-2]
        if not (tmp / binary).exists() and (tmp / default_name).exists():
            (tmp / default_name).rename(tmp / binary)
    if not _is_complete(tmp, module):
        raise RuntimeError(f"go build of {module.name} did not produce {list(module.commands)}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(
        f"built {module.name} in {time.monotonic() - started:.0f}s → {out}",
        file=sys.stderr,
        flush=True,
    )


def ensure(module: GoModule) -> dict[str, Path]:
    """Return binary name → path for ``module``'s binaries, building them when missing."""
    directory = bin_dir(module)
    if not _is_complete(directory, module):
        directory.parent.mkdir(parents=True, exist_ok=True)
        build(module, out=directory, log=directory.parent / "build.log")
    return {binary: directory / binary for binary in module.commands.values()}


def ensure_binaries(modules: tuple[GoModule, ...] = PLATFORM_MODULES) -> dict[str, Path]:
    """Return binary name → path for the binaries of ``modules`` (the platform's), building
    what is missing."""
    found: dict[str, Path] = {}
    for module in modules:
        found.update(ensure(module))
    return found
