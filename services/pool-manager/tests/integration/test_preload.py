"""Preload scripts against the real kube-apiserver + kwok (whose exec runs the command on this
host, in the platform's ``exec`` directory: the scripts only append to a file of the test's
own there), fed by the real watcher:

- every script of the pool runs once per warm pod, in order, with its interpreter (shell and
  python), before the WarmPod is Ready; the WarmPod records ``Preloaded=True`` and the
  preload hash it was built for;
- a failing script fails the WarmPod (``Failed``, ``Ready=False/PreloadFailed``,
  ``Preloaded=False/ScriptFailed`` naming the script and quoting its stderr), no WarmPod is
  ever Ready, the pool records the failures and backs off (``PreloadFailing``, one WarmPod
  at a time: with a long backoff, no third WarmPod is created after two failures);
- a script whose language has no interpreter fails the pool with a condition naming the
  field, and no WarmPod is created;
- a failure record whose writes keep meeting 409 Conflict (a webhook of the test's) is
  given up after ``RECORD_ATTEMPTS`` re-reads, the WarmPod still failed and deleted, and
  the next failure is recorded;
- a pool manager killed (SIGKILL) while a script runs: its successor does not run the
  scripts again, it waits for the preload's deadline and fails the WarmPod as Interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch

from lss_common.kube import client, objects
from lss_common.models import kinds
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_common.testing import eventually
from lss_dev import platform as platform_module
from lss_dev import webhook
from lss_pool_manager import preload, preloading
from lss_pool_manager import settings as settings_module

from .conftest import (
    Stack,
    by_phase,
    counted,
    create_pool,
    environment,
    get_pool,
    wait_consumer,
    warm_pods,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def output(platform: platform_module.Platform) -> Iterator[Path]:
    """A file of this test's own in the directory kwok's exec runs in."""
    path = platform.state_dir / "exec" / f"preload-{uuid.uuid4().hex}.txt"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _condition(obj: warmpod_model.WarmPod, condition_type: str) -> Any:
    status = warmpod_model.status_of(obj)
    return next((c for c in status.conditions or () if c.type == condition_type), None)


async def test_scripts_run_in_order_before_ready(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str, output: Path
) -> None:
    manager = await stack.start_manager()
    await stack.start_watcher()
    scripts = [
        {"name": "first", "language": "shell", "content": f"echo first >> {output.name}"},
        {
            "name": "second",
            "language": "python",
            "content": f"open({output.name!r}, 'a').write('second\\n')",
            "timeoutSeconds": 30,
        },
        {
            # Metacharacters are the shell script's own business: the content reaches the
            # pod's interpreter verbatim, as one argument.
            "name": "third",
            "language": "shell",
            "content": f"printf '%s\\n' 'third $(not run) `nor this`; \"q\"' >> {output.name}",
        },
    ]
    await create_pool(
        kube,
        namespace=namespace,
        name="pre",
        runtime=runtime_name,
        minSize=1,
        preloadScripts=scripts,
    )

    async def ready() -> warmpod_model.WarmPod | None:
        found = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
        return found[0] if found else None

    warm_pod: warmpod_model.WarmPod = await eventually.eventually(
        ready, timeout_seconds=60, describe="a preloaded Ready WarmPod"
    )
    assert (
        await asyncio.to_thread(output.read_text)
        == 'first\nsecond\nthird $(not run) `nor this`; "q"\n'
    )
    preloaded = _condition(warm_pod, preload.CONDITION)
    assert (preloaded.status, preloaded.reason) == ("True", "Succeeded")
    assert "first, second, third" in preloaded.message
    assert len(preload.hash_of(warm_pod)) == 64
    assert _condition(warm_pod, "Ready").status == "True"
    # Counted once its write returned (the watch may show the write a moment before).
    await eventually.eventually(
        lambda: manager.sample("llmsafespace_warmpool_preloads_total", result="succeeded") == 1,
        timeout_seconds=10,
        describe="the preload counted",
    )

    async def filled() -> bool:
        pool = await get_pool(kube, namespace=namespace, name="pre")
        ready_condition = next(
            (c for c in warmpool_model.status_of(pool).conditions or () if c.type == "Ready"),
            None,
        )
        return ready_condition is not None and ready_condition.reason == "Filled"

    await eventually.eventually(filled, timeout_seconds=30, describe="the pool is Filled")


class WarmPodWatch:
    """Every version of the namespace's WarmPods the API server sends (a failed WarmPod is
    deleted in the pass that fails it, so only a watch sees its last status)."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.seen: list[warmpod_model.WarmPod] = []
        self._api = k8s.CustomObjectsApi(api)
        self._namespace = namespace
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WarmPodWatch:
        self._task = asyncio.create_task(self._run())
        await self._started.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        stream = watch.Watch()
        self._started.set()
        async for event in stream.stream(
            self._api.list_namespaced_custom_object,
            kinds.GROUP,
            "v1",
            self._namespace,
            kinds.WARM_POD.plural,
            timeout_seconds=300,
        ):
            self.seen.append(warmpod_model.from_dict(event["object"]))


