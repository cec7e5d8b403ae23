"""The pure parts of lss_common.kube (no server): credential source order, URL paths per
scope, API error translation table (status + Status body → error type, field, delay),
Event construction, and reading metadata/conditions from dicts and models alike. The
behaviour against a real API server is in tests/integration/test_kube_*.py."""

from __future__ import annotations

import datetime
import pathlib

import msgspec
import pytest

from lss_common import errors, settings
from lss_common.kube import client, objects, writes
from lss_common.models import meta, sandbox

NOW = datetime.datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)


# -- credential source order ------------------------------------------------------------------


def test_explicit_path_wins(tmp_path: pathlib.Path) -> None:
    chosen = client.choose_source(
        settings.KubeSettings(kubeconfig="/explicit"),
        environ={"KUBECONFIG": "/env", "KUBERNETES_SERVICE_HOST": "10.0.0.1"},
        home=tmp_path,
    )
    assert chosen == (client.CredentialSource.EXPLICIT, "/explicit")


def test_env_then_in_cluster_then_home(tmp_path: pathlib.Path) -> None:
    kube_settings = settings.KubeSettings()
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert client.choose_source(
        kube_settings, environ={"KUBECONFIG": "/a:/b", **in_cluster}, home=tmp_path
    ) == (client.CredentialSource.ENVIRONMENT, "/a:/b")
    assert client.choose_source(kube_settings, environ=in_cluster, home=tmp_path) == (
        client.CredentialSource.IN_CLUSTER,
        None,
    )
    default = tmp_path / ".kube" / "config"
    default.parent.mkdir()
    default.write_text("apiVersion: v1\n")
    assert client.choose_source(kube_settings, environ={}, home=tmp_path) == (
        client.CredentialSource.DEFAULT_FILE,
        str(default),
    )


def test_no_credentials_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.LssError, match="LSS_KUBE__KUBECONFIG"):
        client.choose_source(settings.KubeSettings(), environ={}, home=tmp_path)


# -- paths -------------------------------------------------------------------------------


def test_paths_by_scope() -> None:
    assert objects.POD.path(namespace="ns", name="p") == "/api/v1/namespaces/ns/pods/p"
    assert objects.NAMESPACE.path(name="ns") == "/api/v1/namespaces/ns"
    assert (
        objects.SANDBOX.path(namespace="ns", name="s", subresource="status")
        == "/apis/llmsafespace.dev/v1/namespaces/ns/sandboxes/s/status"
    )
    assert objects.RUNTIME_ENVIRONMENT.path() == "/apis/llmsafespace.dev/v1/runtimeenvironments"
    assert objects.NETWORK_POLICY.api_version == "networking.k8s.io/v1"
    assert objects.POD.api_version == "v1"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: objects.POD.path(name="p"), "namespaced"),
        (lambda: objects.NAMESPACE.path(namespace="ns"), "cluster-scoped"),
        (lambda: objects.POD.path(namespace="ns", name="a/b"), "invalid"),
        (lambda: objects.POD.path(namespace="..", name="a"), "invalid"),
        (lambda: objects.POD.path(namespace="ns", subresource="status"), "subresource"),
    ],
)
def test_bad_paths_are_refused(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        # The table holds lambdas typed as object (mixed signatures); each raises ValueError.
        call()  # type: ignore[operator]


# -- error translation ---------------------------------------------------------------------


def status_body(code: int, reason: str, message: str, **details: object) -> bytes:
    return msgspec.json.encode(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
            "details": details,
        }
    )


def test_404_is_not_found() -> None:
    error = objects.translate_error(404, status_body(404, "NotFound", "x"), what="Pod ns/p")
    assert isinstance(error, errors.NotFoundError)
    assert "Pod ns/p" in str(error)


def test_409_already_exists_versus_conflict() -> None:
    exists = objects.translate_error(409, status_body(409, "AlreadyExists", "x"), what="Pod ns/p")
    conflict = objects.translate_error(
        409, status_body(409, "Conflict", "the object has been modified"), what="Pod ns/p"
    )
    assert isinstance(exists, errors.AlreadyExistsError)
    assert isinstance(conflict, errors.ConflictError)
    assert "modified" in str(conflict)


