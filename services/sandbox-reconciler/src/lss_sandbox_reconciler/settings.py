"""The sandbox reconciler's configuration: ``CommonSettings`` plus the ``sandbox`` group.

Env vars are ``LSS_SANDBOX__<FIELD>`` (e.g. ``LSS_SANDBOX__RUNTIME_CLASS_HIGH``) and
``LSS_RECONCILE__<FIELD>``; ``docs/sandbox-reconciler-configuration.md`` is generated from
it. This module holds no logic and reads no environment itself (pydantic-settings does,
when the class is instantiated); the object is passed explicitly to the pure planners.
"""

from __future__ import annotations

import enum
import ipaddress

from pydantic import BaseModel, Field, field_validator

from lss_common import settings as common_settings


class EgressMode(enum.StrEnum):
    """How egress-by-domain rules are enforced (DESIGN §5)."""

    AUTO = "auto"
    """Cilium FQDN policies when Cilium's CRD is installed, else resolved /32 ipBlocks."""
    CILIUM = "cilium"
    """Always CiliumNetworkPolicy ``toFQDNs`` (fails if Cilium is absent)."""
    IPBLOCK = "ipblock"
    """Always NetworkPolicy ipBlocks of the resolved addresses, refreshed on a schedule."""


class ClaimedPodCheck(enum.StrEnum):
    """How a claimed warm pod is checked before a sandbox runs on it."""

    RECORDED = "recorded"
    """It is the pod the pool manager created and recorded, unchanged since (its UID and
    stored spec's hash): whatever admission added at creation is allowed."""
    STRICT = "strict"
    """``recorded``, and it is the pod the sandbox would get cold, apart from what the
    API server's defaulting adds (``conformance``): refuses mutating admission's additions."""
    OFF = "off"
    """Not checked."""


class PvcRetention(enum.StrEnum):
    """What happens to a sandbox's own PersistentVolumeClaim when the sandbox ends."""

    DELETE = "delete"
    """Deleted with the sandbox (at expiry, failure or deletion)."""
    RETAIN = "retain"
    """Kept, without an owner reference, labelled with the sandbox's name and UID."""


class Toleration(BaseModel):
    """One pod toleration (the Kubernetes shape, camelCase when rendered)."""

    key: str | None = Field(default=None, description="Taint key; unset with Exists: all.")
    operator: str = Field(
        default="Equal", pattern=r"^(Equal|Exists)$", description="Equal or Exists."
    )
    value: str | None = Field(default=None, description="Taint value (operator Equal).")
    effect: str | None = Field(
        default=None,
        pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$",
        description="Taint effect; unset: all effects.",
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="For NoExecute: how long the pod stays bound."
    )


