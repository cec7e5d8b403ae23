"""The watcher's configuration: ``CommonSettings`` plus the ``watcher`` group (``LSS_WATCHER__*``).

``docs/watcher-configuration.md`` is generated from this class
(``python -m lss_common.settings_doc --settings lss_watcher.settings:WatcherSettings``) and a
unit test checks that it is current. This module holds no logic and reads no environment
itself (pydantic-settings does, when the class is instantiated).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from lss_common import settings as common_settings
from lss_common.models import labels


class WatcherOptions(BaseModel):
    """What the watcher watches, how it recovers, and how it publishes."""

    resync_period_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Every this many seconds (aligned to wall-clock multiples, so replicas "
        "resync together and their hints deduplicate) a RESYNC hint is published for every "
        "live object and owner key, and status records of vanished objects are marked "
        "deleted.",
    )
    optional_recheck_seconds: float = Field(
        default=30.0,
        gt=0,
        description="An optional resource the API server does not serve (Cilium's "
        "CiliumNetworkPolicy, where Cilium is not installed) is looked for again after this "
        "many seconds; once served it is listed and watched like the others. Keep it at or "
        "below the reconciler's LSS_RECONCILE__CILIUM_CHECK_INTERVAL_SECONDS: the "
        "reconciler starts writing CiliumNetworkPolicies once it sees the CRD, and a policy "
        "deleted by hand is re-created only when the watcher watches them.",
    )
    list_page_size: int = Field(
        default=500, ge=1, le=10000, description="Objects per list page (limit/continue)."
    )
    watch_timeout_seconds: float = Field(
        default=300.0,
        ge=1,
        description="Server-side timeoutSeconds of one watch request; each watch picks a "
        "random value between this and twice this, so that replicas and resources do not "
        "reconnect in lockstep. The watch then resumes from its last resourceVersion.",
    )
    watch_idle_timeout_seconds: float = Field(
        default=180.0,
        ge=1,
        description="A watch that delivers no byte at all (not even a bookmark, which the API "
        "server sends about every minute) for this long is presumed dead, and the resource is "
        "listed again (its position may be ahead of a restored etcd).",
    )
    child_label_selector: str = Field(
        default=labels.APP_SELECTOR,
        min_length=1,
        description="Label selector of the child objects watched (pods, Services, "
        "NetworkPolicies, ServiceAccounts, PVCs, CiliumNetworkPolicies where installed): "
        "only ours, so memory grows with our objects, not with the cluster.",
    )
    namespace: str | None = Field(
        default=None,
        description="Watch only this namespace (cluster-scoped kinds are always watched "
        "cluster-wide). Unset: all namespaces. Leave it unset when the sandbox reconciler runs "
        "with namespace isolation: the sandboxes' children then live in namespaces of their "
        "own, and a watcher of one namespace would never hear of their changes.",
    )
    publish_concurrency: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Publishes awaiting their JetStream acknowledgement at once, across all "
        "resources; a watch stops reading while none is free (backpressure). Resync rounds "
        "use a quarter as many again, of their own, so they never crowd out live changes.",
    )
    retry_backoff_seconds: list[float] = Field(
        default=[0.1, 0.25, 0.5, 1.0, 2.0, 5.0],
        min_length=1,
        description="Delay before the n-th retry of a failed publish, list or watch; the last "
        "value repeats forever (a hint is never dropped).",
    )
    status_deleted_ttl_seconds: float = Field(
        default=3600.0,
        ge=1,
        description="TTL of the final LSS_STATUS record (deleted=true) of a deleted Sandbox or "
        "WarmPool, so the stream does not keep every object that ever existed.",
    )
    resync_on_reconnect: bool = Field(
        default=True,
        description="After the NATS connection comes back, re-declare the streams, publish a "
        "resync round and republish Sandbox/WarmPool status where the stored record is "
        "missing or older (covers a server that lost its store).",
    )
    reconnect_check_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often the NATS reconnect counter is checked."
    )


class WatcherSettings(common_settings.CommonSettings):
    """The watcher's settings. Env: ``LSS_<GROUP>__<FIELD>``, e.g. ``LSS_WATCHER__NAMESPACE``."""

    service_name: str = Field(default="watcher", description="Name in logs, metrics and traces.")
    watcher: WatcherOptions = Field(default_factory=WatcherOptions)
