"""preload: the argv is a fixed interpreter prefix plus the content as one element, whatever
the names and content hold (hypothesis); the interpreter follows the script's language or the
runtime's, and an unknown one is an error naming the field; the hash follows the steps; the
Preloaded marker's states (to run, running elsewhere, interrupted past its deadline, done,
failed); the statuses written for each; a step's verdict from an exec result; the pool's
failure record and its creation allowance (one WarmPod at a time, doubling delay, capped)."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.logic import pod_records
from lss_common.models import meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import lifecycle, names, observe, preload, preloading, sizing

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)


def ts(seconds_ago: float) -> str:
    return meta.format_timestamp(NOW - datetime.timedelta(seconds=seconds_ago))


def pool_spec(
    *scripts: dict[str, Any], runtime: str = "python:3.11"
) -> warmpool_model.WarmPoolSpec:
    return warmpool_model.from_dict(
        {
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "WarmPool",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"runtime": runtime, "minSize": 1, "preloadScripts": list(scripts)},
        }
    ).spec


def warm_pod(
    *, conditions: list[dict[str, Any]] | None = None, preload_hash: str = "h" * 64
) -> warmpod_model.WarmPod:
    return warmpod_model.from_dict(
        {
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "WarmPod",
            "metadata": {
                "name": "p-0",
                "namespace": "ns",
                "uid": "u-1",
                "generation": 1,
                "annotations": {preload.PRELOAD_HASH: preload_hash} if preload_hash else {},
            },
            "spec": {
                "poolRef": {"name": "p"},
                "runtime": "python:3.11",
                "securityLevel": "standard",
                "resources": {"cpu": "500m", "memory": "512Mi", "ephemeralStorage": "1Gi"},
            },
            "status": {
                "phase": "Pending",
                "podName": "p-0-u1",
                "podUID": "pod-uid-1",
                "podSpecHash": pod_records.stored_spec_hash({"spec": {}}),
                "conditions": conditions or [],
            },
        }
    )


def condition(status: str, reason: str, *, since: float) -> dict[str, Any]:
    return {
        "type": preload.CONDITION,
        "status": status,
        "reason": reason,
        "message": "",
        "lastTransitionTime": ts(since),
    }


# -- what runs ---------------------------------------------------------------------------------

LANGUAGES = st.sampled_from(sorted(preload.INTERPRETERS))
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=200)
SHELLISH = st.sampled_from(
    ["$(rm -rf /)", "`id`", "; reboot", "' \" \\", "\nEOF\n", "&& true ||", "${IFS}", "*?~#|<>"]
)


@given(
    language=LANGUAGES,
    name=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
    content=st.one_of(ANY_TEXT, SHELLISH, st.lists(SHELLISH).map("".join)),
)
def test_argv_is_the_fixed_prefix_and_the_content_verbatim(
    language: str, name: str, content: str
) -> None:
    steps = preload.steps_of(
        pool_spec({"name": name, "content": content, "language": language}),
        default_timeout_seconds=60,
    )
    (step,) = steps
    prefix = preload.INTERPRETERS[language]
    # Nothing but the content comes from the object, and it is one element, unchanged: no
    # shell on our side ever sees it, and the name never reaches the command line.
    assert step.argv == (*prefix, content)
    assert step.argv[: len(prefix)] == prefix
    assert step.name == name


@given(
    runtime_language=st.sampled_from(["python", "nodejs", "node", "javascript", "ruby", "sh"]),
    content=ANY_TEXT,
)
def test_unset_language_is_the_runtimes(runtime_language: str, content: str) -> None:
    (step,) = preload.steps_of(
        pool_spec({"name": "s", "content": content}, runtime=f"{runtime_language}:1"),
        default_timeout_seconds=60,
    )
    assert step.argv[-1] == content
    assert step.argv[:-1] in preload.INTERPRETERS.values()


def test_interpreters_per_language() -> None:
    spec = pool_spec(
        {"name": "a", "content": "x", "language": "shell"},
        {"name": "b", "content": "y"},
        {"name": "c", "content": "z", "language": "nodejs", "timeoutSeconds": 5},
    )
    steps = preload.steps_of(spec, default_timeout_seconds=60)
    assert [s.argv for s in steps] == [
        ("/bin/sh", "-c", "x"),
        ("python3", "-c", "y"),
        ("node", "-e", "z"),
    ]
    assert [s.timeout_seconds for s in steps] == [60, 60, 5]
    assert [s.index for s in steps] == [0, 1, 2]
    assert preload.deadline_seconds(steps) == 125 + preload.DEADLINE_SLACK_SECONDS


def test_unknown_language_names_the_field() -> None:
    with pytest.raises(preload.PreloadConfigError) as caught:
        preload.steps_of(
            pool_spec(
                {"name": "a", "content": "x", "language": "shell"},
                {"name": "b", "content": "y"},
                runtime="cobol:85",
            ),
            default_timeout_seconds=60,
        )
    assert caught.value.field == "spec.preloadScripts[1].language"
    assert "cobol" in str(caught.value)
    assert "spec.runtime" in str(caught.value)
    assert caught.value.reason == preload.LANGUAGE_UNSUPPORTED


def test_hash_follows_the_steps() -> None:
    one = preload.steps_of(pool_spec({"name": "a", "content": "x"}), default_timeout_seconds=60)
    assert preload.preload_hash(()) == ""
    assert len(preload.preload_hash(one)) == 64
    assert preload.preload_hash(one) == preload.preload_hash(
        preload.steps_of(pool_spec({"name": "a", "content": "x"}), default_timeout_seconds=60)
    )
    for other in (
        {"name": "a", "content": "x2"},
        {"name": "b", "content": "x"},
        {"name": "a", "content": "x", "timeoutSeconds": 5},
        {"name": "a", "content": "x", "language": "shell"},
    ):
        changed = preload.steps_of(pool_spec(other), default_timeout_seconds=60)
        assert preload.preload_hash(changed) != preload.preload_hash(one), other


# -- the WarmPod's side ------------------------------------------------------------------------


def test_needs_preload_only_on_the_way_to_ready_and_until_preloaded() -> None:
    assert preload.needs_preload(warm_pod(), becoming_ready=True)
    assert not preload.needs_preload(warm_pod(), becoming_ready=False)
    assert not preload.needs_preload(warm_pod(preload_hash=""), becoming_ready=True)
    done = warm_pod(conditions=[condition("True", "Succeeded", since=5)])
    assert not preload.needs_preload(done, becoming_ready=True)
    running = warm_pod(conditions=[condition("Unknown", "Running", since=5)])
    assert preload.needs_preload(running, becoming_ready=True)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], (preload.State.TO_RUN, None)),
        ([condition("Unknown", "Running", since=10)], (preload.State.RUNNING, 90.0)),
        ([condition("Unknown", "Running", since=100)], (preload.State.INTERRUPTED, None)),
        ([condition("Unknown", "Running", since=150)], (preload.State.INTERRUPTED, None)),
        ([condition("True", "Succeeded", since=10)], (preload.State.DONE, None)),
        ([condition("False", "ScriptFailed", since=10)], (preload.State.FAILED, None)),
    ],
)
def test_state_of_the_marker(
    conditions: list[dict[str, Any]], expected: tuple[preload.State, float | None]
) -> None:
    found = preload.state_of(warm_pod(conditions=conditions), now=NOW, deadline_after_seconds=100)
    assert found == expected


def steps() -> tuple[preload.Step, ...]:
    return preload.steps_of(
        pool_spec({"name": "one", "content": "a"}, {"name": "two", "content": "b"}),
        default_timeout_seconds=60,
    )


def test_the_marker_names_the_pod_no_status_named_yet() -> None:
    named_already = warm_pod()
    # A WarmPod whose pod became Ready before any status named it.
    obj = msgspec.structs.replace(
        named_already, status=warmpod_model.WarmPodStatus(phase="Pending")
    )
    marker = preload.marker_status(obj, steps=steps(), now=NOW, pod_name="py-0-abc")
    assert (marker.pod_name, marker.pod_namespace) == ("py-0-abc", obj.metadata.namespace)
    named = msgspec.structs.replace(obj, status=marker)
    again = preload.marker_status(named, steps=steps(), now=NOW, pod_name="other")
    assert again.pod_name == "py-0-abc"  # a name already there stays


def test_marker_then_success_statuses() -> None:
    obj = warm_pod()
    marker = preload.marker_status(obj, steps=steps(), now=NOW)
    assert marker.phase == "Pending"
    (found,) = marker.conditions or []
    assert (found.type, found.status, found.reason) == (preload.CONDITION, "Unknown", "Running")
    assert found.last_transition_time == meta.format_timestamp(NOW)
    marked = msgspec.structs.replace(obj, status=marker)
    ready = lifecycle.plan_warm_pod(
        marked,
        pod=_ready_pod(marked),
        now=NOW,
        heartbeat_interval_seconds=0,
        ready_timeout_seconds=300,
    ).status
    assert ready is not None
    assert ready.phase == "Ready"
    done = preload.succeeded_status(marked, ready, steps=steps(), now=NOW)
    assert done.phase == "Ready"
    by_type = {c.type: c for c in done.conditions or []}
    assert (by_type[preload.CONDITION].status, by_type[preload.CONDITION].reason) == (
        "True",
        "Succeeded",
    )
    assert "one, two" in by_type[preload.CONDITION].message
    assert by_type["Ready"].status == "True"


def _ready_pod(obj: warmpod_model.WarmPod) -> dict[str, Any]:
    return {
        "metadata": {
            "name": warmpod_model.status_of(obj).pod_name,
            "uid": "pod-uid-1",
            "ownerReferences": [{"uid": obj.metadata.uid, "controller": True, "kind": "WarmPod"}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.9",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "sandbox", "ready": True, "state": {"running": {}}}],
        },
    }


def test_failed_status_names_the_script_in_both_conditions() -> None:
    verdict = preload.judge_step(
        steps()[1],
        total=2,
        exit_code=3,
        timed_out=False,
        message="command terminated with non-zero exit code",
        stdout=b"",
        stderr=b"Traceback: boom\n",
    )
    assert verdict.reason is preload.Reason.SCRIPT_FAILED
    failed = preload.failed_status(
        warm_pod(), reason=verdict.reason, message=verdict.message, now=NOW
    )
    assert failed.phase == "Failed"
    by_type = {c.type: c for c in failed.conditions or []}
    assert (by_type["Ready"].status, by_type["Ready"].reason) == ("False", "PreloadFailed")
    assert (by_type[preload.CONDITION].status, by_type[preload.CONDITION].reason) == (
        "False",
        "ScriptFailed",
    )
    for found in by_type.values():
        assert 'preload script "two" (2 of 2) failed: exit code 3' in found.message
        assert "Traceback: boom" in found.message
    # Deleted for its preload, whichever pass deletes it; a WarmPod that failed otherwise is
    # deleted for its pod.
    with_status = msgspec.structs.replace(warm_pod(), status=failed)
    assert preload.deletion_reason(with_status) is sizing.DeleteReason.PRELOAD_FAILED
    assert preload.deletion_reason(warm_pod()) is sizing.DeleteReason.POD_FAILED


@pytest.mark.parametrize(
    ("result", "reason", "words"),
    [
        ({"exit_code": 0}, None, "succeeded"),
        ({"exit_code": 2, "stderr": b"x" * 5000 + b"END"}, preload.Reason.SCRIPT_FAILED, "END"),
        (
            {"exit_code": None, "message": "exit status 9"},
            preload.Reason.SCRIPT_FAILED,
            "exit status 9",
        ),
        ({"exit_code": None, "stdout": b"only out"}, preload.Reason.SCRIPT_FAILED, "only out"),
        ({"exit_code": None, "timed_out": True}, preload.Reason.SCRIPT_TIMED_OUT, "within 60 s"),
    ],
)
def test_judge_step(result: dict[str, Any], reason: preload.Reason | None, words: str) -> None:
    values: dict[str, Any] = {
        "exit_code": None,
        "timed_out": False,
        "message": None,
        "stdout": b"",
        "stderr": b"",
    }
    values.update(result)
    verdict = preload.judge_step(steps()[0], total=2, **values)
    assert verdict.reason is reason
    assert words in verdict.message
    assert len(verdict.message) < preload.OUTPUT_IN_MESSAGE_BYTES + 200


def test_exec_failed_and_interrupted_verdicts_and_results() -> None:
    failed = preload.exec_failed(steps()[0], total=2, error="forbidden")
    assert failed.reason is preload.Reason.EXEC_FAILED
    assert '"one"' in failed.message
    assert "forbidden" in failed.message
    stopped = preload.interrupted(steps())
    assert stopped.reason is preload.Reason.INTERRUPTED
    assert preload.result_of(preload.Reason.INTERRUPTED) is preload.Result.INTERRUPTED
    with pytest.raises(ValueError, match="not a finished preload"):
        preload.result_of(preload.Reason.RUNNING)


# -- the pool's side ---------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped() -> None:
    delays = [preload.backoff_seconds(n, base_seconds=10, max_seconds=600) for n in range(9)]
    assert delays == [0, 10, 20, 40, 80, 160, 320, 600, 600]
    assert preload.backoff_seconds(10_000, base_seconds=10, max_seconds=600) == 600


def member(phase: str, *, deleting: bool = False) -> sizing.Member:
    return sizing.Member(
        name=f"m-{phase}", uid=phase, phase=phase, created_at=NOW, deleting=deleting
    )


def allowance(
    record: warmpool_model.PreloadStatus | None, *members: sizing.Member
) -> preload.Allowance:
    return preload.creation_allowance(
        record, members=members, now=NOW, base_seconds=10, max_seconds=600
    )


def test_creation_allowance() -> None:
    assert allowance(None) == preload.Allowance(max_creates=None)
    assert allowance(warmpool_model.PreloadStatus(consecutive_failures=0)).max_creates is None
    failing = warmpool_model.PreloadStatus(consecutive_failures=3, last_failure_time=ts(15))
    # third failure: 40 s after the last one; 15 s have passed
    assert allowance(failing) == preload.Allowance(max_creates=0, retry_after_seconds=25)
    over = warmpool_model.PreloadStatus(consecutive_failures=3, last_failure_time=ts(40))
    assert allowance(over) == preload.Allowance(max_creates=1)
    # one probe at a time: a pending WarmPod (or one without a phase yet) holds the next
    assert allowance(over, member("Pending")).max_creates == 0
    assert allowance(over, member("")).max_creates == 0
    assert allowance(over, member("Ready"), member("Assigned")).max_creates == 1
    assert allowance(over, member("Pending", deleting=True)).max_creates == 1
    # a probe this replica created that the (watch-cache) list does not show yet holds it too
    held = preload.creation_allowance(
        over, members=(), now=NOW, base_seconds=10, max_seconds=600, in_flight=1
    )
    assert held.max_creates == 0


def test_failure_record_counts_and_success_resets() -> None:
    first = preload.recorded_failure(None, message="m1", now=NOW)
    assert (first.consecutive_failures, first.last_failure_message) == (1, "m1")
    assert first.last_failure_time == meta.format_timestamp(NOW)
    second = preload.recorded_failure(first, message="x" * 10_000, now=NOW)
    assert second.consecutive_failures == 2
    assert len(second.last_failure_message or "") <= 4096
    assert preload.recorded_success(None) is None
    assert preload.recorded_success(warmpool_model.PreloadStatus(consecutive_failures=0)) is None
    reset = preload.recorded_success(second)
    assert reset is not None
    assert reset.consecutive_failures == 0


def test_scripts_run_in_the_warm_pods_own_pod_whatever_its_status_says() -> None:
    """The exec target is the deterministic pod name whose ownership the pass checked, never
    ``status.podName``: whoever may write a WarmPod's status could otherwise point the
    pool's scripts at any pod of the namespace."""
    warm_pod = warmpod_model.WarmPod(
        metadata=meta.ObjectMeta(name="py-0", namespace="team-a", uid="wp-uid"),
        spec=warmpod_model.WarmPodSpec(
            pool_ref=warmpod_model.PoolRef(name="py"),
            runtime="python:3.11",
            security_level="standard",
            resources=warmpod_model.WarmPodResources(
                cpu="500m", memory="512Mi", ephemeral_storage="1Gi"
            ),
        ),
        status=warmpod_model.WarmPodStatus(pod_name="someone-elses-pod"),
    )
    assert preloading.pod_name_of(warm_pod) == names.pod_name("py-0", uid="wp-uid")


def test_a_warm_pods_pool_is_in_its_own_namespace() -> None:
    """A poolRef naming another namespace names no pool: such a WarmPod (made by hand) is an
    orphan, never built from, nor preloaded by, another namespace's pool."""

    def warm_pod(pool_namespace: str | None) -> warmpod_model.WarmPod:
        return warmpod_model.WarmPod(
            metadata=meta.ObjectMeta(name="py-0", namespace="team-a", uid="wp-uid"),
            spec=warmpod_model.WarmPodSpec(
                pool_ref=warmpod_model.PoolRef(name="py", namespace=pool_namespace),
                runtime="python:3.11",
                security_level="standard",
                resources=warmpod_model.WarmPodResources(
                    cpu="500m", memory="512Mi", ephemeral_storage="1Gi"
                ),
            ),
        )

    assert observe.pool_key(warm_pod(None)) == ("team-a", "py")
    assert observe.pool_key(warm_pod("team-a")) == ("team-a", "py")
    assert observe.pool_key(warm_pod("team-b")) is None