@pytest.fixture
async def warm_pod_watch(kube_api: k8s.ApiClient, namespace: str) -> AsyncIterator[WarmPodWatch]:
    async with WarmPodWatch(kube_api, namespace) as found:
        yield found


def _without_replacements(stack: Stack) -> settings_module.PoolManagerSettings:
    """Settings whose preload backoff outlasts the test: after a preload failure, no new
    WarmPod is created."""
    settings = stack.settings()
    preload_options = settings.preload.model_copy(update={"failure_backoff_seconds": 3600.0})
    return settings.model_copy(update={"preload": preload_options})


async def test_failing_script_fails_the_warm_pod_and_backs_off(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    output: Path,
    warm_pod_watch: WarmPodWatch,
) -> None:
    # A backoff longer than the test: after the first failures, no further WarmPod.
    manager = await stack.start_manager_with(_without_replacements(stack))
    await stack.start_watcher()
    scripts = [
        {"name": "fine", "language": "shell", "content": f"echo fine >> {output.name}"},
        {"name": "broken", "language": "shell", "content": "echo 'no such module' >&2; exit 7"},
    ]
    await create_pool(
        kube,
        namespace=namespace,
        name="bad",
        runtime=runtime_name,
        minSize=2,
        preloadScripts=scripts,
    )

    async def failing() -> warmpool_model.WarmPool | None:
        pool = await get_pool(kube, namespace=namespace, name="bad")
        record = warmpool_model.status_of(pool).preload
        ready = next(
            (c for c in warmpool_model.status_of(pool).conditions or () if c.type == "Ready"),
            None,
        )
        if (
            record is not None
            and record.consecutive_failures == 2
            and ready is not None
            and ready.reason == "PreloadFailing"
            and not await warm_pods(kube, namespace=namespace)
        ):
            return pool
        return None

    pool: warmpool_model.WarmPool = await eventually.eventually(
        failing, timeout_seconds=60, describe="two WarmPods failed by the preload, none left"
    )
    record = warmpool_model.status_of(pool).preload
    assert record is not None
    assert 'preload script "broken" (2 of 2) failed' in (record.last_failure_message or "")
    assert "no such module" in (record.last_failure_message or "")
    # The first script ran in both pods (in order, the second failed after it).
    assert await asyncio.to_thread(output.read_text) == "fine\nfine\n"
    # Both WarmPods were Failed with conditions naming the script, and none was ever Ready.
    failed = {
        wp.metadata.name: wp
        for wp in warm_pod_watch.seen
        if warmpod_model.status_of(wp).phase == warmpod_model.Phase.FAILED
    }
    assert len(failed) == 2
    for wp in failed.values():
        preloaded = _condition(wp, preload.CONDITION)
        assert (preloaded.status, preloaded.reason) == ("False", "ScriptFailed")
        assert 'preload script "broken"' in preloaded.message
        ready = _condition(wp, "Ready")
        assert (ready.status, ready.reason) == ("False", "PreloadFailed")
    assert not [
        wp
        for wp in warm_pod_watch.seen
        if warmpod_model.status_of(wp).phase == warmpod_model.Phase.READY
    ]
    await counted(manager, "llmsafespace_warmpool_preloads_total", 2, result="script_failed")
    await counted(manager, "llmsafespace_warmpool_pods_deleted_total", 2, reason="preload_failed")
    # The backoff (3600 s) holds creation: the pool created exactly the two that failed.
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 2


