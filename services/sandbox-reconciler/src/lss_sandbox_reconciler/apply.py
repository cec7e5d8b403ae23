"""Run a Plan's actions through ``lss_common.kube`` in dependency waves, and write the status.

Independent writes run concurrently (:func:`schedule`): on the cold path the finalizer,
ServiceAccount and policies in one wave, then the pod and its Service together with the
status — two round trips instead of eight. Every action is idempotent:

- ``CREATE`` of a deterministic name: AlreadyExists is success (whoever created it, the next
  observation shows whether it is ours; the planner never adopts a stranger's object);
- ``REPLACE`` carries the observed resourceVersion; ``DELETE`` the observed UID as a
  precondition and tolerates 404; finalizer patches carry the Sandbox's resourceVersion;
- the status goes through the status subresource (PUT) with the resourceVersion of the
  Sandbox the plan was computed from — or of our own finalizer patch in the same pass, which
  changed nothing the plan read.

A 409 Conflict is raised as ``errors.ConflictError``: the handler re-observes and re-plans,
never repeats the write blindly. Within a wave every write finishes before an error is raised;
a refused write wins over a conflict (it is reported). The status is written with the last
create wave (it needs only our finalizer patch's resourceVersion) unless the Sandbox reports
a problem (a refused create is not retried beside a status that hides it), otherwise after
every child write, and always *before* ``REMOVE_FINALIZER`` (after it the object may be gone).
Every write attempted is counted in ``llmsafespace_sandbox_api_writes_total{kind,verb}``;
the stages' durations in ``llmsafespace_sandbox_pass_stage_seconds``. Deciding what to
write is the planner's job, not this module's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from typing import Any, Final

from lss_common import errors
from lss_common.kube import client as client_module
from lss_common.kube import objects, writes
from lss_common.models import kinds
from lss_common.models import sandbox as sandbox_model
from lss_common.observability import logs
from lss_sandbox_reconciler import lifecycle, observe, plan
from lss_sandbox_reconciler import metrics as metrics_module

_log = logging.getLogger(__name__)

RESOURCES: Final[dict[plan.Kind, objects.ApiResource]] = {
    plan.Kind.NAMESPACE: objects.NAMESPACE,
    plan.Kind.SERVICE_ACCOUNT: objects.SERVICE_ACCOUNT,
    plan.Kind.NETWORK_POLICY: objects.NETWORK_POLICY,
    plan.Kind.CILIUM_NETWORK_POLICY: observe.CILIUM_NETWORK_POLICY,
    plan.Kind.SERVICE: objects.SERVICE,
    plan.Kind.PERSISTENT_VOLUME_CLAIM: objects.PERSISTENT_VOLUME_CLAIM,
    plan.Kind.POD: objects.POD,
}
_VERBS: Final = {
    plan.Verb.CREATE: metrics_module.WriteVerb.CREATE,
    plan.Verb.REPLACE: metrics_module.WriteVerb.REPLACE,
    plan.Verb.DELETE: metrics_module.WriteVerb.DELETE,
}


class ApplyError(errors.LssError):
    """A child write failed for another reason than a conflict.

    ``cause`` is the translated API error (it decides the message's outcome); ``sandbox`` is
    the Sandbox as last written, so a condition can be recorded with its resourceVersion;
    ``cleanup`` says whether it was a delete (the finalizer stays, DESIGN §3.6).
    """

    def __init__(
        self,
        message: str,
        *,
        action: plan.Action,
        cause: errors.LssError,
        sandbox: sandbox_model.Sandbox,
    ) -> None:
        super().__init__(message)
        self.action = action
        self.cause = cause
        self.sandbox = sandbox

    @property
    def cleanup(self) -> bool:
        return self.action.verb is plan.Verb.DELETE


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    """What a plan's application did."""

    sandbox: sandbox_model.Sandbox
    """The Sandbox as last written (or as observed when nothing was written to it)."""
    writes: int
    status_written: bool
    finalizer_removed: bool
    pod_created: bool


def schedule(planned: plan.Plan) -> tuple[tuple[plan.Action, ...], ...]:
    """The plan's child writes (and ``ADD_FINALIZER``) as waves: one after another, the
    actions of one wave concurrently. Pure; ``REMOVE_FINALIZER`` is not scheduled here.

    - ``ADD_FINALIZER`` first, alone — unless every create carries an owner reference (the
      sandbox's own namespace): then the API server's garbage collector removes those
      children even if the sandbox vanished before its finalizer landed, and the patch runs
      with the first wave;
    - the isolation namespace's create, alone (everything else lives in it);
    - ServiceAccount, policies and claim creates and replaces, together;
    - the pod's create, after them: admission needs its ServiceAccount to exist (the
      ServiceAccount plugin looks it up even with ``automountServiceAccountToken: false``),
      the pod never exists without its default-deny policy, and a missing claim would only
      keep it unschedulable. The Service's create goes with the pod's: it needs nothing of
      the pod's (it selects it by labels whenever it appears), and it is the slowest create
      of the first wave (the API server allocates its ClusterIP);
    - deletes, one at a time in plan order (the pod first, the namespace last; a policy that
      lost its allowance after the policies that stay were written).
    """
    finalizer: list[plan.Action] = []
    namespace: list[plan.Action] = []
    first: list[plan.Action] = []
    pod: list[plan.Action] = []
    deletes: list[tuple[plan.Action, ...]] = []
    for action in planned.actions:
        if action.verb is plan.Verb.ADD_FINALIZER:
            finalizer.append(action)
        elif action.verb is plan.Verb.REMOVE_FINALIZER:
            continue
        elif action.verb is plan.Verb.DELETE:
            deletes.append((action,))
        elif action.kind is plan.Kind.NAMESPACE:
            namespace.append(action)
        elif action.kind is plan.Kind.POD:
            pod.append(action)
        else:
            first.append(action)
    if any(a.verb is plan.Verb.CREATE for a in pod):
        pod += [a for a in first if a.kind is plan.Kind.SERVICE and a.verb is plan.Verb.CREATE]
        first = [a for a in first if a not in pod]
    creates = [a for a in planned.actions if a.verb is plan.Verb.CREATE]
    collected = bool(creates) and all(_has_owner(a) for a in creates)
    if collected and not namespace:
        first = [*finalizer, *first]
        finalizer = []
    waves = [tuple(w) for w in (finalizer, namespace, first, pod) if w]
    return (*waves, *deletes)


def _has_owner(action: plan.Action) -> bool:
    metadata = (action.body or {}).get("metadata") or {}
    return bool(metadata.get("ownerReferences"))


async def apply_plan(
    kube: client_module.Kube,
    *,
    sandbox: sandbox_model.Sandbox,
    planned: plan.Plan,
    metrics: metrics_module.SandboxMetrics,
    strict_creates: bool = False,
) -> Applied:
    """Apply ``planned`` to ``sandbox`` (as observed); see the module docstring.

    ``strict_creates`` (the snapshot assumed the children absent): a CREATE that meets
    AlreadyExists raises ``ConflictError``, so the next pass reads what is there.
    """
    state = _State(sandbox)
    waves = schedule(planned)
    remove_finalizer = any(a.verb is plan.Verb.REMOVE_FINALIZER for a in planned.actions)
    # A pass that ends the sandbox (Failed, Terminated) writes that status before it deletes
    # anything: the failed pod is the only other record of why, and once it is terminating
    # a pass would read "pod being deleted" (Creating) and, the pod gone, create a new one.
    # Written after the deletes, a lost status write (a 409, a failed delete before it, a
    # crash) revived a Failed sandbox. Its release is retried by the terminal passes.
    status_first = (
        planned.status_changed
        and lifecycle.is_terminal(planned.status.phase)
        and not lifecycle.is_terminal(sandbox_model.status_of(sandbox).phase)
    )
    if status_first:
        await _write_status(kube, state=state, status=planned.status, metrics=metrics)
    # The status joins the last wave when that wave only creates (the pod): it needs the
    # resourceVersion of our finalizer patch (an earlier wave) and nothing the creates return.
    # Not while the Sandbox reports a problem (a refused pod create: a quota, a missing
    # RuntimeClass): written beside a create refused again, the status moved the condition
    # off the refusal and the refusal moved it back — two writes on every re-check. After
    # the creates, a refused create leaves the condition as it is: no write at all.
    status_with_last = (
        planned.status_changed
        and not status_first
        and not remove_finalizer
        and not lifecycle.reports_problem(sandbox_model.status_of(sandbox))
        and bool(waves)
        and all(a.verb is plan.Verb.CREATE for a in waves[-1])
        and not any(a.verb is plan.Verb.ADD_FINALIZER for a in waves[-1])
    )
    started = time.perf_counter()
    for index, wave in enumerate(waves):
        with_status = status_with_last and index == len(waves) - 1
        await _run_wave(
            kube,
            wave=wave,
            state=state,
            metrics=metrics,
            status=planned.status if with_status else None,
            strict_creates=strict_creates,
        )
    if waves:
        metrics.pass_stage_seconds.labels(stage=metrics_module.Stage.CHILDREN.value).observe(
            time.perf_counter() - started
        )
    if planned.status_changed and not status_with_last and not status_first:
        await _write_status(kube, state=state, status=planned.status, metrics=metrics)
    finalizer_removed = False
    if remove_finalizer and state.pending_deletes == 0:
        metrics.count_write(
            kind=metrics_module.WriteKind.SANDBOX, verb=metrics_module.WriteVerb.PATCH
        )
        state.writes += 1
        result = await writes.remove_finalizer(
            kube,
            resource=objects.SANDBOX,
            obj=state.sandbox,
            finalizer=kinds.FINALIZER,
            decode=sandbox_model.decode,
        )
        finalizer_removed = result is not None
    return Applied(
        sandbox=state.sandbox,
        writes=state.writes,
        status_written=state.status_written,
        finalizer_removed=finalizer_removed,
        pod_created=state.pod_created,
    )


class _State:
    """What one application has done so far (the Sandbox as last written, counts)."""

    def __init__(self, sandbox: sandbox_model.Sandbox) -> None:
        self.sandbox = sandbox
        self.writes = 0
        self.pod_created = False
        self.status_written = False
        self.pending_deletes = 0
        """Deletes whose child is only marked for deletion (not gone at once)."""


async def _run_wave(
    kube: client_module.Kube,
    *,
    wave: tuple[plan.Action, ...],
    state: _State,
    metrics: metrics_module.SandboxMetrics,
    status: sandbox_model.SandboxStatus | None,
    strict_creates: bool,
) -> None:
    """The wave's writes concurrently; every write finishes before an error is raised.

    A refused child write wins over a conflict (it is reported; a conflict only re-plans).
    """
    calls = [
        _run_action(kube, action=action, state=state, metrics=metrics, strict=strict_creates)
        for action in wave
    ]
    if status is not None:
        calls.append(_write_status(kube, state=state, status=status, metrics=metrics))
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        if not isinstance(failure, Exception):
            raise failure  # cancellation and the like
    for failure in failures:
        if isinstance(failure, ApplyError):
            # Report against the Sandbox as last written (our finalizer patch or status write
            # may have landed in this wave).
            failure.sandbox = state.sandbox
            raise failure
    if failures:
        raise failures[0]


async def _write_status(
    kube: client_module.Kube,
    *,
    state: _State,
    status: sandbox_model.SandboxStatus,
    metrics: metrics_module.SandboxMetrics,
) -> None:
    """PUT the status with the resourceVersion of the Sandbox as last written."""
    metrics.count_write(
        kind=metrics_module.WriteKind.SANDBOX_STATUS,
        verb=metrics_module.WriteVerb.UPDATE_STATUS,
    )
    state.writes += 1
    started = time.perf_counter()
    state.sandbox = await writes.update_status(
        kube,
        resource=objects.SANDBOX,
        obj=state.sandbox,
        status=status,
        decode=sandbox_model.decode,
    )
    state.status_written = True
    metrics.pass_stage_seconds.labels(stage=metrics_module.Stage.STATUS.value).observe(
        time.perf_counter() - started
    )


async def _run_action(
    kube: client_module.Kube,
    *,
    action: plan.Action,
    state: _State,
    metrics: metrics_module.SandboxMetrics,
    strict: bool,
) -> None:
    with logs.bind(
        action=action.verb.value,
        child_kind=None if action.kind is None else action.kind.value,
        child=action.name,
    ):
        if action.verb is plan.Verb.ADD_FINALIZER:
            metrics.count_write(
                kind=metrics_module.WriteKind.SANDBOX, verb=metrics_module.WriteVerb.PATCH
            )
            state.writes += 1
            updated = await writes.add_finalizer(
                kube,
                resource=objects.SANDBOX,
                obj=state.sandbox,
                finalizer=kinds.FINALIZER,
                decode=sandbox_model.decode,
            )
            if updated is not None:
                state.sandbox = updated
            return
        state.writes += 1
        observed = state.sandbox
        try:
            done = await _apply_child(kube, action=action, metrics=metrics, strict=strict)
        except errors.ConflictError:
            raise
        except errors.LssError as error:
            raise ApplyError(
                f"{action.verb} {action.kind} {action.namespace or ''}/{action.name}: {error}",
                action=action,
                cause=error,
                sandbox=observed,
            ) from error
        state.pod_created |= done is _Done.CREATED and action.kind is plan.Kind.POD
        state.pending_deletes += done is _Done.PENDING


class _Done(enum.Enum):
    """What one child write did."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    """A create that found the child there, a replace, or a delete that found it gone."""
    PENDING = "pending"
    """A delete that left the child marked for deletion, not gone."""


async def _apply_child(
    kube: client_module.Kube,
    *,
    action: plan.Action,
    metrics: metrics_module.SandboxMetrics,
    strict: bool = False,
) -> _Done:
    """One child write, and what it did."""
    if action.kind is None or action.name is None:
        raise ValueError(f"{action.verb} needs a kind and a name")
    resource = RESOURCES[action.kind]
    namespace = action.namespace if resource.namespaced else None
    metrics.count_write(kind=metrics_module.WriteKind(action.kind.value), verb=_VERBS[action.verb])
    if action.verb is plan.Verb.CREATE:
        try:
            await objects.create_object(
                kube, resource=resource, body=action.body, namespace=namespace
            )
        except errors.AlreadyExistsError as error:
            if strict:
                # The pass assumed no child exists (a new Sandbox) and planned accordingly.
                raise errors.ConflictError(
                    f"{action.kind} {action.namespace or ''}/{action.name} exists although "
                    "the sandbox is new; observing again"
                ) from error
            # Deterministic name: created by an earlier pass or another replica. Whether it
            # is ours is the next observation's question.
            _log.debug("child already exists")
            return _Done.UNCHANGED
        _log.debug("child created")
        return _Done.CREATED
    if action.verb is plan.Verb.REPLACE:
        if action.body is None or not action.resource_version:
            raise ValueError("a replace needs the body and the observed resourceVersion")
        body: dict[str, Any] = {
            **action.body,
            "metadata": {**action.body["metadata"], "resourceVersion": action.resource_version},
        }
        await objects.replace_object(
            kube, resource=resource, body=body, name=action.name, namespace=namespace
        )
        _log.info("child replaced")
        return _Done.UNCHANGED
    if action.verb is plan.Verb.DELETE:
        try:
            deletion = await writes.delete(
                kube, resource=resource, name=action.name, namespace=namespace, uid=action.uid
            )
        except errors.ConflictError:
            raise  # the UID precondition failed: someone re-created it; re-plan
        except errors.LssError:
            metrics.cleanup_failures_total.labels(kind=action.kind.value).inc()
            raise
        _log.debug("child deleted", extra={"deletion": deletion.value})
        return _Done.PENDING if deletion is writes.Deletion.PENDING else _Done.UNCHANGED
    raise ValueError(f"unexpected child action {action.verb}")
