"""Hold an object's deletion in tests, as a real pod's grace period or someone else's
finalizer would: a foreign finalizer added, and removed when the test says so."""

from __future__ import annotations

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.testing import eventually

WAIT_SECONDS = 60.0

HOLD_FINALIZER = "test.llmsafespace.dev/hold"
_HOLD_ATTEMPTS = 10


async def hold_deletion(
    kube: client.Kube, *, resource: objects.ApiResource, name: str, namespace: str | None
) -> None:
    """Add a foreign finalizer: deleting the object then hangs until :func:`release_deletion`.

    A JSON patch that appends (guarded by the resourceVersion read): a merge patch would
    replace the list and drop finalizers others rely on (``kubernetes.io/pvc-protection``).
    An object written meanwhile (a kubelet's status, a controller's patch) fails the guard:
    read again and retried.
    """
    for attempt in range(_HOLD_ATTEMPTS):
        obj = await objects.get_object(kube, resource=resource, name=name, namespace=namespace)
        metadata = obj["metadata"]
        add = (
            {"op": "add", "path": "/metadata/finalizers/-", "value": HOLD_FINALIZER}
            if metadata.get("finalizers")
            else {"op": "add", "path": "/metadata/finalizers", "value": [HOLD_FINALIZER]}
        )
        version = metadata["resourceVersion"]
        try:
            await objects.patch_object(
                kube,
                resource=resource,
                name=name,
                namespace=namespace,
                patch_type=objects.PatchType.JSON,
                body=[{"op": "test", "path": "/metadata/resourceVersion", "value": version}, add],
            )
        except (errors.InvalidObjectError, errors.ConflictError):
            if attempt + 1 == _HOLD_ATTEMPTS:
                raise
            continue
        return


async def release_deletion(
    kube: client.Kube, *, resource: objects.ApiResource, name: str, namespace: str | None
) -> None:
    """Remove the finalizer :func:`hold_deletion` added (others may change the list meanwhile:
    the removal tests the entry it removes, and is retried on a mismatch)."""

    async def released() -> bool:
        try:
            obj = await objects.get_object(kube, resource=resource, name=name, namespace=namespace)
        except errors.NotFoundError:
            return True
        finalizers = obj["metadata"].get("finalizers") or []
        if HOLD_FINALIZER not in finalizers:
            return True
        index = finalizers.index(HOLD_FINALIZER)
        await objects.patch_object(
            kube,
            resource=resource,
            name=name,
            namespace=namespace,
            patch_type=objects.PatchType.JSON,
            body=[
                {"op": "test", "path": f"/metadata/finalizers/{index}", "value": HOLD_FINALIZER},
                {"op": "remove", "path": f"/metadata/finalizers/{index}"},
            ],
        )
        return True

    done: bool = await eventually.eventually(
        released, timeout_seconds=WAIT_SECONDS, describe=f"finalizer of {name} released"
    )
    assert done
