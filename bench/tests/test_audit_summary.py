"""bench/audit_summary.py counts an audit log's requests by client, verb and resource."""

from __future__ import annotations

import datetime
import json
from typing import Any

import bench_scripts

audit = bench_scripts.load("audit_summary")


def event(
    verb: str,
    resource: str,
    *,
    user: str = "system:serviceaccount:llmsafespace-system:llmsafespace-sandbox-reconciler",
    stage: str = "ResponseComplete",
    at: str = "2026-11-29T03:33:40.000000Z",
    subresource: str | None = None,
    namespace: str | None = "bench",
) -> dict[str, Any]:
    ref: dict[str, Any] = {"resource": resource}
    if subresource:
        ref["subresource"] = subresource
    if namespace:
        ref["namespace"] = namespace
    return {
        "stage": stage,
        "verb": verb,
        "user": {"username": user},
        "objectRef": ref,
        "requestReceivedTimestamp": at,
        "requestURI": f"/api/v1/{resource}",
    }


def test_clients_are_named_by_their_accounts() -> None:
    assert audit.client_of("system:serviceaccount:kube-system:endpoint-controller") == (
        "kcm:endpoint-controller"
    )
    assert audit.client_of("system:serviceaccount:lss:llmsafespace-pool-manager") == (
        "llmsafespace-pool-manager"
    )
    assert audit.client_of("llmsafespace-dev-admin") == "llmsafespace-dev-admin"


def test_each_request_counts_once_in_its_window_and_namespace() -> None:
    found = [
        event("patch", "sandboxes"),
        event("update", "sandboxes", subresource="status"),
        # a watch counts when it starts streaming, not again when it ends
        event("watch", "pods", stage="ResponseStarted"),
        event("watch", "pods", stage="ResponseComplete"),
        # a request's start alone is not a request served
        event("get", "pods", stage="RequestReceived"),
        event("get", "pods", at="2026-11-29T03:34:00.000000Z"),  # after the window
        event("get", "pods", namespace="elsewhere"),
        event("get", "nodes", namespace=None),  # cluster-scoped: kept
    ]
    counts = audit.count(
        found,
        since=datetime.datetime(2026, 11, 29, 3, 33, 30, tzinfo=datetime.UTC),
        until=datetime.datetime(2026, 11, 29, 3, 33, 50, tzinfo=datetime.UTC),
        namespace="bench",
    )
    me = "llmsafespace-sandbox-reconciler"
    assert counts == {
        (me, "patch", "sandboxes"): 1,
        (me, "update", "sandboxes/status"): 1,
        (me, "watch", "pods"): 1,
        (me, "get", "nodes"): 1,
    }


def test_the_summary_divides_by_the_sandboxes_and_splits_writes_from_reads() -> None:
    lines = [json.dumps(event("create", "pods")) for _ in range(4)]
    lines += [json.dumps(event("get", "pods", user="admin")) for _ in range(2)]
    summary = audit.summarise(audit.count(audit.events(["", *lines])), per=2)
    assert summary["writes"] == 2.0
    assert summary["reads"] == 1.0
    assert summary["by_client"] == {
        "llmsafespace-sandbox-reconciler": {"writes": 2.0, "reads": 0.0},
        "admin": {"writes": 0.0, "reads": 1.0},
    }
    assert summary["by_client_verb_resource"] == {
        "llmsafespace-sandbox-reconciler create pods": 2.0,
        "admin get pods": 1.0,
    }
