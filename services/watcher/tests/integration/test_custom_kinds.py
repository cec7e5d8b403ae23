"""Create, update and delete of each of the five kinds produces the right hints, on the real
kube-apiserver and nats-server.

Matrix (each kind: Sandbox, SandboxProfile, WarmPool, WarmPod, RuntimeEnvironment):
- create → ADDED on ``<prefix>.evt.<kind>.<ns>.<name>`` carrying uid and resourceVersion, with
  ``Nats-Msg-Id`` ``<kind>/<ns>/<name>/<rv>``; update → MODIFIED with the new version; delete
  → DELETED; RuntimeEnvironment uses the cluster namespace token;
- a WarmPod change also wakes its WarmPool (spec.poolRef);
- a name with dots round-trips through the subject;
- an object that exists before the watcher starts is announced by the initial list and by the
  start round, and readiness waits for both.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import nats.aio.client
import pytest

from lss_common.logic import subjects
from lss_common.models import kinds
from lss_watcher import settings as settings_module
from lss_watcher import testing

pytestmark = pytest.mark.integration

KINDS = [resource.singular for resource in kinds.ALL]


def plural_of(kind: str) -> str:
    return next(r.plural for r in kinds.ALL if r.singular == kind)


def is_namespaced(kind: str) -> bool:
    return next(r.namespaced for r in kinds.ALL if r.singular == kind)


@pytest.mark.parametrize("kind", KINDS)
async def test_create_update_delete_of_each_kind(
    kind: str,
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings()
    cleanup_streams(settings)
    namespaced = is_namespaced(kind)
    namespace = objects.namespace if namespaced else None
    name = f"{kind[:6]}-{uuid.uuid4().hex[:8]}"
    plural = plural_of(kind)
    prefix = settings.nats.subject_prefix

    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings),
    ):
        created = await objects.create(
            plural, testing.custom_body(kind, name), namespaced=namespaced
        )
        uid = created["metadata"]["uid"]
        version = created["metadata"]["resourceVersion"]
        added = await log.wait_for(
            lambda r: r.key == (kind, namespace, name) and r.event.resource_version == version,
            describe=f"ADDED hint for {kind} {name} at {version}",
        )
        assert added.event.event_type == "ADDED"
        assert added.event.uid == uid
        assert added.subject == subjects.event_subject(
            kind, namespace=namespace, name=name, prefix=prefix
        )
        assert added.msg_id == subjects.message_id(
            kind, namespace=namespace, name=name, resource_version=version
        )

        patched = await objects.patch(
            plural, name, {"metadata": {"labels": {"touched": "yes"}}}, namespaced=namespaced
        )
        new_version = patched["metadata"]["resourceVersion"]
        modified = await log.wait_for(
            lambda r: r.key == (kind, namespace, name) and r.event.resource_version == new_version,
            describe=f"MODIFIED hint for {kind} {name} at {new_version}",
        )
        assert modified.event.event_type == "MODIFIED"

        await objects.delete(plural, name, namespaced=namespaced)
        deleted = await log.wait_for(
            lambda r: r.key == (kind, namespace, name) and r.event.event_type == "DELETED",
            describe=f"DELETED hint for {kind} {name}",
        )
        assert deleted.event.uid == uid
        assert int(deleted.event.resource_version or 0) > int(new_version)

    own = log.for_key(kind, namespace, name)
    assert [r.event.event_type for r in own] == ["ADDED", "MODIFIED", "DELETED"]
    assert len({r.msg_id for r in own}) == 3
    if kind == "runtimeenvironment":
        assert added.subject.split(".")[3] == subjects.CLUSTER_TOKEN


async def test_warm_pod_wakes_its_pool(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    pool = "pool-a"
    body: dict[str, Any] = testing.custom_body("warmpod", "wp-1")
    body["spec"]["poolRef"] = {"name": pool}
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings),
    ):
        created = await objects.create("warmpods", body)
        version = created["metadata"]["resourceVersion"]
        woken = await log.wait_for(
            lambda r: r.key == ("warmpool", objects.namespace, pool),
            describe="the pool's hint",
        )
        assert woken.event.event_type == "MODIFIED"
        assert woken.event.resource_version is None
        assert woken.msg_id == subjects.message_id(
            "warmpool",
            namespace=objects.namespace,
            name=pool,
            resource_version=version,
            round_id="warmpod",
        )
        await log.wait_for(
            lambda r: r.key == ("warmpod", objects.namespace, "wp-1"),
            describe="the warm pod's own hint",
        )


async def test_dotted_name_round_trips_through_the_subject(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    name = "my.sandbox.v1-2"
    prefix = settings.nats.subject_prefix
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings),
    ):
        await objects.create("sandboxes", testing.custom_body("sandbox", name))
        received = await log.wait_for(
            lambda r: r.event.name == name, describe="the dotted sandbox's hint"
        )
    assert received.subject.count(".") == 4
    assert subjects.parse_event_subject(received.subject, prefix=prefix) == (
        "sandbox",
        objects.namespace,
        name,
    )


async def test_initial_list_announces_existing_objects_before_ready(
    nc: nats.aio.client.Client,
    objects: testing.Objects,
    make_settings: Callable[..., settings_module.WatcherSettings],
    cleanup_streams: Callable[[settings_module.WatcherSettings], None],
) -> None:
    settings = make_settings(namespace=objects.namespace)
    cleanup_streams(settings)
    names = [f"pre-{index}" for index in range(20)]
    versions = {}
    for name in names:
        created = await objects.create("sandboxes", testing.custom_body("sandbox", name))
        versions[name] = created["metadata"]["resourceVersion"]
    async with (
        testing.hint_log(nc.jetstream(), settings.nats) as log,
        testing.RunningWatcher(settings) as running,
    ):
        # Ready means every initial list is published: the hints are already stored.
        await log.wait_for(
            lambda r: (
                {(x.event.name, x.event.resource_version) for x in log.received}
                >= set(versions.items())
            ),
            describe="every pre-existing sandbox announced",
            timeout_seconds=10,
        )
        assert running.sample("llmsafespace_watcher_objects_tracked", kind="sandbox") == len(names)
    # The initial list's ADDED, then the start round's RESYNC: both before "ready".
    assert [r.event.event_type for r in log.for_key("sandbox", objects.namespace, "pre-0")] == [
        "ADDED",
        "RESYNC",
    ]
