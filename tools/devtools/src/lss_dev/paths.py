"""Where the local platform keeps things: the repository, the binary cache, the state dir.

Binaries are cached per content key under ``$LSS_DEV_CACHE`` (default
``~/.cache/llmsafespace``) so they survive sessions on one machine; state (PKI, etcd data,
logs, pids) lives under ``$LSS_DEV_STATE`` (default ``~/.local/state/llmsafespace/dev``).
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this package was installed from (editable install in the uv workspace)."""
    env = os.environ.get("LSS_REPO_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "tools" / "platform").is_dir() and (parent / "deploy").is_dir():
            return parent
    raise RuntimeError(
        "cannot find the LLMSafeSpace checkout (tools/platform and deploy/); set LSS_REPO_ROOT"
    )


def cache_dir() -> Path:
    return Path(os.environ.get("LSS_DEV_CACHE", Path.home() / ".cache" / "llmsafespace"))


def default_state_dir() -> Path:
    return Path(
        os.environ.get("LSS_DEV_STATE", Path.home() / ".local" / "state" / "llmsafespace" / "dev")
    )


def crds_dir() -> Path:
    return repo_root() / "deploy" / "crds"


def samples_dir() -> Path:
    return repo_root() / "deploy" / "samples"