class SandboxOptions(BaseModel):
    """How sandbox pods and their children are built."""

    cluster_domain: str = Field(
        default="cluster.local",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="Cluster DNS domain used in status.endpoint "
        "(<service>.<namespace>.svc.<domain>).",
    )
    runtime_class_standard: str | None = Field(
        default=None,
        description="RuntimeClass of securityLevel standard. Unset or empty: the node's "
        "default runtime.",
    )
    runtime_class_high: str = Field(
        default="gvisor",
        min_length=1,
        description="RuntimeClass of securityLevel high (an isolated runtime). Never empty: a "
        "high sandbox always gets an isolated runtime (DESIGN §3.7).",
    )
    runtime_class_custom: str | None = Field(
        default=None,
        description="RuntimeClass of securityLevel custom when the profile's own level is also "
        "custom. A custom sandbox whose profile says standard or high gets that level's class.",
    )
    app_armor_enabled: bool = Field(
        default=True,
        description="Set securityContext.appArmorProfile (RuntimeDefault, or the runtime's "
        "Localhost profile). Disable only on nodes without AppArmor.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node selector of every sandbox pod."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Tolerations of every sandbox pod."
    )
    cpu_pinning_node_label: str = Field(
        default="cpu-pinning",
        min_length=1,
        description='Node label key (value "true") required by sandboxes with cpuPinning.',
    )
    cpu_request_percent: int = Field(
        default=100,
        ge=1,
        le=100,
        description="CPU request as a percentage of the CPU limit (100: Guaranteed QoS). "
        "Memory and ephemeral-storage requests always equal their limits; cpuPinning always "
        "uses 100.",
    )
    termination_grace_period_seconds: int = Field(
        default=5,
        ge=0,
        le=300,
        description="Pod terminationGracePeriodSeconds (not the sandbox lifetime).",
    )
    unschedulable_deadline_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A pod unschedulable for this long, counted from its creation, ends the "
        "sandbox Failed (reason Unschedulable).",
    )
    default_run_as_user: int = Field(
        default=1000, ge=1, description="UID when the spec gives none (never 0)."
    )
    default_run_as_group: int = Field(
        default=1000,
        ge=1,
        description="GID and fsGroup when the spec gives none (never 0).",
    )
    empty_dir_size_limit_bytes: int | None = Field(
        default=None,
        gt=0,
        description="sizeLimit of each writable emptyDir (/tmp, /workspace, writablePaths). "
        "Unset: the sandbox's ephemeral-storage limit (the kubelet also enforces that limit "
        "over all of them together).",
    )
    api_namespace_selector: dict[str, str] = Field(
        default_factory=lambda: {"kubernetes.io/metadata.name": "llmsafespace"},
        description="Labels of the namespace(s) the LLMSafeSpace API runs in; its pods may "
        "reach the agent port.",
    )
    api_pod_selector: dict[str, str] = Field(
        default_factory=lambda: {"app": "llmsafespace", "component": "api"},
        description="Labels of the LLMSafeSpace API pods that may reach the agent port.",
    )
    dns_namespace: str = Field(
        default="kube-system", min_length=1, description="Namespace of the cluster DNS pods."
    )
    dns_pod_selector: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"},
        description="Labels of the cluster DNS pods (UDP and TCP 53 allowed to them).",
    )
    egress_mode: EgressMode = Field(
        default=EgressMode.AUTO,
        description="auto: Cilium FQDN policies when Cilium's CRD exists, else ipblock; "
        "cilium; ipblock: resolved addresses as /32 (/128) ipBlocks.",
    )
    egress_denied_cidrs: list[str] = Field(
        default_factory=lambda: ["168.63.129.16/32"],
        description="Public ranges no egress rule may open, on top of every non-public range "
        "(private, shared, link-local, loopback, ULA, ...; always denied): cloud endpoints on "
        "public addresses. A resolved address inside is dropped, a profile CIDR inside is "
        "refused (EgressNotAllowed), a wider CIDR excepts it.",
    )
    egress_allowed_private_cidrs: list[str] = Field(
        default_factory=list,
        description="Non-public ranges egress rules may open after all (an internal package "
        "mirror, say). Empty: none; the cluster's pods, services and nodes, and cloud "
        "metadata, stay out of reach whatever a domain resolves to.",
    )
    egress_refresh_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="In ipblock mode, how often a running sandbox's egress domains are "
        "resolved again and its egress policy updated.",
    )

    seccomp_localhost_prefixes: list[str] = Field(
        default_factory=lambda: ["llmsafespace/", "operator/{namespace}/"],
        description="Where the Localhost seccomp profiles a Sandbox or a SandboxProfile may "
        "name live, relative to the kubelet's seccomp root: path prefixes ending in / (or "
        "whole file names); {namespace} stands for the sandbox's namespace (the Security "
        "Profiles Operator installs a namespace's profiles under operator/<namespace>/). "
        "Any other is refused (SeccompProfileNotAllowed): a node's profiles for other "
        "workloads may be looser. A RuntimeEnvironment (cluster-scoped, the platform "
        "team's) may name any. Empty: only RuntimeEnvironments choose Localhost profiles.",
    )

    @field_validator("seccomp_localhost_prefixes")
    @classmethod
    def _seccomp_prefixes(cls, values: list[str]) -> list[str]:
        for value in values:
            probe = value.replace("{namespace}", "ns")
            if not probe or not is_descending_path(probe.removesuffix("/")):
                raise ValueError(
                    f"{value!r} is not a relative path below the seccomp root "
                    "(no leading /, no . or .. or empty segment)"
                )
        return values

    @field_validator("egress_denied_cidrs", "egress_allowed_private_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value.strip())
            except ValueError as error:
                raise ValueError(f"{value!r} is not a CIDR: {error}") from None
        return values

    pvc_retention: PvcRetention = Field(
        default=PvcRetention.DELETE,
        description="delete: the sandbox's own claim goes with the sandbox; retain: it is kept "
        "(no owner reference) for an administrator to reclaim.",
    )
    default_storage_class: str | None = Field(
        default=None,
        description="StorageClass of sandbox claims that name none. Unset: the cluster default.",
    )
    namespace_isolation: bool = Field(
        default=False,
        description="Run each sandbox in its own namespace <prefix><sandbox UID> (Pod Security "
        "restricted), tied to the sandbox by labels: Kubernetes forbids cross-namespace "
        "owner references. Needs a watcher of all namespaces (LSS_WATCHER__NAMESPACE unset), "
        "so that the children's changes reach the reconciler.",
    )
    isolation_namespace_prefix: str = Field(
        default="sandbox-",
        pattern=r"^[a-z0-9]([-a-z0-9]*)?$",
        max_length=26,
        description="Prefix of isolation namespaces (a UID is 36 characters; 63 in all).",
    )
    shared_profile_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces whose SandboxProfiles any sandbox may reference. A profile "
        "in any other namespace than the sandbox's is refused (ProfileNamespaceForbidden).",
    )
    deletion_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="While a sandbox's children are being deleted, re-check after this long "
        "(their deletion events usually arrive first).",
    )


