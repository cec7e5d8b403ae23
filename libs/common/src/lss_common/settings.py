"""Configuration shared by every service (pydantic-settings, ``LSS_`` env vars, ``__`` nesting).

Each service extends :class:`CommonSettings` with its own group. The settings object is passed
explicitly; there is no global. ``docs/configuration.md`` is generated from these classes
(``python -m lss_common.settings_doc``) and a test checks that it is current.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NatsSettings(BaseModel):
    """How to reach NATS JetStream and which streams to use."""

    url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS server URL(s), comma-separated for a cluster.",
    )
    connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of one connection attempt."
    )
    reconnect_wait_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Pause between reconnect attempts. Reconnects never give up: a service "
        "without NATS reports not-ready instead of exiting.",
    )
    publish_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long a publish waits for JetStream's acknowledgement before it "
        "fails (the caller retries; Nats-Msg-Id makes the retry safe).",
    )
    drain_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="On shutdown, how long draining the connection (flushing publishes and "
        "acks) may take before it is closed anyway.",
    )
    events_stream: str = Field(
        default="LSS_EVENTS", description="JetStream stream carrying work hints (lss.evt.>)."
    )
    status_stream: str = Field(
        default="LSS_STATUS",
        description="JetStream stream carrying committed status, last value per subject.",
    )
    subject_prefix: str = Field(
        default="lss",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="First subject token; lets several installations share one NATS account.",
    )
    duplicate_window_seconds: float = Field(
        default=120.0,
        gt=0,
        description="JetStream dedupe window for Nats-Msg-Id on LSS_EVENTS: a hint published "
        "twice within it (e.g. by two watchers) is stored once.",
    )
    events_max_age_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="Hints older than this are dropped; the periodic resync re-creates them. "
        "A re-check a service asked for (a delayed redelivery) is handed over to a fresh copy "
        "of its message before then.",
    )
    replicas: int = Field(
        default=1, ge=1, le=5, description="Stream replicas (use 3 on a clustered NATS)."
    )
    file_storage: bool = Field(
        default=True, description="File storage (survives a nats-server restart) vs memory."
    )
    credentials_file: str | None = Field(
        default=None,
        description="A NATS .creds file (a user JWT and its nkey seed), for servers with "
        "decentralised authentication. One of credentials_file, user/password, token.",
    )
    user: str | None = Field(default=None, description="NATS user (with password).")
    password: SecretStr | None = Field(
        default=None, description="NATS password (with user); never logged."
    )
    token: SecretStr | None = Field(
        default=None, description="NATS authentication token; never logged."
    )
    tls_ca_file: str | None = Field(
        default=None,
        description="CA bundle that verifies the NATS server's certificate (tls:// URLs; "
        "unset: the system's trust store).",
    )
    tls_cert_file: str | None = Field(
        default=None, description="Client certificate for mutual TLS (with tls_key_file)."
    )
    tls_key_file: str | None = Field(default=None, description="Key of tls_cert_file.")
    inbox_prefix: str = Field(
        default="_INBOX",
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="Subject prefix of this client's reply inboxes (JetStream answers and "
        "pulled messages arrive there). Each service needs its own, so that NATS "
        "permissions keep it from reading other services' replies "
        "(deploy/nats/authorization.conf): unset, it is `_INBOX.<user>` when `user` is set "
        "and is one subject token, else `_INBOX`.",
    )

    declare_topology: bool = Field(
        default=True,
        description="Create the streams and this service's durable consumer at start, and "
        "correct their configuration. Off where the service's NATS user may not "
        "(deploy/nats/authorization.conf): the service then only checks that they exist, and "
        "they are declared once with `python -m lss_<service> --declare-topology` under a "
        "user that may.",
    )

    @model_validator(mode="after")
    def _inbox_of_the_user(self) -> Self:
        if (
            "inbox_prefix" not in self.model_fields_set
            and self.user is not None
            and re.fullmatch(r"[A-Za-z0-9_-]+", self.user)
        ):
            self.inbox_prefix = f"_INBOX.{self.user}"
        return self

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        if (self.user is None) != (self.password is None):
            missing = "password" if self.password is None else "user"
            raise ValueError(f"nats.{missing} is required with nats.user/nats.password")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            missing = "tls_key_file" if self.tls_key_file is None else "tls_cert_file"
            raise ValueError(f"nats.{missing} is required with the other (mutual TLS)")
        ways = [
            name
            for name, value in (
                ("credentials_file", self.credentials_file),
                ("user", self.user),
                ("token", self.token),
            )
            if value is not None
        ]
        if len(ways) > 1:
            raise ValueError(f"nats: one way to authenticate, not {' and '.join(ways)}")
        return self


class KubeSettings(BaseModel):
    """How to reach the Kubernetes API server."""

    kubeconfig: str | None = Field(
        default=None,
        description="Path of a kubeconfig file. Unset: $KUBECONFIG, then in-cluster "
        "service-account credentials, then ~/.kube/config.",
    )
    context: str | None = Field(default=None, description="kubeconfig context to use.")
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one API request (not of watches)."
    )
    max_connections: int = Field(
        default=32,
        ge=4,
        le=1024,
        description="Connections to the API server at most (watches included). Each TLS "
        "connection keeps a 256 KiB read buffer; more connections than the API server can "
        "serve at once only add memory.",
    )


class ConsumerSettings(BaseModel):
    """How a service pulls and processes its messages."""

    concurrency: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Messages handled at once in this process (different keys; one key is "
        "always handled serially).",
    )
    max_ack_pending: int = Field(
        # Services keep one delayed re-check (a nak with a delay, unacknowledged meanwhile)
        # per live object: a sandbox's lifetime end, a WarmPod's heartbeat. At 1,024 a pool
        # manager with 1,000 WarmPods held 1,010 and was about to stall
        # (bench/pool_manager_memory.py). Flow control is ``concurrency``, per process.
        default=262_144,
        ge=1,
        description="Unacknowledged messages across all replicas of the service (JetStream "
        "consumer), delayed re-checks included: must exceed the live objects the service "
        "watches over (sandboxes, or WarmPods and pools) times its replicas.",
    )
    ack_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Unacked messages are redelivered after this; long handlers send "
        "in-progress to extend it.",
    )
    max_deliver: int = Field(
        default=-1,
        ge=-1,
        description="Delivery attempts before JetStream gives up (-1: never; we prefer a "
        "visible retry loop to a lost hint).",
    )
    fetch_batch: int = Field(default=64, ge=1, le=1024, description="Messages per pull request.")
    fetch_timeout_seconds: float = Field(
        default=2.0, gt=0, description="How long one pull request waits for messages."
    )
    backoff_seconds: list[float] = Field(
        default=[0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0],
        min_length=1,
        description="Nak delay for the n-th failed delivery; the last value repeats.",
    )
    shutdown_grace_seconds: float = Field(
        default=20.0,
        gt=0,
        description="On SIGTERM, how long in-flight handlers may finish before the rest are "
        "nak'ed for another replica.",
    )


class HttpSettings(BaseModel):
    """The /metrics, /healthz and /readyz endpoint."""

    # All interfaces: the kubelet probes and Prometheus scrapes arrive on the pod IP.
    host: str = Field(default="0.0.0.0", description="Listen address.")
    port: int = Field(default=8081, ge=0, le=65535, description="Listen port (0: any free).")
    readiness_check_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How long /readyz waits for one component's readiness check before "
        "counting it as not ready (kubelet probes time out after 1 s by default; set the "
        "probe's timeoutSeconds above this).",
    )
    liveness_stall_seconds: float = Field(
        default=30.0,
        gt=0,
        description="/healthz fails when the event loop has not run its 1 s heartbeat for "
        "this long, or woke it this late: the loop is blocked and the process should restart.",
    )


class TracingSettings(BaseModel):
    """OpenTelemetry tracing."""

    enabled: bool = Field(default=True, description="Create spans and propagate W3C context.")
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint. Unset: spans are created and propagated "
        "(trace ids appear in logs) but not exported.",
    )
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="Fraction of root traces sampled."
    )


class LogSettings(BaseModel):
    """Structured logging."""

    level: str = Field(
        default="INFO",
        pattern=r"^(DEBUG|INFO|WARNING|ERROR)$",
        description="Minimum level logged.",
    )
    json_format: bool = Field(
        default=True, description="One JSON object per line (false: readable text for humans)."
    )


class CommonSettings(BaseSettings):
    """Settings every service has. Env: ``LSS_<GROUP>__<FIELD>``, e.g. ``LSS_NATS__URL``."""

    model_config = SettingsConfigDict(
        env_prefix="LSS_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    service_name: str = Field(
        default="llmsafespace", description="Name in logs, metrics and traces."
    )
    nats: NatsSettings = Field(default_factory=NatsSettings)
    kube: KubeSettings = Field(default_factory=KubeSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    log: LogSettings = Field(default_factory=LogSettings)


def environment_of(settings: CommonSettings, *, groups: Iterable[str]) -> dict[str, str]:
    """``settings`` as the ``LSS_*`` environment that reproduces them in another process:
    ``LSS_SERVICE_NAME`` and ``LSS_<GROUP>__<FIELD>`` for every set field of ``groups``
    (lists and mappings as JSON, booleans as ``true``/``false``)."""
    env = {"LSS_SERVICE_NAME": settings.service_name}
    for group in groups:
        for field, value in getattr(settings, group).model_dump(mode="json").items():
            if value is None:
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, list | dict):
                text = json.dumps(value)
            else:
                text = str(value)
            env[f"LSS_{group.upper()}__{field.upper()}"] = text
    return env
