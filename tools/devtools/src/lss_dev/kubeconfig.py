"""Writes kubeconfig files for the local control plane."""

from __future__ import annotations

from pathlib import Path

import yaml


def write(
    path: Path, *, server: str, ca: Path, client_cert: Path, client_key: Path, name: str
) -> Path:
    """The administrator's kubeconfig: a client certificate in ``system:masters``."""
    user = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    return _write(path, server=server, ca=ca, name=name, user_name=f"{name}-admin", user=user)


def write_token(path: Path, *, server: str, ca: Path, token: str, name: str, user: str) -> Path:
    """A kubeconfig that authenticates with a bearer token (a ServiceAccount's)."""
    return _write(path, server=server, ca=ca, name=name, user_name=user, user={"token": token})


def _write(
    path: Path, *, server: str, ca: Path, name: str, user_name: str, user: dict[str, str]
) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user_name}}],
        "current-context": name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private: it holds a credential.
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
