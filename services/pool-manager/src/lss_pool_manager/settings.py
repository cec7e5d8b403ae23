"""The pool manager's configuration: ``CommonSettings`` plus the ``pool``, ``preload`` and
``sandbox`` groups.

Env vars are ``LSS_POOL__<FIELD>`` (e.g. ``LSS_POOL__CREATE_RATE_PER_SECOND``),
``LSS_PRELOAD__<FIELD>`` and ``LSS_SANDBOX__<FIELD>``. The ``sandbox`` group is the sandbox
reconciler's own class, read from the same variables: warm pods must be built exactly like the
sandbox pods that will claim them, so both services are deployed with one ``LSS_SANDBOX__*``
configuration.
``docs/pool-manager.md`` embeds the reference generated from this class (checked by a test).
This module holds no logic and reads no environment itself.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from lss_common import settings as common_settings
from lss_pool_manager import podspec


class PoolOptions(BaseModel):
    """How pools are sized, refilled and torn down."""

    consumer_name: str = Field(
        default="pool-manager",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Durable JetStream consumer shared by every replica (warmpool and "
        "warmpod hints).",
    )
    create_rate_per_second: float = Field(
        default=10.0,
        gt=0,
        description="WarmPod creations per second per pool once the burst is spent (token "
        "bucket): a drained pool refills at this pace instead of flooding the API server.",
    )
    create_burst: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="WarmPods a pool may create at once (the token bucket's capacity).",
    )
    expectation_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a create or delete this replica made is trusted while the "
        "observed list does not show it yet (the expectations gate).",
    )
    heartbeat_interval_seconds: float = Field(
        default=120.0,
        ge=0,
        description="A Ready WarmPod's status.lastHeartbeat is refreshed this often while "
        "its pod stays Ready (each refresh is one status write). 0: only on transitions.",
    )
    ready_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A WarmPod whose pod is not Ready this long after the WarmPod's creation "
        "is Failed, deleted and replaced (a pod that never becomes Ready never will).",
    )
    force_delete_with_assigned_pods: bool = Field(
        default=False,
        description="Delete a WarmPool even while some of its WarmPods are Assigned to "
        "sandboxes (their pods belong to the sandboxes and keep running). False: deletion "
        "waits until no WarmPod is Assigned.",
    )
    deletion_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="While a pool's WarmPods and pods are being deleted (or deletion is "
        "blocked), re-check after this long.",
    )
    refused_write_retry_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A write the API server refuses for good (403 or 422: a ResourceQuota, "
        "an admission policy, RBAC) is tried again after this long. A refused pod or Service "
        "create leaves its WarmPod PodRefused and the pool PodsRefused, with the API "
        "server's message, and the WarmPod holds its slot (no churn of new ones).",
    )
    invalid_pool_recheck_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A pool whose runtime or profile cannot be used is re-checked after this "
        "long (RuntimeEnvironment and SandboxProfile changes do not wake pools).",
    )
    pool_resync_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Each pool is looked at again at least this often (TTL and scale-down "
        "deadlines requeue sooner); its ServiceAccount, deny policy and orphaned pods are "
        "checked at this interval too.",
    )
    refill_batch_seconds: float = Field(
        default=0.25,
        ge=0,
        le=10,
        description="While a pool has spare supply (a Ready WarmPod, and at least half of "
        "the unassigned ones it wants), a pool pass woken by a WarmPod change (a claim, a "
        "release, a pod's death) waits this long and covers the other wake-ups meanwhile: a "
        "burst of claims costs one refill pass, run after the claims instead of beside them. "
        "0: every wake-up runs at once.",
    )
    prepare_services: bool = Field(
        default=True,
        description="Create each warm pod's Service (`warm-<pod>`, ClusterIP, agent port) "
        "together with the pod, so that a claim only re-owns it. Off: idle warm pods hold no "
        "Service (no ClusterIP, no EndpointSlice) and each claim creates the Service instead, "
        "on its path (one write more per claim).",
    )
    leaked_claim_grace_seconds: float = Field(
        default=120.0,
        gt=0,
        description="An Assigned WarmPod whose sandbox is gone, or does not reference it in "
        "status.warmPodRef, is released (WarmPod and pod deleted, the pool refills) once it has "
        "been Assigned this long: a claim completes in well under a second, so only a claim "
        "whose reconciler died between the claim and the sandbox's status is older.",
    )
    leaked_claim_check_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="While a pool has Assigned WarmPods older than the grace period, their "
        "sandboxes are checked (one Sandbox list in the pool's namespace) at most this often.",
    )


class FailureOptions(BaseModel):
    """The creation backoff of a pool whose WarmPods keep failing (``status.podFailures``)."""

    backoff_seconds: float = Field(
        default=5.0,
        gt=0,
        description="After a WarmPod's pod fails (an image that cannot be pulled, a crash "
        "loop) or is not Ready in time, the pool's next WarmPod is created this long after the "
        "failure, one at a time; the delay doubles with each failure in a row until a WarmPod "
        "created after the last failure is Ready.",
    )
    backoff_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="The longest delay between WarmPods of a pool whose WarmPods keep failing.",
    )


class PreloadOptions(BaseModel):
    """How a pool's preload scripts are run in its warm pods (``spec.preloadScripts``)."""

    default_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Timeout of a preload script that sets no timeoutSeconds; a script still "
        "running then fails its WarmPod, whose pod is replaced.",
    )
    failure_backoff_seconds: float = Field(
        default=10.0,
        gt=0,
        description="After a WarmPod fails by a preload script, the pool's next WarmPod is "
        "created this long after the failure; the delay doubles with each failure in a row "
        "(one WarmPod at a time) until a preload succeeds.",
    )
    failure_backoff_max_seconds: float = Field(
        default=600.0,
        gt=0,
        description="The longest delay between WarmPods of a pool whose preload keeps failing.",
    )


class PoolManagerSettings(common_settings.CommonSettings):
    """The pool manager's settings. Env: ``LSS_POOL__<FIELD>``, ``LSS_PRELOAD__<FIELD>``,
    ``LSS_FAILURES__<FIELD>``, ``LSS_SANDBOX__<FIELD>``."""

    service_name: str = Field(
        default="pool-manager", description="Name in logs, metrics and traces."
    )
    pool: PoolOptions = Field(
        default_factory=PoolOptions, description="How pools are sized, refilled and torn down."
    )
    preload: PreloadOptions = Field(
        default_factory=PreloadOptions,
        description="How a pool's preload scripts are run in its warm pods.",
    )
    failures: FailureOptions = Field(
        default_factory=FailureOptions,
        description="The creation backoff of a pool whose WarmPods keep failing.",
    )
    sandbox: podspec.SandboxOptions = Field(
        default_factory=podspec.SandboxOptions,
        description="How pods are built: the sandbox reconciler's settings, shared.",
    )
