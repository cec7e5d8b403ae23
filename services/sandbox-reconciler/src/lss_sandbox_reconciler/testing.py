"""Object factories for tests of the sandbox reconciler (pure; no fixtures, no I/O).

They build the models the planner reads, with the values the API server would store (schema
defaults filled in), so unit tests and integration tests start from the same objects.
"""

from __future__ import annotations

from typing import Any

from lss_common.models import kinds
from lss_common.models import profile as profile_model
from lss_common.models import runtime as runtime_model
from lss_common.models import sandbox as sandbox_model

UID = "0f3c1d2e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


def make_sandbox(
    *,
    name: str = "demo",
    namespace: str = "team-a",
    uid: str = UID,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    finalizers: list[str] | None = None,
    deletion_timestamp: str | None = None,
    generation: int = 1,
) -> sandbox_model.Sandbox:
    """A stored Sandbox: ``spec`` is merged over the schema defaults."""
    body: dict[str, Any] = {
        "securityLevel": "standard",
        "timeout": 300,
        "networkAccess": {"ingress": False},
        "filesystem": {"readOnlyRoot": True},
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
        "runtime": "python:3.11",
    }
    body.update(spec or {})
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "generation": generation,
        "resourceVersion": "10",
        "creationTimestamp": "2025-06-01T12:00:00Z",
    }
    if finalizers is not None:
        metadata["finalizers"] = finalizers
    if deletion_timestamp is not None:
        metadata["deletionTimestamp"] = deletion_timestamp
    data: dict[str, Any] = {
        "apiVersion": kinds.API_VERSION,
        "kind": "Sandbox",
        "metadata": metadata,
        "spec": body,
    }
    if status is not None:
        data["status"] = status
    return sandbox_model.from_dict(data)


def make_runtime(
    *,
    name: str = "python-3-11",
    language: str = "python",
    version: str = "3.11",
    image: str = "ghcr.io/llmsafespace/runtime-python:3.11",
    available: bool | None = True,
    spec: dict[str, Any] | None = None,
) -> runtime_model.RuntimeEnvironment:
    """A stored RuntimeEnvironment."""
    body: dict[str, Any] = {
        "image": image,
        "language": language,
        "version": version,
        "securityLevel": "standard",
        "runAsNonRoot": True,
    }
    body.update(spec or {})
    data: dict[str, Any] = {
        "apiVersion": kinds.API_VERSION,
        "kind": "RuntimeEnvironment",
        "metadata": {"name": name, "uid": f"rt-{name}"},
        "spec": body,
    }
    if available is not None:
        data["status"] = {"available": available}
    return runtime_model.from_dict(data)


def make_profile(
    *,
    name: str = "preset",
    namespace: str = "team-a",
    language: str = "python",
    valid: bool | None = True,
    spec: dict[str, Any] | None = None,
) -> profile_model.SandboxProfile:
    """A stored SandboxProfile."""
    body: dict[str, Any] = {"language": language, "securityLevel": "standard"}
    body.update(spec or {})
    data: dict[str, Any] = {
        "apiVersion": kinds.API_VERSION,
        "kind": "SandboxProfile",
        "metadata": {"name": name, "namespace": namespace, "uid": f"pf-{name}"},
        "spec": body,
    }
    if valid is not None:
        data["status"] = {"valid": valid}
    return profile_model.from_dict(data)