def test_422_names_the_field_and_lists_causes() -> None:
    body = status_body(
        422,
        "Invalid",
        'Sandbox.llmsafespace.dev "s" is invalid: spec.timeout: Invalid value',
        causes=[
            {"reason": "FieldValueInvalid", "message": "must be >= 1", "field": "spec.timeout"},
            {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.runtime"},
        ],
    )
    error = objects.translate_error(422, body, what="Sandbox ns/s")
    assert isinstance(error, errors.InvalidObjectError)
    assert error.field == "spec.timeout"
    assert "spec.timeout: must be >= 1" in str(error)
    assert "spec.runtime: Required value" in str(error)


def test_422_without_causes_keeps_the_message() -> None:
    error = objects.translate_error(422, status_body(422, "Invalid", "bad"), what="Pod ns/p")
    assert isinstance(error, errors.InvalidObjectError)
    assert error.field == "(request)"
    assert "bad" in str(error)


def test_403_is_permanent_forbidden() -> None:
    error = objects.translate_error(
        403, status_body(403, "Forbidden", 'violates PodSecurity "restricted"'), what="Pod ns/p"
    )
    assert isinstance(error, errors.PermanentError)
    assert error.reason == "Forbidden"


@pytest.mark.parametrize(
    "message",
    [
        # One role the authorizer could not find, and the bracketed list of several (as an
        # API server answers for the first second after its start).
        'sandboxes.llmsafespace.dev "b" is forbidden: User "system:serviceaccount:s:r" cannot '
        'get resource "sandboxes": RBAC: clusterrole.rbac.authorization.k8s.io "r" not found',
        'warmpods.llmsafespace.dev is forbidden: User "u" cannot list resource "warmpods": '
        'RBAC: [clusterrole.rbac.authorization.k8s.io "system:public-info-viewer" not found, '
        'clusterrole.rbac.authorization.k8s.io "llmsafespace-pool-manager" not found]',
        'pods is forbidden: User "u" cannot list resource "pods": RBAC: '
        'role.rbac.authorization.k8s.io "local" not found',
    ],
)
def test_403_with_roles_the_authorizer_could_not_resolve_is_retryable(message: str) -> None:
    error = objects.translate_error(
        403, status_body(403, "Forbidden", message), what="Sandbox ns/b"
    )
    assert isinstance(error, errors.RetryableError)
    assert error.delay_seconds is not None
    assert "could not resolve the caller's roles" in str(error)


def test_403_that_rbac_denies_or_admission_refuses_stays_permanent() -> None:
    for message in (
        'pods is forbidden: User "u" cannot create resource "pods" in API group "" in the '
        'namespace "kube-system"',
        "pods \"p\" is forbidden: ValidatingAdmissionPolicy 'llmsafespace-controller-scope' "
        "denied request: namespace kube-system is not enabled for LLMSafeSpace",
    ):
        error = objects.translate_error(403, status_body(403, "Forbidden", message), what="Pod")
        assert isinstance(error, errors.PermanentError), message
        assert error.reason == "Forbidden"


def test_only_a_permanent_403_is_a_refusal_to_confirm() -> None:
    denied = objects.translate_error(
        403, status_body(403, "Forbidden", 'pods is forbidden: User "u" cannot list'), what="Pod"
    )
    unresolved = objects.translate_error(
        403,
        status_body(
            403, "Forbidden", 'x: RBAC: clusterrole.rbac.authorization.k8s.io "r" not found'
        ),
        what="Pod",
    )
    assert objects.is_refusal(403, denied)
    assert not objects.is_refusal(403, unresolved)  # retried already
    assert not objects.is_refusal(422, objects.translate_error(422, b"{}", what="Pod"))
    assert not objects.is_refusal(404, objects.translate_error(404, b"{}", what="Pod"))


def test_a_refusal_while_the_api_server_is_not_ready_is_retried_saying_so() -> None:
    denied = objects.translate_error(
        403, status_body(403, "Forbidden", 'pods is forbidden: User "u" cannot list'), what="Pod"
    )
    retried = objects.refused_while_unready(denied)
    assert isinstance(retried, errors.RetryableError)
    assert retried.delay_seconds is not None
    assert retried.delay_seconds > 0
    assert "cannot list" in str(retried)
    assert "not ready yet" in str(retried)


@pytest.mark.parametrize("status", [401, 408, 410, 425, 429, 500, 503, 504])
def test_transient_statuses_are_retryable(status: int) -> None:
    error = objects.translate_error(status, b"<html>oops</html>", what="Pod ns/p")
    assert isinstance(error, errors.RetryableError)
    assert not isinstance(error, errors.ConflictError)


def test_retry_after_from_header_or_details() -> None:
    header = objects.translate_error(429, b"{}", what="x", retry_after="7")
    details = objects.translate_error(
        503, status_body(503, "ServiceUnavailable", "x", retryAfterSeconds=3), what="x"
    )
    assert isinstance(header, errors.RetryableError)
    assert isinstance(details, errors.RetryableError)
    assert header.delay_seconds == 7.0
    assert details.delay_seconds == 3.0


def test_other_client_errors_are_permanent() -> None:
    error = objects.translate_error(
        405, status_body(405, "MethodNotAllowed", "no"), what="Pod ns/p"
    )
    assert isinstance(error, errors.PermanentError)
    assert error.reason == "MethodNotAllowed"


# -- bodies and metadata ------------------------------------------------------------------------


def test_to_body_passes_dicts_and_converts_structs() -> None:
    body = {"metadata": {"name": "a"}}
    assert objects.to_body(body) is body
    condition = meta.Condition(type="Ready", status="True", reason="R", last_transition_time="t")
    assert objects.to_body(condition) == {
        "type": "Ready",
        "status": "True",
        "reason": "R",
        "lastTransitionTime": "t",
    }


def test_metadata_and_conditions_from_dicts_and_models() -> None:
    raw = {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "Sandbox",
        "metadata": {"name": "s", "namespace": "ns", "resourceVersion": "5", "generation": 2},
        "spec": {"runtime": "python:3.11"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "R", "lastTransitionTime": "t"}
            ]
        },
    }
    model = sandbox.from_dict(raw)
    for obj in (raw, model):
        metadata = writes.object_meta(obj)
        assert (metadata.name, metadata.resource_version, metadata.generation) == ("s", "5", 2)
        assert [c.type for c in writes.object_conditions(obj)] == ["Ready"]
    assert writes.object_conditions({"metadata": {}}) == []
    with pytest.raises(TypeError):
        writes.object_meta(42)


