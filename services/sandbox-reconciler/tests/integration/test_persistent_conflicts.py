"""A Sandbox whose status writes keep meeting 409 Conflict, end to end.

A validating webhook served by the test (``lss_dev.webhook``) makes the real API server
answer the first status writes of one Sandbox with a 409 Conflict, as a writer racing the
reconciler on every pass would. Each conflict re-reads and re-plans (a pass from etcd, never
a blind retry); after ``reconcile.max_conflict_passes`` of them the hint is nak'ed once. Its
redelivery re-plans in turn until the writes go through, and brings the sandbox to Running
with exactly one set of children: no pass on the way made a second pod or failed it.
"""

from __future__ import annotations

import pytest
from reconciler_harness import Cluster, PhaseRecorder, World, pod_name

from lss_common.kube import objects
from lss_common.models import kinds
from lss_dev import webhook

pytestmark = pytest.mark.integration

_PASSES = 3
# One more than a delivery's passes: the redelivery meets one conflict too, then writes.
_DENIALS = _PASSES + 1
_STATUS_WRITES = {
    "apiGroups": [kinds.GROUP],
    "apiVersions": ["*"],
    "operations": ["UPDATE"],
    "resources": ["sandboxes/status"],
}


async def test_conflicts_past_the_pass_limit_nak_the_hint_and_its_redelivery_converges(
    world: World, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    # A Sandbox of the test's own for the probe's status writes, made before any reconciler
    # runs; the webhook lets them through.
    await cluster.create_runtime()
    await cluster.create_sandbox("probe")

    probe = webhook.status_probe(
        cluster.kube, resource=objects.SANDBOX, namespace=cluster.namespace, name="probe"
    )
    answer = webhook.conflicting(
        times=_DENIALS, when=lambda request: request.get("name") == "contended"
    )

    async with webhook.serving(
        cluster.kube, namespace=cluster.namespace, rule=_STATUS_WRITES, answer=answer, probe=probe
    ) as hook:
        reconciler = await world.start_reconciler(
            reconcile_options={"max_conflict_passes": _PASSES}
        )
        await world.start_watcher()
        await cluster.wait_phase("probe", "Running")
        async with PhaseRecorder(
            cluster.kube, namespace=cluster.namespace, name="contended"
        ) as rec:
            created = await cluster.create_sandbox("contended", timeout=600)
            running = await cluster.wait_phase("contended", "Running")
            await rec.until("Running")
        # The first delivery stopped after its passes and was nak'ed once; the redelivery
        # re-planned past its conflict and wrote.
        contended = [r for r in hook.requests if r.get("name") == "contended"]
        assert len(hook.denied) == _DENIALS
        assert len(contended) > _DENIALS
        assert reconciler.sample("llmsafespace_sandbox_conflicts_total") == _DENIALS
        retried = [r for r in caplog.records if "still conflicting" in str(getattr(r, "error", ""))]
        assert [r.getMessage() for r in retried] == ["message will be retried"]
        # At once: the world moved, waiting would not help (a conflict is not a failure).
        assert [getattr(r, "delay_seconds", None) for r in retried] == [0.0]

    # Creating may be skipped: by the redelivery, the pod made by the first pass is Ready.
    assert rec.phases[0] is None, rec.phases
    assert rec.phases[-1] == "Running", rec.phases
    assert not {"Failed", "Terminated"} & set(rec.phases), rec.phases
    uid = created["metadata"]["uid"]
    children = await cluster.children(uid)
    assert children["Pod"] == [pod_name("contended")]
    assert len(children["ServiceAccount"]) == 1
    assert len(children["Service"]) == 1
    status = running["status"]
    assert status["podName"] == pod_name("contended")
    assert status["observedGeneration"] == running["metadata"]["generation"]
    assert kinds.FINALIZER in running["metadata"]["finalizers"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
