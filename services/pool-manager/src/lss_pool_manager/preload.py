"""Preload scripts: what runs in a warm pod before it is Ready, and what the outcome means (pure).

**What runs.** Each ``spec.preloadScripts[i]`` becomes one :class:`Step`: the argv
``(*interpreter, content)``, where the interpreter is a fixed prefix chosen by the script's
``language`` (unset: the runtime's language, the part of ``spec.runtime`` before ``:``):

==========  =====================  =====================================================
language    argv prefix            why this form
==========  =====================  =====================================================
shell       ``/bin/sh -c``         the content *is* a shell script, run by the pod's shell
python      ``python3 -c``         the runtime's interpreter, content as its program text
nodejs      ``node -e``            likewise (aliases ``node``, ``javascript``)
ruby        ``ruby -e``            likewise
==========  =====================  =====================================================

The content is one argv element, sent through ``pods/exec`` (no shell on our side or the
API server's): nothing in it needs quoting or escaping, and nothing can break out of it
into *our* command line (the seed pasted it into a heredoc under ``/tmp/<name>.sh``,
INVENTORY §10.5.32). The script's name and every other piece of metadata never enter the
argv at all: they appear only in conditions, logs and metrics. The content is, by design,
program text for the pod's interpreter, running as the pod's own non-root user inside the
pod's sandbox — the pool owner's code in the pool owner's pod.

**Where "ran" is recorded.** On the WarmPod, in the ``Preloaded`` condition, written through
the status subresource with the resourceVersion read:

- ``Unknown/Running`` — written *before* the first exec (the marker). Its transition time
  plus the scripts' total timeout (and :data:`DEADLINE_SLACK_SECONDS`) is the deadline.
  A marker found before its deadline means another pass (another replica) is running them:
  wait. A marker found after it means that runner died mid-way: the scripts may have run
  in part, so the WarmPod fails (``Interrupted``) and its pod is replaced. Scripts therefore
  run **at most once** per pod, whatever crashes, restarts or replicas do.
- ``True/Succeeded`` — written with ``phase: Ready`` in the same status write: a WarmPod is
  never Ready without it.
- ``False/<reason>`` — written with ``phase: Failed`` and ``Ready=False/PreloadFailed``
  naming the script; the WarmPod is then deleted (its pod goes by garbage collection).

Which scripts a WarmPod was built for is the annotation :data:`PRELOAD_HASH` (sha256 of the
steps, empty when the pool has none), set at creation. A pool whose scripts change makes its
unclaimed WarmPods *outdated* (deleted and replaced), like any other configuration change.

**Backoff.** The pool's ``status.preload`` counts WarmPods failed by a preload in a row
(reset by a success). While it is above zero, the pool creates WarmPods one at a time, the
next one only :func:`backoff_seconds` after the last failure (doubling, capped): a broken
script costs one pod per delay instead of a create storm.

No I/O, no clock: ``now`` and settings are arguments.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from lss_common.logic import conditions
from lss_common.models import kinds, meta
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import lifecycle, sizing

Phase = warmpod_model.Phase

#: sha256 of the pool's preload steps a WarmPod was built for ("" or absent: none).
PRELOAD_HASH: Final = f"{kinds.GROUP}/preload-hash"
CONDITION: Final = "Preloaded"
#: Added to the scripts' total timeout before a Running marker counts as abandoned: covers
#: the moments between the marker's write and the first exec, and clock skew between replicas.
DEADLINE_SLACK_SECONDS: Final = 30.0
#: Bytes of a failed script's stderr (or stdout) quoted in its condition.
OUTPUT_IN_MESSAGE_BYTES: Final = 512

INTERPRETERS: Final[Mapping[str, tuple[str, ...]]] = {
    "shell": ("/bin/sh", "-c"),
    "python": ("python3", "-c"),
    "nodejs": ("node", "-e"),
    "ruby": ("ruby", "-e"),
}
# RuntimeEnvironment languages are free-form; these spellings name an interpreter above.
_ALIASES: Final[Mapping[str, str]] = {
    "node": "nodejs",
    "javascript": "nodejs",
    "sh": "shell",
}


class Reason(enum.StrEnum):
    """Reasons of the WarmPod's ``Preloaded`` condition (and of its Ready=False on failure)."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    SCRIPT_FAILED = "ScriptFailed"
    SCRIPT_TIMED_OUT = "ScriptTimedOut"
    EXEC_FAILED = "ExecFailed"
    INTERRUPTED = "Interrupted"