def test_event_shape() -> None:
    involved = {"metadata": {"name": "s", "namespace": "ns", "uid": "u", "resourceVersion": "9"}}
    event = writes.build_event(
        involved,
        resource=objects.SANDBOX,
        reason="Expired",
        message="x" * 5000,
        event_type=writes.EventType.WARNING,
        reporting_controller="llmsafespace.dev/sandbox-reconciler",
        reporting_instance="pod-1",
        now=NOW,
    )
    assert event["metadata"]["namespace"] == "ns"
    assert event["metadata"]["name"].startswith("s.")
    assert int(event["metadata"]["name"].split(".")[1], 16) == int(NOW.timestamp() * 1e6) * 1000
    assert event["involvedObject"] == {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "Sandbox",
        "name": "s",
        "namespace": "ns",
        "uid": "u",
        "resourceVersion": "9",
    }
    assert event["type"] == "Warning"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2025-06-01T12:00:00Z"
    assert len(event["message"].encode()) <= 1024
    assert event["reportingComponent"] == event["source"]["component"]


def test_event_about_a_cluster_scoped_object_goes_to_default() -> None:
    event = writes.build_event(
        {"metadata": {"name": "python-3-11", "uid": "u"}},
        resource=objects.RUNTIME_ENVIRONMENT,
        reason="Validated",
        message="ok",
        event_type=writes.EventType.NORMAL,
        reporting_controller="c",
        reporting_instance="i",
        now=NOW,
    )
    assert event["metadata"]["namespace"] == "default"
    assert "namespace" not in event["involvedObject"]


def test_a_delete_answer_says_whether_the_object_is_gone() -> None:
    gone_status = b'{"kind": "Status", "status": "Success", "details": {"name": "x"}}'
    gone_object = b'{"kind": "Service", "metadata": {"name": "x"}, "spec": {}}'
    pending = (
        b'{"kind": "Pod", "metadata": {"name": "x", "deletionTimestamp": "2026-11-29T03:00:00Z"}}'
    )
    assert objects.is_gone_after_delete(gone_status)
    assert objects.is_gone_after_delete(gone_object)
    assert not objects.is_gone_after_delete(pending)
    # An answer not understood counts as still there: a finalizer is never removed on a guess.
    assert not objects.is_gone_after_delete(b"not json")
