"""claim.is_stray_claim / may_discard_pod: a WarmPod Assigned to a sandbox is stray once the
sandbox can no longer take it (ending, or past new without referencing it), never while it is
new (the next pass resumes the claim) nor when it is the one referenced; its pod goes with it
unless it is the pod the sandbox runs on or someone else's."""

from __future__ import annotations

import datetime
from typing import Any

import prometheus_client
import pytest

from lss_common.bus import codec
from lss_common.logic import revisions
from lss_common.models import messages
from lss_common.models import sandbox as sandbox_model
from lss_common.runtime import clock as clock_module
from lss_sandbox_reconciler import claim, plan, ready_queue, warm
from lss_sandbox_reconciler import metrics as sandbox_metrics
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module

UID = "sb-uid"


def sandbox(
    *,
    phase: str | None = None,
    ref: str | None = None,
    deleting: bool = False,
    pod: str | None = None,
) -> sandbox_model.Sandbox:
    metadata: dict[str, Any] = {"name": "sb", "namespace": "ns", "uid": UID}
    if deleting:
        metadata["deletionTimestamp"] = "2025-06-01T12:00:00Z"
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if ref is not None:
        status["warmPodRef"] = {"name": ref, "namespace": "ns"}
    if pod is not None:
        status["podName"] = pod
    return sandbox_model.from_dict(
        {
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "Sandbox",
            "metadata": metadata,
            "spec": {"runtime": "python:3.11"},
            "status": status,
        }
    )


@pytest.mark.parametrize(
    ("obj", "stray"),
    [
        # new: the next pass resumes the claim
        (sandbox(), False),
        (sandbox(phase="Pending"), False),
        # the claim it uses
        (sandbox(phase="Running", ref="p-0"), False),
        (sandbox(phase="Running", ref="p-0", deleting=True), False),
        # past new without it: started cold, or from another WarmPod
        (sandbox(phase="Creating"), True),
        (sandbox(phase="Running", pod="sandbox-sb"), True),
        (sandbox(phase="Running", ref="p-9"), True),
        # ending without it
        (sandbox(deleting=True), True),
        (sandbox(phase="Failed"), True),
        (sandbox(phase="Terminated", ref="p-9"), True),
    ],
)
def test_is_stray_claim(obj: sandbox_model.Sandbox, stray: bool) -> None:
    assert claim.is_stray_claim(obj, warm_pod=("ns", "p-0")) is stray


def pod(
    controller_uid: str | None, *, name: str = "p-0-abc", deleting: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if controller_uid is not None:
        metadata["ownerReferences"] = [{"uid": controller_uid, "controller": True, "kind": "X"}]
    if deleting:
        metadata["deletionTimestamp"] = "2025-06-01T12:00:00Z"
    return {"metadata": metadata}


@pytest.mark.parametrize(
    ("found", "sandbox_pod", "allowed"),
    [
        (pod("wp-uid"), None, True),  # still the WarmPod's
        (pod(UID), "sandbox-sb", True),  # adopted, but the sandbox runs on its cold pod
        (pod(UID), None, True),
        (pod(UID), "p-0-abc", False),  # the pod the sandbox runs on
        (pod("someone-else"), None, False),
        (pod(None), None, False),
        (pod("wp-uid", deleting=True), None, False),
        (None, None, False),
    ],
)
def test_may_discard_pod(
    found: dict[str, Any] | None, sandbox_pod: str | None, allowed: bool
) -> None:
    assert (
        claim.may_discard_pod(
            found, warm_pod_uid="wp-uid", sandbox_uid=UID, sandbox_pod_name=sandbox_pod
        )
        is allowed
    )


def test_the_ready_queue_feed_reads_only_for_hints_that_may_change_the_queue() -> None:
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def payload(
        child: messages.ChildChange | None, *, event_type: messages.EventType = "MODIFIED"
    ) -> bytes:
        return codec.encode(
            messages.ChangeEvent(
                kind="warmpod",
                namespace="ns",
                name="py-0",
                resource_version=None if child else "7",
                event_type=event_type,
                observed_at=at,
                child=child,
            )
        )

    pod = messages.ChildChange(resource="pod", resource_version="9", event_type="MODIFIED")
    written = revisions.WrittenRevisions()
    assert not warm._needs_read(payload(pod), written=None)  # only its pod changed
    assert warm._needs_read(payload(None), written=None)  # the WarmPod's own status
    assert warm._needs_read(payload(None), written=written)  # someone else's write
    assert warm._needs_read(b"not json", written=written)  # unreadable: read the WarmPod
    written.add("7")
    assert not warm._needs_read(payload(None), written=written)  # our CAS: offered already
    assert warm._needs_read(payload(None, event_type="DELETED"), written=written)
    assert warm._needs_read(payload(None, event_type="RESYNC"), written=written)
    # What the read must show at least: the WarmPod's own version, never its pod's.
    assert warm._hint_version(payload(None)) == "7"
    assert warm._hint_version(payload(None, event_type="DELETED")) == "7"
    assert warm._hint_version(payload(pod)) is None
    assert warm._hint_version(b"not json") is None


async def test_a_cold_pod_beside_a_gone_or_going_warm_pod_is_its_replacement() -> None:
    """The warm pod the stored status names is gone or being deleted: the cold pod is (about
    to be) its replacement — its status write may have lost a race with another replica's
    pass that still names the warm pod. It is not deleted as a stray (no request at all)."""

    def no_api_server() -> Any:
        raise AssertionError("nothing to read or delete")

    registry = prometheus_client.CollectorRegistry()
    settings = settings_module.SandboxReconcilerSettings()
    starter = warm.WarmStarter(
        no_api_server,
        settings=settings,
        clock=clock_module.FakeClock(),
        metrics=warm.WarmMetrics.register(registry),
        sandbox_metrics=sandbox_metrics.SandboxMetrics.register(registry),
        queue=ready_queue.ReadyQueue(),
    )
    obj = sandbox(phase="Creating", ref="p-0", pod="p-0-abc")
    cold = {
        "metadata": {
            "name": "sandbox-sb",
            "uid": "cold-uid",
            "labels": {owner_module.SANDBOX_UID: UID},
        }
    }
    going = {"metadata": {"name": "p-0-abc", "deletionTimestamp": "2025-06-01T12:00:00Z"}}
    for warm_pod in (None, going):
        await starter.remove_stray_cold_pod(
            plan.Snapshot(
                sandbox=obj,
                runtimes=(),
                profile=None,
                children=plan.Children(pod=warm_pod),
                cold_pod=cold,
                cold_pod_read=True,
            )
        )