class ReconcileOptions(BaseModel):
    """How the reconciler reads, writes and reports (not how sandboxes are built)."""

    consumer_name: str = Field(
        default="sandbox-reconciler",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Durable JetStream consumer shared by every replica (one copy of each hint "
        "goes to one replica).",
    )
    max_conflict_passes: int = Field(
        default=4,
        ge=1,
        le=20,
        description="Observe-plan-apply passes per hint when writes meet 409 Conflict; after "
        "that the hint is nak'ed and redelivered (each pass re-reads, never a blind retry).",
    )
    cilium_check_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="In egress mode auto, how long the answer to 'is Cilium's "
        "CiliumNetworkPolicy CRD installed?' is cached.",
    )
    dns_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Timeout of resolving one egress domain (ipblock mode); a domain that "
        "does not resolve in time gets no rule (fail closed).",
    )
    dns_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a resolved egress domain is reused across hints (0: resolve "
        "on every pass). Kept below egress_refresh_interval_seconds so refreshes see new "
        "addresses.",
    )
    refused_write_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        description="After a write the API server refused for good (403 or 422: RBAC, an "
        "admission policy, a quota), the sandbox is looked at again after this long, so that "
        "fixing the cause needs no edit of the sandbox, and a deletion held by a refused "
        "delete finishes by itself. 0: only at the watcher's resync.",
    )
    post_events: bool = Field(
        default=True,
        description="Post Kubernetes Events on phase transitions and failures (each is one "
        "API write).",
    )
    publish_status: bool = Field(
        default=True,
        description="Publish the LSS_STATUS record of each status this replica writes, from "
        "the API server's answer, right after the write (compare-and-set, so it never "
        "duplicates or overwrites the watcher's records). Off: only the watcher publishes "
        "status, one watch hop later.",
    )


class WarmOptions(BaseModel):
    """Warm starts: claiming a Ready WarmPod instead of creating a pod (``warm.py``)."""

    enabled: bool = Field(
        default=True,
        description="Try a matching Ready WarmPod before creating a cold pod.",
    )
    pick_spread: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="A claim picks at random among this many oldest Ready candidates, so "
        "replicas claiming at once rarely try the same WarmPod.",
    )
    max_conflicts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Claim attempts answered 409 (another replica won) before the sandbox "
        "starts cold.",
    )
    feed_concurrency: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="WarmPod reads in flight at once while feeding the ready queue from hints.",
    )
    verify_claimed_pods: ClaimedPodCheck = Field(
        default=ClaimedPodCheck.RECORDED,
        description="How a claimed warm pod is checked before a sandbox runs on it (a pod "
        "that fails is discarded and the sandbox starts cold): `recorded`, it is the pod the "
        "pool manager created, unchanged since (its UID and stored spec, recorded in the "
        "WarmPod's status; works with any mutating admission); `strict`, also the pod the "
        "sandbox would get cold, allowing only the API server's defaults and "
        "`injected_containers` (refuses a mesh's or policy engine's additions); `off`. "
        "Whatever this says, a WarmPod without the record is never a candidate.",
    )

    @field_validator("verify_claimed_pods", mode="before")
    @classmethod
    def _boolean_of_earlier_versions(cls, value: object) -> object:
        # Earlier versions took a boolean: on meant checked, which `recorded` is now.
        if isinstance(value, bool) or str(value).lower() in ("true", "false"):
            return "recorded" if str(value).lower() == "true" else "off"
        return value

    injected_containers: list[str] = Field(
        default_factory=list,
        description="With `verify_claimed_pods=strict`: names of containers (and init "
        "containers) that mutating admission adds to every pod (a service mesh's sidecar), "
        "which a claimed warm pod may carry. Any other extra container discards the claim.",
    )
    recycle: bool = Field(
        default=False,
        description="When a warm sandbox ends, publish its WarmPod on the recycler subject "
        "instead of deleting it (enable only where a recycler runs).",
    )


class SandboxReconcilerSettings(common_settings.CommonSettings):
    """The sandbox reconciler's settings. Env: ``LSS_SANDBOX__<FIELD>`` and the common groups."""

    service_name: str = Field(
        default="sandbox-reconciler", description="Name in logs, metrics and traces."
    )
    sandbox: SandboxOptions = Field(
        default_factory=SandboxOptions, description="How sandbox pods and children are built."
    )
    reconcile: ReconcileOptions = Field(
        default_factory=ReconcileOptions,
        description="How the reconciler reads, writes and reports.",
    )
    warm: WarmOptions = Field(
        default_factory=WarmOptions,
        description="Warm starts from WarmPools.",
    )
    consumer: common_settings.ConsumerSettings = Field(
        # Held messages include hints riding along with a queued pass and hints queued behind
        # a running pass of the same sandbox; at 16 a burst of deletions' hints held the
        # window and new sandboxes' hints waited ~0.85 s to be fetched (bench/warm_claim.py).
        default_factory=lambda: common_settings.ConsumerSettings(concurrency=64),
        description="How hints are pulled and processed (concurrency 64: passes wait on the "
        "API server, not on CPU).",
    )


def is_descending_path(path: str) -> bool:
    """A relative path that stays below where it is resolved: no leading ``/``, no empty,
    ``.`` or ``..`` segment (``a/../../b`` would climb out of a prefix it starts with)."""
    return (
        bool(path)
        and not path.startswith("/")
        and "\\" not in path
        and all(segment not in ("", ".", "..") for segment in path.split("/"))
    )