class Result(enum.StrEnum):
    """How a preload ended (metric label ``result``)."""

    SUCCEEDED = "succeeded"
    SCRIPT_FAILED = "script_failed"
    SCRIPT_TIMED_OUT = "script_timed_out"
    EXEC_FAILED = "exec_failed"
    INTERRUPTED = "interrupted"


_RESULTS: Final[Mapping[Reason, Result]] = {
    Reason.SUCCEEDED: Result.SUCCEEDED,
    Reason.SCRIPT_FAILED: Result.SCRIPT_FAILED,
    Reason.SCRIPT_TIMED_OUT: Result.SCRIPT_TIMED_OUT,
    Reason.EXEC_FAILED: Result.EXEC_FAILED,
    Reason.INTERRUPTED: Result.INTERRUPTED,
}


def result_of(reason: Reason) -> Result:
    """The metric label of a finished preload's condition reason."""
    found = _RESULTS.get(reason)
    if found is None:
        raise ValueError(f"{reason} is not a finished preload")
    return found


#: The WarmPod's Ready condition reason when a preload failed.
PRELOAD_FAILED: Final = "PreloadFailed"
#: The pool's Ready condition reason for a preload configuration that cannot run.
LANGUAGE_UNSUPPORTED: Final = "PreloadLanguageUnsupported"


class PreloadConfigError(ValueError):
    """The pool's preload scripts cannot be run as configured (``field`` names the culprit)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = LANGUAGE_UNSUPPORTED


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One script, ready to exec."""

    index: int
    name: str
    argv: tuple[str, ...]
    timeout_seconds: float


class State(enum.StrEnum):
    """Where a WarmPod stands with its preload."""

    DONE = "done"
    TO_RUN = "to_run"
    RUNNING = "running"
    """A marker within its deadline: another pass is running the scripts."""
    INTERRUPTED = "interrupted"
    FAILED = "failed"


# -- what runs -----------------------------------------------------------------------------


def interpreter_for(language: str | None, *, runtime: str, field: str) -> tuple[str, ...]:
    """The argv prefix for a script of ``language`` (None: the runtime's language)."""
    chosen = language if language else runtime.partition(":")[0]
    chosen = _ALIASES.get(chosen, chosen)
    prefix = INTERPRETERS.get(chosen)
    if prefix is None:
        source = field if language else "spec.runtime"
        raise PreloadConfigError(
            f"{field}: no interpreter for language {chosen!r} (from {source}); set "
            f"{field.rsplit('.', 1)[0]}.language to one of {', '.join(sorted(INTERPRETERS))}",
            field=field,
        )
    return prefix


def build_argv(interpreter: Sequence[str], *, content: str) -> tuple[str, ...]:
    """The exec argv: the interpreter's fixed prefix, then the content as one element."""
    return (*interpreter, content)


def steps_of(
    spec: warmpool_model.WarmPoolSpec, *, default_timeout_seconds: float
) -> tuple[Step, ...]:
    """The pool's preload steps in order (empty without scripts); ``PreloadConfigError`` if one
    has no interpreter."""
    steps: list[Step] = []
    for index, script in enumerate(spec.preload_scripts or ()):
        field = f"spec.preloadScripts[{index}].language"
        interpreter = interpreter_for(script.language, runtime=spec.runtime, field=field)
        steps.append(
            Step(
                index=index,
                name=script.name,
                argv=build_argv(interpreter, content=script.content),
                timeout_seconds=float(script.timeout_seconds or default_timeout_seconds),
            )
        )
    return tuple(steps)