async def test_unknown_language_fails_the_pool(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str
) -> None:
    manager = await stack.start_manager()
    await stack.start_watcher()
    # The test runtime's language (l<hex>) has no interpreter; the script does not name one.
    await create_pool(
        kube,
        namespace=namespace,
        name="nolang",
        runtime=runtime_name,
        minSize=1,
        preloadScripts=[{"name": "warm", "content": "print(1)"}],
    )

    async def refused() -> Any:
        pool = await get_pool(kube, namespace=namespace, name="nolang")
        ready = next(
            (c for c in warmpool_model.status_of(pool).conditions or () if c.type == "Ready"),
            None,
        )
        return ready if ready is not None and ready.reason == preload.LANGUAGE_UNSUPPORTED else None

    ready = await eventually.eventually(
        refused, timeout_seconds=30, describe="Ready=False/PreloadLanguageUnsupported"
    )
    assert ready.status == "False"
    assert "spec.preloadScripts[0].language" in ready.message
    assert await warm_pods(kube, namespace=namespace) == []
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 0


async def test_a_preload_cut_by_kill_9_fails_the_warm_pod_and_never_runs_twice(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    output: Path,
    warm_pod_watch: WarmPodWatch,
) -> None:
    """The pool manager running a WarmPod's scripts dies (SIGKILL). Its successor finds the
    preload's marker: it waits for the deadline (the scripts' timeouts plus a slack) instead
    of running them again, then fails the WarmPod as Interrupted (the scripts may have run in
    part) and deletes it. The script ran once."""
    settings = _without_replacements(stack)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lss_pool_manager",
        env={**os.environ, **environment(settings)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await wait_consumer(stack, settings.pool.consumer_name)
        await stack.start_watcher()
        script = f"echo run >> {output.name}; sleep 20"
        await create_pool(
            kube,
            namespace=namespace,
            name="cut",
            runtime=runtime_name,
            minSize=1,
            preloadScripts=[
                {"name": "slow", "language": "shell", "content": script, "timeoutSeconds": 10}
            ],
        )

        async def running() -> bool:
            if not await asyncio.to_thread(output.exists):
                return False
            items = await warm_pods(kube, namespace=namespace)
            marked = [wp for wp in items if _condition(wp, preload.CONDITION) is not None]
            return bool(marked) and _condition(marked[0], preload.CONDITION).reason == "Running"

        await eventually.eventually(running, timeout_seconds=60, describe="the script running")
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    successor = await stack.start_manager_with(settings)

    async def interrupted() -> bool:
        return any(
            warmpod_model.status_of(wp).phase == warmpod_model.Phase.FAILED
            and _condition(wp, preload.CONDITION).reason == "Interrupted"
            for wp in warm_pod_watch.seen
        ) and not await warm_pods(kube, namespace=namespace)

    await eventually.eventually(
        interrupted, timeout_seconds=90, describe="Failed as Interrupted, then deleted"
    )
    assert await asyncio.to_thread(output.read_text) == "run\n"
    await counted(successor, "llmsafespace_warmpool_preloads_total", 1, result="interrupted")
    # Counted once its pod's deletion is done too (retire.py), a moment after the WarmPod's.
    await counted(successor, "llmsafespace_warmpool_pods_deleted_total", 1, reason="preload_failed")
    assert successor.sample("llmsafespace_warmpool_pods_created_total") == 0
    pool = await get_pool(kube, namespace=namespace, name="cut")
    record = warmpool_model.status_of(pool).preload
    assert record is not None
    assert record.consecutive_failures == 1


async def test_a_failure_record_that_keeps_conflicting_is_given_up_and_the_next_one_lands(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A validating webhook of the test's makes the API server answer the pool's preload
    record writes with 409 Conflict, as writers racing each re-read would. The failed
    WarmPod is still failed, counted and deleted; the record is tried ``RECORD_ATTEMPTS``
    times (each after a re-read), then given up with a warning. Its cost: that failure is
    not in the record, so its replacement is not held back; once the writes go through, the
    replacement's failure is recorded and its backoff holds the pool."""
    scripts = [{"name": "broken", "language": "shell", "content": "exit 3"}]
    await create_pool(
        kube,
        namespace=namespace,
        name="bad",
        runtime=runtime_name,
        minSize=1,
        preloadScripts=scripts,
    )

    probe = webhook.status_probe(kube, resource=objects.WARM_POOL, namespace=namespace, name="bad")

    def record_changes(request: Mapping[str, Any]) -> bool:
        old = ((request.get("oldObject") or {}).get("status") or {}).get("preload")
        return ((request.get("object") or {}).get("status") or {}).get("preload") != old

    answer = webhook.conflicting(
        times=preloading.RECORD_ATTEMPTS,
        when=record_changes,
        message="the test's webhook: the pool changed",
    )

    rule = {
        "apiGroups": [kinds.GROUP],
        "apiVersions": ["*"],
        "operations": ["UPDATE"],
        "resources": ["warmpools/status"],
    }
    async with webhook.serving(
        kube, namespace=namespace, rule=rule, answer=answer, probe=probe
    ) as hook:
        manager = await stack.start_manager_with(_without_replacements(stack))
        await stack.start_watcher()

        async def recorded() -> warmpool_model.WarmPool | None:
            pool = await get_pool(kube, namespace=namespace, name="bad")
            record = warmpool_model.status_of(pool).preload
            if record is None or await warm_pods(kube, namespace=namespace):
                return None
            return pool

        pool: warmpool_model.WarmPool = await eventually.eventually(
            recorded, timeout_seconds=60, describe="a failure recorded, no WarmPod left"
        )
    # The first failure's record met only conflicts, the second's went through.
    assert len(hook.denied) == preloading.RECORD_ATTEMPTS
    record = warmpool_model.status_of(pool).preload
    assert record is not None
    assert record.consecutive_failures == 1
    assert 'preload script "broken" (1 of 1) failed' in (record.last_failure_message or "")
    given_up = [
        r for r in caplog.records if r.getMessage() == "pool preload record not written: conflicts"
    ]
    assert len(given_up) == 1
    await counted(manager, "llmsafespace_warmpool_preloads_total", 2, result="script_failed")
    await counted(manager, "llmsafespace_warmpool_pods_deleted_total", 2, reason="preload_failed")
    # The recorded failure's backoff (3600 s) holds creation: no third WarmPod.
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 2


def _preloaded_of(obj: Mapping[str, Any] | None) -> str | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or ():
        if item.get("type") == preload.CONDITION:
            return str(item.get("status"))
    return None


async def test_a_successful_preload_whose_outcome_write_conflicts_still_succeeds(
    stack: Stack, kube: client.Kube, namespace: str, runtime_name: str, output: Path
) -> None:
    """The scripts succeed, and the write of their outcome meets 409 Conflict twice (a test
    webhook answers so). The run re-reads the WarmPod, finds its marker still there, and
    writes again: the WarmPod becomes Ready and Preloaded, the scripts ran once. Before, the
    error left the marker to run out, and a preload that had succeeded was failed
    ``Interrupted``."""
    scripts = [{"name": "once", "language": "shell", "content": f"echo once >> {output.name}"}]
    await create_pool(
        kube,
        namespace=namespace,
        name="pre",
        runtime=runtime_name,
        minSize=1,
        preloadScripts=scripts,
    )

    # The probe writes the pool's status (no pool manager runs yet): never denied.
    probe = webhook.status_probe(kube, resource=objects.WARM_POOL, namespace=namespace, name="pre")

    def preloaded_now(request: Mapping[str, Any]) -> bool:
        """A WarmPod's status write that sets Preloaded=True (the run's outcome)."""
        if (request.get("resource") or {}).get("resource") != "warmpods":
            return False
        old = _preloaded_of(request.get("oldObject"))
        return _preloaded_of(request.get("object")) == "True" and old != "True"

    answer = webhook.conflicting(times=2, when=preloaded_now)

    rule = {
        "apiGroups": [kinds.GROUP],
        "apiVersions": ["*"],
        "operations": ["UPDATE"],
        "resources": ["warmpods/status", "warmpools/status"],
    }
    async with webhook.serving(
        kube, namespace=namespace, rule=rule, answer=answer, probe=probe
    ) as hook:
        manager = await stack.start_manager()
        await stack.start_watcher()

        async def ready() -> warmpod_model.WarmPod | None:
            found = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
            return found[0] if found else None

        warm_pod: warmpod_model.WarmPod = await eventually.eventually(
            ready, timeout_seconds=60, describe="a preloaded Ready WarmPod"
        )
    assert len(hook.denied) == 2
    preloaded = _condition(warm_pod, preload.CONDITION)
    assert (preloaded.status, preloaded.reason) == ("True", "Succeeded")
    assert await asyncio.to_thread(output.read_text) == "once\n"
    # Counted once its write returned (the watch may show the write a moment before).
    await eventually.eventually(
        lambda: manager.sample("llmsafespace_warmpool_preloads_total", result="succeeded") == 1,
        timeout_seconds=10,
        describe="the preload counted",
    )
    await counted(manager, "llmsafespace_warmpool_preloads_total", 0, result="interrupted")


async def test_an_exec_the_api_server_refuses_fails_the_warm_pod_as_exec_failed(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    output: Path,
    warm_pod_watch: WarmPodWatch,
) -> None:
    """The scripts cannot be run at all: the API server refuses the ``pods/exec`` (a test
    webhook denies it with 403, as a policy forbidding exec would). The WarmPod fails with
    ``Preloaded=False/ExecFailed`` naming the refusal, is deleted and counted, the pool
    records the failure and backs off, and no script ran."""
    probe = _config_map_probe(kube, namespace)

    def answer(request: Mapping[str, Any]) -> webhook.Denial | None:
        if (request.get("resource") or {}).get("resource") != "pods":
            return None
        return webhook.Denial(
            code=403, reason="Forbidden", message="the test's webhook: no exec here"
        )

    async with webhook.serving(
        kube, namespace=namespace, rule=_EXEC_RULE, answer=answer, probe=probe
    ):
        manager = await stack.start_manager_with(_without_replacements(stack))
        await stack.start_watcher()
        scripts = [{"name": "never", "language": "shell", "content": f"echo x >> {output.name}"}]
        await create_pool(
            kube,
            namespace=namespace,
            name="noexec",
            runtime=runtime_name,
            minSize=1,
            preloadScripts=scripts,
        )

        async def recorded() -> warmpool_model.WarmPool | None:
            pool = await get_pool(kube, namespace=namespace, name="noexec")
            record = warmpool_model.status_of(pool).preload
            if record is None or await warm_pods(kube, namespace=namespace):
                return None
            return pool

        pool: warmpool_model.WarmPool = await eventually.eventually(
            recorded, timeout_seconds=60, describe="the failure recorded, no WarmPod left"
        )
    record = warmpool_model.status_of(pool).preload
    assert record is not None
    assert record.consecutive_failures == 1
    assert "forbidden" in (record.last_failure_message or "")
    failed = [
        wp
        for wp in warm_pod_watch.seen
        if warmpod_model.status_of(wp).phase == warmpod_model.Phase.FAILED
    ]
    assert failed
    preloaded = _condition(failed[-1], preload.CONDITION)
    assert (preloaded.status, preloaded.reason) == ("False", "ExecFailed")
    assert not await asyncio.to_thread(output.exists)
    await counted(manager, "llmsafespace_warmpool_preloads_total", 1, result="exec_failed")
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 1


async def test_an_exec_that_never_reached_the_pod_is_tried_again(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    output: Path,
) -> None:
    """The API server answers the first two execs with 503 (a test webhook, as a blip of the
    API server or of its link to the kubelet would): the script never started, so the exec
    is tried again; it runs once, the WarmPod becomes Ready, and no failure is recorded."""
    probe = _config_map_probe(kube, namespace)

    refused: list[str] = []

    def answer(request: Mapping[str, Any]) -> webhook.Denial | None:
        if (request.get("resource") or {}).get("resource") != "pods" or len(refused) >= 2:
            return None
        refused.append(str(request.get("name")))
        return webhook.Denial(
            code=503, reason="ServiceUnavailable", message="the test's webhook: a blip"
        )

    async with webhook.serving(
        kube, namespace=namespace, rule=_EXEC_RULE, answer=answer, probe=probe
    ):
        manager = await stack.start_manager()
        await stack.start_watcher()
        scripts = [{"name": "once", "language": "shell", "content": f"echo x >> {output.name}"}]
        await create_pool(
            kube,
            namespace=namespace,
            name="blip",
            runtime=runtime_name,
            minSize=1,
            preloadScripts=scripts,
        )

        async def ready() -> warmpod_model.WarmPod | None:
            items = await warm_pods(kube, namespace=namespace)
            done = [
                wp for wp in items if warmpod_model.status_of(wp).phase == warmpod_model.Phase.READY
            ]
            return done[0] if len(items) == 1 and done else None

        await eventually.eventually(ready, timeout_seconds=60, describe="the WarmPod Ready")
    assert len(refused) == 2
    assert (await asyncio.to_thread(output.read_text)).splitlines() == ["x"]
    pool = await get_pool(kube, namespace=namespace, name="blip")
    record = warmpool_model.status_of(pool).preload
    assert record is None or record.consecutive_failures == 0
    await counted(manager, "llmsafespace_warmpool_preloads_total", 1, result="succeeded")
    assert manager.sample("llmsafespace_warmpool_preloads_total", result="exec_failed") == 0
    assert manager.sample("llmsafespace_warmpool_pods_created_total") == 1


# Execs, and the config maps of the probe that tells when the webhook is in effect.
_EXEC_RULE: dict[str, Any] = {
    "apiGroups": [""],
    "apiVersions": ["v1"],
    "operations": ["CONNECT", "CREATE"],
    "resources": ["pods/exec", "configmaps"],
}


def _config_map_probe(kube: client.Kube, namespace: str) -> Callable[[], Awaitable[None]]:
    """A write :data:`_EXEC_RULE` matches (a config map made and deleted)."""
    name = f"probe-{uuid.uuid4().hex[:6]}"

    async def probe() -> None:
        await objects.create_object(
            kube,
            resource=objects.CONFIG_MAP,
            namespace=namespace,
            body={"metadata": {"name": name}},
        )
        await objects.delete_object(
            kube, resource=objects.CONFIG_MAP, namespace=namespace, name=name
        )

    return probe


async def test_a_pod_that_dies_while_its_scripts_run_is_never_ready_and_is_replaced(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    output: Path,
    warm_pod_watch: WarmPodWatch,
) -> None:
    """The pod is deleted while its preload scripts run (a node lost): once they finish, the
    pod is read again, so the WarmPod is failed ``PodGone`` and deleted instead of written
    Ready, and the pool replaces it with one whose scripts run in a pod that lives."""
    manager = await stack.start_manager()
    await stack.start_watcher()
    scripts = [
        {
            "name": "slow",
            "language": "shell",
            "content": f"sleep 2; echo done >> {output.name}",
            "timeoutSeconds": 30,
        }
    ]
    await create_pool(
        kube,
        namespace=namespace,
        name="dies",
        runtime=runtime_name,
        minSize=1,
        preloadScripts=scripts,
    )

    async def running() -> warmpod_model.WarmPod | None:
        for wp in await warm_pods(kube, namespace=namespace):
            marker = _condition(wp, preload.CONDITION)
            if marker is not None and marker.reason == "Running":
                return wp
        return None

    first: warmpod_model.WarmPod = await eventually.eventually(
        running, timeout_seconds=60, describe="scripts running"
    )
    # (The marker may come before any status named the pod: the pod's name is derived.)
    pod_name = preloading.pod_name_of(first)
    await objects.delete_object(kube, resource=objects.POD, namespace=namespace, name=pod_name)

    async def replaced() -> warmpod_model.WarmPod | None:
        ready = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
        others = [wp for wp in ready if wp.metadata.uid != first.metadata.uid]
        return others[0] if others else None

    await eventually.eventually(replaced, timeout_seconds=60, describe="a replacement Ready")
    versions = [wp for wp in warm_pod_watch.seen if wp.metadata.uid == first.metadata.uid]
    phases = [warmpod_model.status_of(wp).phase for wp in versions]
    assert warmpod_model.Phase.READY not in phases
    failed = [wp for wp in versions if warmpod_model.status_of(wp).phase == "Failed"]
    assert failed
    ready = _condition(failed[-1], "Ready")
    assert (ready.status, ready.reason) == ("False", "PodGone")
    await eventually.eventually(
        lambda: (
            manager.sample("llmsafespace_warmpool_pods_deleted_total", reason="pod_failed") == 1
        ),
        timeout_seconds=10,
        describe="counted",
    )


async def test_a_pod_gone_before_its_scripts_start_fails_for_its_pod_not_a_script(
    stack: Stack,
    kube: client.Kube,
    namespace: str,
    runtime_name: str,
    output: Path,
    warm_pod_watch: WarmPodWatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pod is deleted after the marker is written and before the first exec (the race
    of the test above, forced): the exec cannot start. The WarmPod fails ``PodGone``, for its
    pod, not ``PreloadFailed``: the pool's preload record stays clean (no creation backoff
    for a node lost), and the pool replaces it."""
    real = preloading.Preloader._run_steps
    deleted: list[str] = []

    async def pod_gone_first(
        self: preloading.Preloader, *, namespace: str, pod_name: str, steps: Any
    ) -> Any:
        if not deleted:
            deleted.append(pod_name)
            await objects.delete_object(
                kube, resource=objects.POD, namespace=namespace, name=pod_name
            )
        return await real(self, namespace=namespace, pod_name=pod_name, steps=steps)

    monkeypatch.setattr(preloading.Preloader, "_run_steps", pod_gone_first)
    await stack.start_manager()
    await stack.start_watcher()
    scripts = [{"name": "mark", "language": "shell", "content": f"echo done >> {output.name}"}]
    await create_pool(
        kube,
        namespace=namespace,
        name="gone",
        runtime=runtime_name,
        minSize=1,
        preloadScripts=scripts,
    )

    async def replaced() -> warmpod_model.WarmPod | None:
        ready = by_phase(await warm_pods(kube, namespace=namespace), "Ready")
        return ready[0] if ready and deleted else None

    await eventually.eventually(replaced, timeout_seconds=60, describe="a replacement Ready")
    first = [
        wp
        for wp in warm_pod_watch.seen
        if preloading.pod_name_of(wp) == deleted[0]
        and warmpod_model.status_of(wp).phase == "Failed"
    ]
    assert first, "the first WarmPod was failed"
    ready_condition = _condition(first[-1], "Ready")
    assert (ready_condition.status, ready_condition.reason) == ("False", "PodGone")
    pool = await objects.get_object(
        kube,
        resource=objects.WARM_POOL,
        namespace=namespace,
        name="gone",
        decode=warmpool_model.decode,
    )
    record = warmpool_model.status_of(pool).preload
    assert record is None or not record.consecutive_failures
