"""podspec: a warm pod is the sandbox reconciler's pod for a sandbox asking what the pool
gives, with only its identity replaced (name, labels, owner, ServiceAccount); the WarmPod's
record is canonical; the pool's ServiceAccount mounts no token; the deny policy selects the
pool's pods; only podspec imports the sandbox reconciler."""

from __future__ import annotations

import ast
import pathlib
from typing import Any

import pytest

from lss_common import errors
from lss_common.models import labels
from lss_common.models import warmpod as warmpod_model
from lss_common.models import warmpool as warmpool_model
from lss_pool_manager import names, podspec
from lss_sandbox_reconciler import merge, testing
from lss_sandbox_reconciler import settings as reconciler_settings
from lss_sandbox_reconciler.render import owner as owner_render
from lss_sandbox_reconciler.render import pod as pod_render
from lss_sandbox_reconciler.render import service as service_render

SETTINGS = reconciler_settings.SandboxOptions()
POOL_UID = "0a0a0a0a-1111-4222-8333-444444444444"
WARM_UID = "1b1b1b1b-1111-4222-8333-444444444444"


def make_pool(spec: dict[str, Any] | None = None) -> warmpool_model.WarmPool:
    return warmpool_model.from_dict(
        {
            "metadata": {"name": "py", "namespace": "team-a", "uid": POOL_UID, "generation": 1},
            "spec": {"runtime": "python:3.11", "minSize": 1, **(spec or {})},
        }
    )


def make_warm_pod(record: warmpod_model.WarmPodSpec) -> warmpod_model.WarmPod:
    return warmpod_model.WarmPod(
        metadata=warmpod_model.meta.ObjectMeta(name="py-0", namespace="team-a", uid=WARM_UID),
        spec=record,
    )


@pytest.mark.parametrize(
    ("pool_spec", "sandbox_spec", "with_profile"),
    [
        ({}, {}, False),
        ({"securityLevel": "high"}, {"securityLevel": "high"}, False),
        (
            {"resources": {"cpu": "1", "memory": "1Gi"}, "profileRef": {"name": "preset"}},
            {"resources": {"cpu": "1", "memory": "1Gi"}, "profileRef": {"name": "preset"}},
            True,
        ),
    ],
)
def test_warm_pod_is_the_sandbox_pod_but_for_identity(
    pool_spec: dict[str, Any], sandbox_spec: dict[str, Any], with_profile: bool
) -> None:
    runtime = testing.make_runtime()
    profile = testing.make_profile() if with_profile else None
    pool = make_pool(pool_spec)
    spec = podspec.effective_spec(pool, profile=profile, runtime=runtime, settings=SETTINGS)
    key = podspec.profile_key(pool, shared_namespaces=())
    warm = make_warm_pod(podspec.warm_pod_spec(pool, spec=spec, profile_key=key))
    rendered = podspec.render_warm_pod(spec, warm_pod=warm, pool_uid=POOL_UID, settings=SETTINGS)

    sandbox = testing.make_sandbox(spec={"runtime": "python:3.11", **sandbox_spec})
    sandbox_spec_eff = merge.merge_spec(
        sandbox, profile=profile, runtime=runtime, settings=SETTINGS
    )
    cold = pod_render.render_pod(
        sandbox_spec_eff,
        owner=owner_render.owner_of(sandbox, settings=SETTINGS),
        settings=SETTINGS,
    )
    assert podspec.fingerprint(rendered) == podspec.fingerprint(cold)
    warm_body = {**rendered["spec"], "serviceAccountName": None}
    cold_body = {**cold["spec"], "serviceAccountName": None}
    assert warm_body == cold_body
    meta = rendered["metadata"]
    assert meta["name"] == names.pod_name("py-0", uid=WARM_UID)
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "llmsafespace.dev/v1",
            "kind": "WarmPod",
            "name": "py-0",
            "uid": WARM_UID,
            "controller": True,
        }
    ]
    assert meta["labels"][labels.APP] == labels.APP_VALUE
    assert meta["labels"][labels.WARM_POD_NAME] == "py-0"
    assert meta["labels"][podspec.POOL_UID] == POOL_UID
    assert owner_render.SANDBOX_UID not in meta["labels"], "no sandbox identity"
    assert labels.SANDBOX_NAME not in meta["labels"]
    assert rendered["spec"]["serviceAccountName"] == names.service_account_name("py")
    assert rendered["spec"]["automountServiceAccountToken"] is False
    # The Service prepared with it selects it by its WarmPod's UID, the label a sandbox's
    # adoption keeps, on the port the sandbox's own Service uses.
    assert meta["labels"][labels.WARM_POD_UID] == WARM_UID
    svc = podspec.render_warm_service(warm)
    assert svc["metadata"]["name"] == f"warm-{meta['name']}"
    assert svc["metadata"]["ownerReferences"] == meta["ownerReferences"]
    assert svc["spec"]["selector"] == {labels.WARM_POD_UID: WARM_UID}
    assert set(svc["spec"]["selector"].items()) <= set(meta["labels"].items())
    sandbox_owner = owner_render.owner_of(sandbox, settings=SETTINGS)
    assert {k: v for k, v in svc["spec"].items() if k != "selector"} == {
        k: v
        for k, v in service_render.render_service(sandbox_owner)["spec"].items()
        if k != "selector"
    }
    assert owner_render.SANDBOX_UID not in svc["metadata"]["labels"], "no sandbox identity"
    # Its labels outlive the claim (re-owned, not relabelled): they name no pool.
    assert svc["metadata"]["labels"] == {
        labels.APP: labels.APP_VALUE,
        podspec.COMPONENT: podspec.WARM_SERVICE_COMPONENT,
        labels.WARM_POD_UID: WARM_UID,
    }


