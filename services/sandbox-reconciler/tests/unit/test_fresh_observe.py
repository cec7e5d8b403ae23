"""A new Sandbox's first pass: when its children may go unread, and what a create that meets
an existing object does then."""

from __future__ import annotations

import datetime
from typing import Any

import prometheus_client
import pytest

from lss_common import errors
from lss_common.kube import objects
from lss_common.models import kinds, messages
from lss_common.testing import bus
from lss_sandbox_reconciler import apply, handler, observe, plan, testing
from lss_sandbox_reconciler import metrics as metrics_module

AT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("changes", "new"),
    [
        ({}, True),
        ({"status": {"phase": "Pending"}}, True),
        ({"finalizers": [kinds.FINALIZER]}, False),  # a pass gave it children already
        ({"finalizers": ["example.com/other"]}, True),  # someone else's finalizer
        ({"deletion_timestamp": "2025-06-01T12:09:30Z", "finalizers": ["x"]}, False),
        ({"status": {"phase": "Creating"}}, False),
        ({"status": {"phase": "Failed"}}, False),
        ({"status": {"podName": "sandbox-demo"}}, False),
        ({"status": {"warmPodRef": {"name": "py-0"}}}, False),
    ],
)
def test_is_new(changes: dict[str, Any], new: bool) -> None:
    assert observe.is_new(testing.make_sandbox(**changes)) is new


def hint(
    event_type: messages.EventType, child: messages.ChildChange | None = None
) -> messages.ChangeEvent:
    return messages.ChangeEvent(
        kind="sandbox",
        namespace="team-a",
        name="demo",
        resource_version=None if child else "10",
        event_type=event_type,
        observed_at=AT,
        child=child,
    )


def test_only_the_sandboxs_own_creation_hint_skips_the_children_read() -> None:
    assert handler._announces_creation(hint("ADDED"))
    assert not handler._announces_creation(hint("MODIFIED"))
    assert not handler._announces_creation(hint("RESYNC"))
    pod = messages.ChildChange(resource="pod", resource_version="3", event_type="ADDED")
    assert not handler._announces_creation(hint("MODIFIED", pod))


def test_the_sandbox_is_read_at_its_own_hints_version_only_when_alone() -> None:
    assert handler._own_version(hint("ADDED")) == "10"
    assert handler._own_version(hint("MODIFIED")) == "10"
    assert handler._own_version(hint("DELETED")) == "10"
    pod = messages.ChildChange(resource="pod", resource_version="3", event_type="MODIFIED")
    assert handler._own_version(hint("MODIFIED", pod)) is None  # the pod's version
    # A hint riding along may announce a newer change of the Sandbox, and a redelivery is a
    # retry or a re-check: both read from etcd.
    for num_delivered, riders in ((1, 1), (2, 0)):
        with bus.delivering(num_delivered=num_delivered, riders=riders):
            assert handler._own_version(hint("ADDED")) is None


class _Kube:
    """Answers every create with AlreadyExists (the only call these writes make)."""

    written = None


async def test_a_strict_create_that_meets_an_existing_object_is_a_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def exists(*_: Any, **__: Any) -> dict[str, Any]:
        raise errors.AlreadyExistsError("Service team-a/sandbox-demo already exists")

    monkeypatch.setattr(objects, "create_object", exists)
    action = plan.Action(
        plan.Verb.CREATE,
        kind=plan.Kind.SERVICE,
        namespace="team-a",
        name="sandbox-demo",
        body={"metadata": {"name": "sandbox-demo"}},
    )
    metrics = metrics_module.SandboxMetrics.register(prometheus_client.CollectorRegistry())
    kube: Any = _Kube()
    # Without the assumption: AlreadyExists is success (the next observation decides).
    assert await apply._apply_child(kube, action=action, metrics=metrics) is (apply._Done.UNCHANGED)
    with pytest.raises(errors.ConflictError, match="exists although the sandbox is new"):
        await apply._apply_child(kube, action=action, metrics=metrics, strict=True)
