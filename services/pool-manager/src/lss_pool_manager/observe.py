"""Read a pool's world, or one WarmPod's, from the API server (no decisions, no writes).

The pool handler lists the pool's WarmPods (and, when deleting, its pods) by the pool-UID
label within the pool's namespace: one list per pool hint, which is the pool handler's job
and not a claim path. RuntimeEnvironments are listed (cluster-scoped, few) to resolve the
pool's runtime by the sandbox rule. Missing objects are ``None``, never an exception.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import profile as profile_model
from lss_common.models import runtime as runtime_model
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import podspec


@dataclasses.dataclass(frozen=True, slots=True)
class BuildInputs:
    """What a pool's warm pods are built from, or why they cannot be."""

    spec: podspec.EffectiveSpec
    record: warmpod_model.WarmPodSpec


def pool_key(warm_pod: warmpod_model.WarmPod) -> tuple[str, str] | None:
    """(namespace, name) of the WarmPod's pool: always in the WarmPod's own namespace, where
    a pool creates its WarmPods. A ``poolRef`` naming another namespace names no pool: such
    a WarmPod (made by hand) is an orphan, never built from, nor preloaded by, another
    namespace's pool."""
    ref = warm_pod.spec.pool_ref
    namespace = warm_pod.metadata.namespace or ""
    if ref.namespace and ref.namespace != namespace:
        return None
    return namespace, ref.name


async def get_pool_of(
    kube: client.Kube, warm_pod: warmpod_model.WarmPod
) -> warmpool_model.WarmPool | None:
    """The WarmPod's pool (:func:`pool_key`); None when it has none."""
    key = pool_key(warm_pod)
    if key is None:
        return None
    return await get_pool(kube, namespace=key[0], name=key[1])


async def get_pool(
    kube: client.Kube, *, namespace: str, name: str
) -> warmpool_model.WarmPool | None:
    return await objects.get_or_none(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name=name,
        decode=warmpool_model.decode,
    )


async def get_warm_pod(
    kube: client.Kube, *, namespace: str, name: str, not_older_than: str | None = None
) -> warmpod_model.WarmPod | None:
    """The WarmPod or None; ``not_older_than``: its hint's version (``objects.get_object``)."""
    return await objects.get_or_none(
        kube,
        resource=objects.WARM_POD,
        namespace=namespace,
        name=name,
        not_older_than=not_older_than,
        decode=warmpod_model.decode,
    )


async def get_pod(
    kube: client.Kube, *, namespace: str, name: str, not_older_than: str | None = None
) -> dict[str, Any] | None:
    """The pod or None; ``not_older_than``: its hint's version (``objects.get_object``)."""
    return await objects.get_or_none(
        kube, resource=objects.POD, namespace=namespace, name=name, not_older_than=not_older_than
    )


def _selector(pool: warmpool_model.WarmPool) -> str:
    return f"{podspec.POOL_UID}={pool.metadata.uid}"


async def list_warm_pods(
    kube: client.Kube, *, pool: warmpool_model.WarmPool, any_version: bool = False
) -> list[warmpod_model.WarmPod]:
    """The pool's WarmPods (selected by the pool's UID label).

    ``any_version`` reads the API server's watch cache as it is, without the up to 100 ms a
    consistent list waits for it (``objects.list_objects``). Sizing uses it: the cache is at
    least as new as the hint that started the pass (the watcher's watch is served from that
    cache), a create from a stale view answers AlreadyExists (slot names), and a delete
    carries the observed resourceVersion, so a stale view cannot over-fill the pool or delete
    a WarmPod claimed since.
    """
    found = await objects.list_objects(
        kube,
        resource=objects.WARM_POD,
        namespace=pool.metadata.namespace,
        label_selector=_selector(pool),
        any_version=any_version,
        decode=warmpod_model.decode,
    )
    return found.items


async def list_pool_pods(
    kube: client.Kube, *, pool: warmpool_model.WarmPool, any_version: bool = False
) -> list[dict[str, Any]]:
    """The pods built for the pool's WarmPods (claimed ones included); ``any_version``: from
    the watch cache as it is (see :func:`list_warm_pods`)."""
    found = await objects.list_objects(
        kube,
        resource=objects.POD,
        namespace=pool.metadata.namespace,
        label_selector=_selector(pool),
        any_version=any_version,
    )
    return found.items


async def build_inputs(
    kube: client.Kube,
    *,
    pool: warmpool_model.WarmPool,
    settings: podspec.SandboxOptions,
) -> BuildInputs:
    """Resolve the pool's runtime and profile and merge them as for a sandbox.

    Raises ``PermanentError`` (with a condition reason) when they cannot be used.
    """
    key = podspec.profile_key(pool, shared_namespaces=settings.shared_profile_namespaces)
    profile: profile_model.SandboxProfile | None = None
    if key is not None:
        try:
            found = await objects.get_object(
                kube,
                resource=objects.SANDBOX_PROFILE,
                namespace=key[0],
                name=key[1],
                decode=profile_model.decode,
            )
        except errors.NotFoundError:
            found = None
        profile = podspec.check_profile(found, key=key)
    # The watch cache as it is (no wait); a runtime missing from it is confirmed by a
    # consistent list before the pool is failed for it.
    runtimes = await objects.list_objects(
        kube, resource=objects.RUNTIME_ENVIRONMENT, any_version=True, decode=runtime_model.decode
    )
    try:
        runtime = podspec.select_runtime(pool, candidates=runtimes.items)
    except errors.PermanentError:
        runtimes = await objects.list_objects(
            kube, resource=objects.RUNTIME_ENVIRONMENT, decode=runtime_model.decode
        )
        runtime = podspec.select_runtime(pool, candidates=runtimes.items)
    spec = podspec.effective_spec(pool, profile=profile, runtime=runtime, settings=settings)
    return BuildInputs(spec=spec, record=podspec.warm_pod_spec(pool, spec=spec, profile_key=key))
