"""Each service talks to NATS as its own user, allowed only what it uses
(``deploy/nats/authorization.conf``, real nats-server).

The whole system — watcher, sandbox reconciler and pool manager as their own processes, on
the real platform — runs against a nats-server configured with exactly that file: a pool
fills, a sandbox starts warm (the reconciler's ready queue follows the WarmPod hints), the API
service's user reads its ``Running`` record with ``status_client``, and the sandbox is
deleted; the server logs no permission violation. Then, as each user, what it must not do is
refused: publishing a status record (pool manager, API), a status of another kind (the
reconciler), a hint of another service's kind, deleting or purging a stream, reading
another service's inbox or consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import nats
import nats.js.api
import nats.js.errors
import pytest

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.bus import status_client, topology
from lss_common.kube import client, objects
from lss_common.models import kinds, labels
from lss_common.testing import eventually
from lss_dev import fixtures_nats, processes, services
from lss_dev import platform as platform_mod

pytestmark = pytest.mark.integration

USERS = fixtures_nats.NATS_USERS
SERVICE_USERS = {
    "watcher": "watcher",
    "sandbox_reconciler": "sandbox-reconciler",
    "pool_manager": "pool-manager",
}
VIOLATION = "Permissions Violation"


def _violations(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if VIOLATION in line]


async def _connect(url: str, user: str, password: str, seen: list[str]) -> nats.NATS:
    async def on_error(error: Exception) -> None:
        seen.append(str(error))

    return await nats.connect(
        url,
        user=user,
        password=password,
        inbox_prefix=f"_INBOX.{user}",
        error_cb=on_error,
        allow_reconnect=False,
    )


async def test_the_system_runs_with_a_user_per_service_and_no_violation(
    platform: platform_mod.Platform,
    secured_nats: fixtures_nats.SecuredNats,
    kube: client.Kube,
) -> None:
    url, passwords = secured_nats.url, secured_nats.passwords
    # The topology first, as `setup` (the services' own users may not declare it).
    for service in SERVICE_USERS:
        _declare_topology(platform, service, url=url, password=passwords["setup"])
    environment = {
        service: {
            "LSS_NATS__URL": url,
            "LSS_NATS__USER": user,
            "LSS_NATS__PASSWORD": passwords[user],
            "LSS_NATS__DECLARE_TOPOLOGY": "false",
        }
        for service, user in SERVICE_USERS.items()
    }
    namespace = f"nats-perm-{uuid.uuid4().hex[:6]}"
    language = f"natsperm{uuid.uuid4().hex[:6]}"
    running = services.start_all(platform, environment=environment)
    api_errors: list[str] = []
    api = await _connect(url, "api", passwords["api"], api_errors)
    try:
        assert {"watcher", "sandbox_reconciler", "pool_manager"} <= set(running)
        await _sample_objects(kube, namespace=namespace, language=language)
        record = await status_client.wait_for_phase(
            api.jetstream(),
            kind="sandbox",
            namespace=namespace,
            name="box",
            phases={"Running"},
            timeout_seconds=90,
        )
        assert record.launch == "warm", record
        latest = await status_client.get_status(
            api.jetstream(), kind="sandbox", namespace=namespace, name="box"
        )
        assert latest is not None
        assert latest.phase == "Running"
        await objects.delete_object(kube, resource=objects.SANDBOX, namespace=namespace, name="box")

        async def gone() -> bool:
            found = await objects.get_or_none(
                kube, resource=objects.SANDBOX, namespace=namespace, name="box"
            )
            return found is None

        await eventually.eventually(gone, timeout_seconds=60, describe="sandbox deleted")
        assert api_errors == []
        logs = {s: processes.tail(f"svc-{s}", state_dir=platform.state_dir) for s in running}
        for service, tail in logs.items():
            assert VIOLATION.lower() not in tail.lower(), (service, tail)
    finally:
        await api.close()
        services.stop_all(platform)
        await _delete_objects(kube, namespace=namespace, language=language)
    assert _violations(secured_nats.log_file) == []


def _declare_topology(
    platform: platform_mod.Platform, service: str, *, url: str, password: str
) -> None:
    """``python -m lss_<service> --declare-topology`` as the ``setup`` user."""
    environment = {
        **os.environ,
        "KUBECONFIG": str(platform.kubeconfig),
        "LSS_NATS__URL": url,
        "LSS_NATS__USER": "setup",
        "LSS_NATS__PASSWORD": password,
    }
    done = subprocess.run(
        [sys.executable, "-m", f"lss_{service}", "--declare-topology"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (service, done.stdout[-2000:], done.stderr[-2000:])


async def _sample_objects(kube: client.Kube, *, namespace: str, language: str) -> None:
    await objects.create_object(
        kube,
        resource=objects.NAMESPACE,
        body={
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    labels.NAMESPACE_ENABLED: labels.NAMESPACE_ENABLED_VALUE,
                },
            },
        },
    )
    await objects.create_object(
        kube,
        resource=objects.RUNTIME_ENVIRONMENT,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "RuntimeEnvironment",
            "metadata": {"name": f"{language}-1.0"},
            "spec": {"image": f"{language}:1.0", "language": language, "version": "1.0"},
        },
    )
    await objects.create_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "WarmPool",
            "metadata": {"name": "pool", "namespace": namespace},
            "spec": {"runtime": f"{language}:1.0", "minSize": 1},
        },
    )

    async def ready() -> bool:
        found = await objects.list_objects(kube, resource=objects.WARM_POD, namespace=namespace)
        return any((wp.get("status") or {}).get("phase") == "Ready" for wp in found.items)

    await eventually.eventually(ready, timeout_seconds=60, describe="a Ready WarmPod")
    await objects.create_object(
        kube,
        resource=objects.SANDBOX,
        namespace=namespace,
        body={
            "apiVersion": kinds.API_VERSION,
            "kind": "Sandbox",
            "metadata": {"name": "box", "namespace": namespace},
            "spec": {"runtime": f"{language}:1.0", "timeout": 600},
        },
    )


async def _delete_objects(kube: client.Kube, *, namespace: str, language: str) -> None:
    with contextlib.suppress(errors.NotFoundError):
        await objects.delete_object(kube, resource=objects.NAMESPACE, name=namespace)
    with contextlib.suppress(errors.NotFoundError):
        await objects.delete_object(
            kube, resource=objects.RUNTIME_ENVIRONMENT, name=f"{language}-1.0"
        )


FORBIDDEN_PUBLISHES: dict[str, tuple[str, ...]] = {
    # Status records are what API clients trust for a sandbox's endpoint.
    "pool-manager": ("lss.status.sandbox.ns.box", "lss.evt.sandbox.ns.box", "lss.recycle.ns.w"),
    "setup": ("lss.status.sandbox.ns.box", "lss.evt.sandbox.ns.box", "lss.ctl.resync"),
    "sandbox-reconciler": ("lss.status.warmpool.ns.pool", "lss.evt.warmpool.ns.pool"),
    "api": ("lss.status.sandbox.ns.box", "lss.evt.sandbox.ns.box", "lss.ctl.resync"),
    "watcher": ("lss.recycle.ns.w",),
}
#: What each may publish besides the JetStream API (a consumer hands a re-check over by
#: re-publishing its hint on the hint's own subject).
ALLOWED_PUBLISHES: dict[str, tuple[str, ...]] = {
    "watcher": ("lss.evt.sandbox.ns.box", "lss.evt.warmpod.ns.w", "lss.status.warmpool.ns.p"),
    "sandbox-reconciler": (
        "lss.status.sandbox.ns.box",
        "lss.evt.sandbox.ns.box",
        "lss.recycle.ns.w",
    ),
    "pool-manager": ("lss.evt.warmpool.ns.pool", "lss.evt.warmpod.ns.w", "lss.ctl.resync"),
    "api": (),
    "setup": (),
}
#: Only `setup` declares: a stream's sources or subject transforms, or a consumer's deliver
#: subject, could write into LSS_STATUS.
DECLARATIONS = (
    "$JS.API.STREAM.CREATE.LSS_STATUS",
    "$JS.API.STREAM.UPDATE.LSS_STATUS",
    "$JS.API.STREAM.UPDATE.LSS_EVENTS",
    "$JS.API.CONSUMER.CREATE.LSS_EVENTS.sandbox-reconciler",
    "$JS.API.CONSUMER.DURABLE.CREATE.LSS_EVENTS.pool-manager",
    "$JS.API.CONSUMER.CREATE.LSS_EVENTS.pool-manager.lss_evt_warmpod_>",
)
FORBIDDEN_API = (
    "$JS.API.STREAM.DELETE.LSS_STATUS",
    "$JS.API.STREAM.PURGE.LSS_STATUS",
    "$JS.API.STREAM.DELETE.LSS_EVENTS",
    "$JS.API.STREAM.MSG.DELETE.LSS_STATUS",
)
FORBIDDEN_SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "pool-manager": ("_INBOX.sandbox-reconciler.>", "lss.evt.>", "lss.status.>"),
    "sandbox-reconciler": ("_INBOX.watcher.>", "lss.evt.sandbox.>"),
    "api": ("_INBOX.>", "lss.status.>"),
    "watcher": ("_INBOX.api.>",),
    "setup": ("_INBOX.api.>", "lss.status.>", "lss.evt.>"),
}
FORBIDDEN_CONSUMERS: dict[str, str] = {
    "pool-manager": "$JS.API.CONSUMER.MSG.NEXT.LSS_EVENTS.sandbox-reconciler",
    "sandbox-reconciler": "$JS.API.CONSUMER.DELETE.LSS_EVENTS.pool-manager",
    "api": "$JS.API.CONSUMER.MSG.NEXT.LSS_EVENTS.sandbox-reconciler",
}


@pytest.mark.parametrize("user", USERS)
async def test_what_each_user_must_not_do_is_refused(
    user: str, secured_nats: fixtures_nats.SecuredNats
) -> None:
    url, passwords = secured_nats.url, secured_nats.passwords
    seen: list[str] = []
    connection = await _connect(url, user, passwords[user], seen)
    try:
        refused = [*FORBIDDEN_PUBLISHES.get(user, ()), *FORBIDDEN_API]
        if user != "setup":
            refused.extend(DECLARATIONS)
        consumer = FORBIDDEN_CONSUMERS.get(user)
        if consumer is not None:
            refused.append(consumer)
        # The allowed first: one connection's messages are answered in order, so once every
        # refusal has arrived, a refusal of an allowed one would have too.
        for subject in (*ALLOWED_PUBLISHES[user], *refused):
            await connection.publish(subject, b"{}")
        for subject in FORBIDDEN_SUBSCRIPTIONS.get(user, ()):
            await connection.subscribe(subject)
        await connection.flush()

        def all_refused() -> bool:
            text = "\n".join(seen).lower()
            return all(f'publish to "{s}"'.lower() in text for s in refused) and all(
                f'subscription to "{s}"'.lower() in text
                for s in FORBIDDEN_SUBSCRIPTIONS.get(user, ())
            )

        await eventually.eventually(
            _async(all_refused), timeout_seconds=10, describe=f"{user}'s refusals"
        )
        text = "\n".join(seen).lower()
        assert not [s for s in ALLOWED_PUBLISHES[user] if f'publish to "{s}"' in text], seen
    finally:
        await connection.close()


def _async(check: Any) -> Any:
    async def run() -> bool:
        await asyncio.sleep(0)
        return bool(check())

    return run


async def test_the_api_users_consumers_never_deliver_into_the_status_stream(
    secured_nats: fixtures_nats.SecuredNats,
) -> None:
    """The API service may create ordered consumers of its own on LSS_STATUS (to wait for a
    phase); the server refuses one whose deliver subject would write into LSS_STATUS (a
    sandbox's record republished as another's), so that permission forges nothing."""
    setup = await _connect(secured_nats.url, "setup", secured_nats.passwords["setup"], [])
    try:
        await topology.declare_streams(setup.jetstream(), settings=settings_module.NatsSettings())
    finally:
        await setup.close()
    api = await _connect(secured_nats.url, "api", secured_nats.passwords["api"], [])
    try:
        with pytest.raises(nats.js.errors.BadRequestError, match="cycle"):
            await api.jetstream().add_consumer(
                "LSS_STATUS",
                config=nats.js.api.ConsumerConfig(
                    filter_subject="lss.status.sandbox.ns.attacker",
                    deliver_subject="lss.status.sandbox.ns.victim",
                ),
            )
    finally:
        await api.close()
