"""The sandbox's volumes and mounts, and its own PersistentVolumeClaim (pure).

Writable paths are size-limited ``emptyDir`` volumes (the root filesystem is read-only by
default), ``/data`` is the sandbox's claim when ``storage.persistent``, and shared claims are
mounted read-only unless asked otherwise. An emptyDir's ``sizeLimit`` defaults to the
sandbox's ephemeral-storage limit: no single volume may fill more than the whole sandbox may
use (the kubelet enforces the sum against the container's limit as well).
"""

from __future__ import annotations

from typing import Any, Final

from lss_common.logic import quantities
from lss_sandbox_reconciler import merge, names
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module

COMPONENT: Final = "storage"
DATA_VOLUME: Final = "data"
_WELL_KNOWN: Final = {"/tmp": "tmp", "/workspace": "workspace"}


def volume_name(path: str, *, index: int) -> str:
    """The volume name of the ``index``-th writable path (tmp and workspace by name)."""
    return _WELL_KNOWN.get(path, f"writable-{index}")


def empty_dir_size_limit(
    spec: merge.EffectiveSpec, *, settings: settings_module.SandboxOptions
) -> str:
    """sizeLimit of each writable emptyDir."""
    if settings.empty_dir_size_limit_bytes is not None:
        limit = min(settings.empty_dir_size_limit_bytes, spec.ephemeral_storage_bytes)
        return quantities.format_memory(limit)
    return spec.ephemeral_storage


def render_volumes(
    spec: merge.EffectiveSpec, *, sandbox_name: str, settings: settings_module.SandboxOptions
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(volumes, volumeMounts)`` of the sandbox pod and its container."""
    size_limit = empty_dir_size_limit(spec, settings=settings)
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for index, path in enumerate(spec.writable_paths):
        name = volume_name(path, index=index)
        volumes.append({"name": name, "emptyDir": {"sizeLimit": size_limit}})
        mounts.append({"name": name, "mountPath": path})
    if spec.persistent:
        volumes.append(
            {
                "name": DATA_VOLUME,
                "persistentVolumeClaim": {"claimName": names.claim_name(sandbox_name)},
            }
        )
        mounts.append({"name": DATA_VOLUME, "mountPath": merge.DATA_PATH})
    for index, shared in enumerate(spec.shared_volumes):
        name = f"shared-{index}"
        volumes.append(
            {
                "name": name,
                "persistentVolumeClaim": {
                    "claimName": shared.claim_name,
                    "readOnly": shared.read_only,
                },
            }
        )
        mounts.append({"name": name, "mountPath": shared.mount_path, "readOnly": shared.read_only})
    return volumes, mounts


def render_claim(
    spec: merge.EffectiveSpec,
    *,
    owner: owner_module.Owner,
    settings: settings_module.SandboxOptions,
) -> dict[str, Any] | None:
    """The sandbox's own claim; None unless ``storage.persistent``.

    A retained claim has no owner reference, so that garbage collection does not delete it
    after the sandbox is gone; its labels still name the sandbox.
    """
    if not spec.persistent:
        return None
    retained = settings.pvc_retention is settings_module.PvcRetention.RETAIN
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.volume_size}},
    }
    if spec.storage_class:
        claim_spec["storageClassName"] = spec.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": owner_module.child_metadata(
            owner, name=names.claim_name(owner.name), component=COMPONENT, owned=not retained
        ),
        "spec": claim_spec,
    }
