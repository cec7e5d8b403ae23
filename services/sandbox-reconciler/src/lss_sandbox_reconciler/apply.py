"""Run a Plan's actions in order through ``lss_common.kube``, then write the status.

Every action is idempotent:

- ``CREATE`` of a deterministic name: AlreadyExists is success (whoever created it, the next
  observation shows whether it is ours; the planner never adopts a stranger's object);
- ``REPLACE`` carries the observed resourceVersion; ``DELETE`` the observed UID as a
  precondition and tolerates 404; finalizer patches carry the Sandbox's resourceVersion;
- the status goes through the status subresource (PUT) with the resourceVersion of the
  Sandbox the plan was computed from — or of our own finalizer patch in the same pass, which
  changed nothing the plan read.

A 409 Conflict is raised as ``errors.ConflictError``: the handler re-observes and re-plans,
never repeats the write blindly. The status is written *before* ``REMOVE_FINALIZER`` (after
it the object may be gone). Every write attempted is counted in
``llmsafespace_sandbox_api_writes_total{kind,verb}``. Deciding what to write is the planner's
job, not this module's.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Final

from lss_common import errors
from lss_common.kube import client as client_module
from lss_common.kube import objects, writes
from lss_common.models import kinds
from lss_common.models import sandbox as sandbox_model
from lss_common.observability import logs
from lss_sandbox_reconciler import metrics as metrics_module
from lss_sandbox_reconciler import observe, plan

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


async def apply_plan(
    kube: client_module.Kube,
    *,
    sandbox: sandbox_model.Sandbox,
    planned: plan.Plan,
    metrics: metrics_module.SandboxMetrics,
) -> Applied:
    """Apply ``planned`` to ``sandbox`` (as observed); see the module docstring."""
    current = sandbox
    count = 0
    pod_created = False
    remove_finalizer = False
    for action in planned.actions:
        with logs.bind(
            action=action.verb.value,
            child_kind=None if action.kind is None else action.kind.value,
            child=action.name,
        ):
            if action.verb is plan.Verb.REMOVE_FINALIZER:
                remove_finalizer = True  # last, after the status
                continue
            if action.verb is plan.Verb.ADD_FINALIZER:
                metrics.count_write(
                    kind=metrics_module.WriteKind.SANDBOX, verb=metrics_module.WriteVerb.PATCH
                )
                count += 1
                updated = await writes.add_finalizer(
                    kube,
                    resource=objects.SANDBOX,
                    obj=current,
                    finalizer=kinds.FINALIZER,
                    decode=sandbox_model.decode,
                )
                if updated is not None:
                    current = updated
                continue
            count += 1
            try:
                created = await _apply_child(kube, action=action, metrics=metrics)
            except errors.ConflictError:
                raise
            except errors.LssError as error:
                raise ApplyError(
                    f"{action.verb} {action.kind} {action.namespace or ''}/{action.name}: {error}",
                    action=action,
                    cause=error,
                    sandbox=current,
                ) from error
            pod_created |= created and action.kind is plan.Kind.POD
    status_written = False
    if planned.status_changed:
        metrics.count_write(
            kind=metrics_module.WriteKind.SANDBOX_STATUS,
            verb=metrics_module.WriteVerb.UPDATE_STATUS,
        )
        count += 1
        current = await writes.update_status(
            kube,
            resource=objects.SANDBOX,
            obj=current,
            status=planned.status,
            decode=sandbox_model.decode,
        )
        status_written = True
    finalizer_removed = False
    if remove_finalizer:
        metrics.count_write(
            kind=metrics_module.WriteKind.SANDBOX, verb=metrics_module.WriteVerb.PATCH
        )
        count += 1
        result = await writes.remove_finalizer(
            kube,
            resource=objects.SANDBOX,
            obj=current,
            finalizer=kinds.FINALIZER,
            decode=sandbox_model.decode,
        )
        finalizer_removed = result is not None
    return Applied(
        sandbox=current,
        writes=count,
        status_written=status_written,
        finalizer_removed=finalizer_removed,
        pod_created=pod_created,
    )


async def _apply_child(
    kube: client_module.Kube, *, action: plan.Action, metrics: metrics_module.SandboxMetrics
) -> bool:
    """One child write; True when a CREATE created the object (not AlreadyExists)."""
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
        except errors.AlreadyExistsError:
            # Deterministic name: created by an earlier pass or another replica. Whether it
            # is ours is the next observation's question.
            _log.debug("child already exists")
            return False
        _log.debug("child created")
        return True
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
        return False
    if action.verb is plan.Verb.DELETE:
        try:
            await writes.delete_if_present(
                kube, resource=resource, name=action.name, namespace=namespace, uid=action.uid
            )
        except errors.ConflictError:
            raise  # the UID precondition failed: someone re-created it; re-plan
        except errors.LssError:
            metrics.cleanup_failures_total.labels(kind=action.kind.value).inc()
            raise
        _log.debug("child deleted")
        return False
    raise ValueError(f"unexpected child action {action.verb}")