def test_record_is_canonical_and_resolved() -> None:
    pool = make_pool(
        {"resources": {"cpu": "0.5", "memory": "536870912"}, "profileRef": {"name": "preset"}}
    )
    spec = podspec.effective_spec(
        pool, profile=testing.make_profile(), runtime=testing.make_runtime(), settings=SETTINGS
    )
    record = podspec.warm_pod_spec(pool, spec=spec, profile_key=("team-a", "preset"))
    assert record.resources == warmpod_model.WarmPodResources(
        cpu="500m", memory="512Mi", ephemeral_storage="1Gi"
    )
    assert record.security_level == "standard"
    assert record.profile_ref is not None
    assert (record.profile_ref.namespace, record.profile_ref.name) == ("team-a", "preset")
    assert record.pool_ref == warmpod_model.PoolRef(name="py", namespace="team-a")


def test_conflicts_and_resolution_failures_are_permanent() -> None:
    with pytest.raises(errors.PermanentError):
        podspec.select_runtime(
            make_pool({"runtime": "ruby:9"}), candidates=[testing.make_runtime()]
        )
    with pytest.raises(errors.PermanentError):
        podspec.effective_spec(
            make_pool(),
            profile=testing.make_profile(language="node"),
            runtime=testing.make_runtime(),
            settings=SETTINGS,
        )
    with pytest.raises(errors.PermanentError):
        podspec.profile_key(
            make_pool({"profileRef": {"name": "p", "namespace": "other"}}), shared_namespaces=()
        )


def test_pool_children() -> None:
    pool = make_pool()
    account = podspec.render_service_account(pool)
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["ownerReferences"][0]["uid"] == POOL_UID
    policy = podspec.render_deny_policy(pool)
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {podspec.POOL_UID: POOL_UID}},
        "policyTypes": ["Ingress", "Egress"],
    }


def test_only_podspec_imports_the_sandbox_reconciler() -> None:
    package = pathlib.Path(__file__).resolve().parents[2] / "src" / "lss_pool_manager"
    offenders = []
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            module = (
                node.module
                if isinstance(node, ast.ImportFrom)
                else " ".join(a.name for a in node.names)
                if isinstance(node, ast.Import)
                else None
            )
            if module and "lss_sandbox_reconciler" in module and path.name != "podspec.py":
                offenders.append(path.name)
    assert offenders == []