def preload_hash(steps: Sequence[Step]) -> str:
    """sha256 of the steps (names, argv, timeouts) as 64 hex characters; "" without steps."""
    if not steps:
        return ""
    canonical = json.dumps(
        [[step.name, list(step.argv), step.timeout_seconds] for step in steps],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def hash_of(obj: warmpod_model.WarmPod) -> str:
    """The preload hash a WarmPod was built for ("" when none)."""
    return (obj.metadata.annotations or {}).get(PRELOAD_HASH, "")


def deadline_seconds(steps: Sequence[Step]) -> float:
    """How long after its marker a preload of ``steps`` must have finished."""
    return sum(step.timeout_seconds for step in steps) + DEADLINE_SLACK_SECONDS


# -- the WarmPod's side ----------------------------------------------------------------------


def needs_preload(obj: warmpod_model.WarmPod, *, becoming_ready: bool) -> bool:
    """Whether the WarmPod must go through its preload before the Ready that its lifecycle
    plans now (``becoming_ready``)."""
    if not becoming_ready or not hash_of(obj):
        return False
    status = warmpod_model.status_of(obj)
    return not conditions.is_condition_true(status.conditions, condition_type=CONDITION)


def state_of(
    obj: warmpod_model.WarmPod, *, now: datetime.datetime, deadline_after_seconds: float
) -> tuple[State, float | None]:
    """The WarmPod's preload state, and for ``RUNNING`` the seconds left until its deadline."""
    status = warmpod_model.status_of(obj)
    found = conditions.find_condition(status.conditions, condition_type=CONDITION)
    if found is None:
        return State.TO_RUN, None
    if found.status == conditions.TRUE:
        return State.DONE, None
    if found.status == conditions.FALSE:
        return State.FAILED, None
    started = (
        meta.parse_timestamp(found.last_transition_time) if found.last_transition_time else now
    )
    left = (started - now).total_seconds() + deadline_after_seconds
    if left <= 0:
        return State.INTERRUPTED, None
    return State.RUNNING, left


def marker_of(obj: warmpod_model.WarmPod) -> tuple[str, str | None, str | None] | None:
    """The ``Preloaded`` condition as it identifies one run (None: no condition): a run
    finishes only the WarmPod whose marker is still the one it wrote."""
    found = conditions.find_condition(
        warmpod_model.status_of(obj).conditions, condition_type=CONDITION
    )
    if found is None:
        return None
    return (found.status, found.reason, found.last_transition_time)


def _set(
    obj: warmpod_model.WarmPod,
    status: warmpod_model.WarmPodStatus,
    *,
    state: str,
    reason: str,
    message: str,
    now: datetime.datetime,
) -> warmpod_model.WarmPodStatus:
    return msgspec.structs.replace(
        status,
        conditions=conditions.set_condition(
            status.conditions,
            condition_type=CONDITION,
            status=state,
            reason=reason,
            message=message,
            now=now,
            observed_generation=obj.metadata.generation,
        ),
    )


def marker_status(
    obj: warmpod_model.WarmPod,
    *,
    steps: Sequence[Step],
    now: datetime.datetime,
    pod_name: str | None = None,
) -> warmpod_model.WarmPodStatus:
    """The status recording that this pass starts the scripts in ``pod_name`` (phase
    unchanged; the pod named if no status named it yet)."""
    names = ", ".join(step.name for step in steps)
    status = warmpod_model.status_of(obj)
    if pod_name and not status.pod_name:
        status = msgspec.structs.replace(
            status, pod_name=pod_name, pod_namespace=obj.metadata.namespace
        )
    return _set(
        obj,
        status,
        state=conditions.UNKNOWN,
        reason=Reason.RUNNING,
        message=f"running {len(steps)} preload scripts: {names}",
        now=now,
    )


def succeeded_status(
    obj: warmpod_model.WarmPod,
    status: warmpod_model.WarmPodStatus,
    *,
    steps: Sequence[Step],
    now: datetime.datetime,
) -> warmpod_model.WarmPodStatus:
    """``status`` (the lifecycle's next status) with ``Preloaded=True``."""
    names = ", ".join(step.name for step in steps)
    return _set(
        obj,
        status,
        state=conditions.TRUE,
        reason=Reason.SUCCEEDED,
        message=f"ran {len(steps)} preload scripts: {names}",
        now=now,
    )


def failed_status(
    obj: warmpod_model.WarmPod, *, reason: Reason, message: str, now: datetime.datetime
) -> warmpod_model.WarmPodStatus:
    """Phase ``Failed`` with ``Preloaded=False`` and ``Ready=False/PreloadFailed``."""
    status = _set(
        obj,
        warmpod_model.status_of(obj),
        state=conditions.FALSE,
        reason=reason,
        message=message,
        now=now,
    )
    return msgspec.structs.replace(
        status,
        phase=warmpod_model.Phase.FAILED.value,
        observed_generation=obj.metadata.generation,
        conditions=conditions.set_condition(
            status.conditions,
            condition_type=lifecycle.READY_CONDITION,
            status=conditions.FALSE,
            reason=PRELOAD_FAILED,
            message=message,
            now=now,
            observed_generation=obj.metadata.generation,
        ),
    )


def deletion_reason(obj: warmpod_model.WarmPod) -> sizing.DeleteReason:
    """Why a Failed WarmPod is deleted, whichever pass deletes it: the preloader right after
    failing it, or a pass of the WarmPod's own that found it Failed first."""
    for condition in warmpod_model.status_of(obj).conditions or ():
        if condition.type != lifecycle.READY_CONDITION:
            continue
        if condition.reason == PRELOAD_FAILED:
            return sizing.DeleteReason.PRELOAD_FAILED
        if condition.reason in lifecycle.UNVERIFIED_REASONS:
            return sizing.DeleteReason.UNVERIFIED
    return sizing.DeleteReason.POD_FAILED


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """One step's outcome: ``reason`` None means it succeeded."""

    reason: Reason | None
    message: str


def _tail(data: bytes) -> str:
    return data[-OUTPUT_IN_MESSAGE_BYTES:].decode(errors="replace").strip()


def judge_step(
    step: Step,
    *,
    total: int,
    exit_code: int | None,
    timed_out: bool,
    message: str | None,
    stdout: bytes,
    stderr: bytes,
) -> Verdict:
    """What an exec's result means for the step (the result's fields, not the client's type,
    keep this module free of the Kubernetes client)."""
    which = f'preload script "{step.name}" ({step.index + 1} of {total})'
    if timed_out:
        return Verdict(
            Reason.SCRIPT_TIMED_OUT,
            f"{which} did not finish within {step.timeout_seconds:g} s",
        )
    if exit_code == 0:
        return Verdict(None, f"{which} succeeded")
    output = _tail(stderr) or _tail(stdout)
    code = f"exit code {exit_code}" if exit_code is not None else (message or "failed")
    detail = f"{which} failed: {code}"
    if exit_code is not None and message:
        detail = f"{detail} ({message})"
    if output:
        detail = f"{detail}; output: {output}"
    return Verdict(Reason.SCRIPT_FAILED, detail)


def exec_failed(step: Step, *, total: int, error: str) -> Verdict:
    """A step whose exec could not be made or completed (API refusal, connection, ...)."""
    return Verdict(
        Reason.EXEC_FAILED,
        f'preload script "{step.name}" ({step.index + 1} of {total}) could not be run: {error}',
    )


def interrupted(steps: Sequence[Step]) -> Verdict:
    return Verdict(
        Reason.INTERRUPTED,
        f"the preload of {len(steps)} scripts was started but not finished within "
        f"{deadline_seconds(steps):g} s (the pool manager running it stopped): the scripts may "
        "have run in part, so the pod is replaced",
    )


# -- the pool's side -------------------------------------------------------------------------


def backoff_seconds(failures: int, *, base_seconds: float, max_seconds: float) -> float:
    """Delay before the next WarmPod after ``failures`` preload failures in a row."""
    if failures <= 0:
        return 0.0
    exponent = min(failures - 1, 30)  # beyond 2**30 every cap is reached anyway
    return float(min(max_seconds, base_seconds * (2**exponent)))


@dataclasses.dataclass(frozen=True, slots=True)
class Allowance:
    """How many WarmPods the pool may create now because of preload failures."""

    max_creates: int | None
    """None: no limit from preload."""
    retry_after_seconds: float | None = None


def creation_allowance(
    record: warmpool_model.PreloadStatus | None,
    *,
    members: Sequence[sizing.Member],
    now: datetime.datetime,
    base_seconds: float,
    max_seconds: float,
    in_flight: int = 0,
) -> Allowance:
    """While preloads keep failing: one WarmPod at a time, after the backoff delay.

    ``in_flight``: this replica's creates that ``members`` (a watch-cache list) does not show
    yet; each is a probe on its way like a listed Pending one.
    """
    failures = (record.consecutive_failures or 0) if record is not None else 0
    if failures <= 0:
        return Allowance(max_creates=None)
    pending = in_flight + sum(
        1
        for member in members
        if not member.deleting and (member.phase or Phase.PENDING) == Phase.PENDING
    )
    if pending > 0:
        # The probe is on its way; its outcome (a hint) wakes the pool.
        return Allowance(max_creates=0)
    last = record.last_failure_time if record is not None else None
    if last is None:
        return Allowance(max_creates=1)
    due = meta.parse_timestamp(last) + datetime.timedelta(
        seconds=backoff_seconds(failures, base_seconds=base_seconds, max_seconds=max_seconds)
    )
    if now < due:
        return Allowance(max_creates=0, retry_after_seconds=(due - now).total_seconds())
    return Allowance(max_creates=1)


def recorded_failure(
    record: warmpool_model.PreloadStatus | None, *, message: str, now: datetime.datetime
) -> warmpool_model.PreloadStatus:
    """The pool's preload record after one more failure."""
    failures = (record.consecutive_failures or 0) if record is not None else 0
    return warmpool_model.PreloadStatus(
        consecutive_failures=failures + 1,
        last_failure_time=meta.format_timestamp(now),
        last_failure_message=message[:4000],
    )


def recorded_success(
    record: warmpool_model.PreloadStatus | None,
) -> warmpool_model.PreloadStatus | None:
    """The pool's preload record after a success, or None when it need not change."""
    if record is None or not record.consecutive_failures:
        return None
    return msgspec.structs.replace(record, consecutive_failures=0)
