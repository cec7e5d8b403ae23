"""The five CRDs against the real kube-apiserver: install, defaults, validation, round trip, status.

Matrix:
- every CRD is Established with accepted names, and serves exactly the schema in deploy/crds;
- every sample in deploy/samples is accepted and read back with the expected defaults;
- a table of invalid objects (patterns, bounds, enums, required fields, CEL rules, list
  uniqueness) is each rejected with HTTP 422 naming the offending field;
- update rules: immutable Sandbox and WarmPod fields, mutable timeout, status CEL rules;
- a fully populated object of every kind, with its status written through /status, read back,
  decodes into the msgspec model and re-encodes to the identical spec and status;
- the status subresource of every kind: status is dropped on create and on main-resource
  writes, and /status ignores spec changes.
"""

from __future__ import annotations

import copy
import json
import pathlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from lss_common.models import codec, kinds, profile, runtime, sandbox, warmpod, warmpool

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[4]
MODULE_BY_KIND: dict[str, Any] = {
    "Sandbox": sandbox,
    "SandboxProfile": profile,
    "WarmPool": warmpool,
    "WarmPod": warmpod,
    "RuntimeEnvironment": runtime,
}
STATUS_MODEL: dict[str, type[Any]] = {
    "Sandbox": sandbox.SandboxStatus,
    "SandboxProfile": profile.SandboxProfileStatus,
    "WarmPool": warmpool.WarmPoolStatus,
    "WarmPod": warmpod.WarmPodStatus,
    "RuntimeEnvironment": runtime.RuntimeEnvironmentStatus,
}
RESOURCE_BY_KIND = {r.kind: r for r in kinds.ALL}
DELETE = object()  # marks a key to remove in ``merged``


class Reply:
    """Status code and parsed JSON body of one API call."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"Reply({self.status}, {json.dumps(self.body)[:2000]})"


class Objects:
    """Raw CustomObjectsApi calls: every reply is returned, errors included, never raised."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self._api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        # Cluster-scoped objects outlive the test's namespace: the fixture deletes these.
        self.cluster_scoped_made: list[tuple[kinds.Resource, str]] = []

    async def _call(self, pending: Awaitable[Any]) -> Reply:
        response = await pending
        raw = await response.read()
        return Reply(response.status, json.loads(raw) if raw else {})

    def _scope(self, resource: kinds.Resource) -> tuple[str, ...]:
        return (self.namespace,) if resource.namespaced else ()

    def _method(self, verb: str, resource: kinds.Resource, suffix: str = "") -> Any:
        scope = "namespaced" if resource.namespaced else "cluster"
        return getattr(self._api, f"{verb}_{scope}_custom_object{suffix}")

    async def create(self, body: dict[str, Any]) -> Reply:
        resource = RESOURCE_BY_KIND[body["kind"]]
        reply = await self._call(
            self._method("create", resource)(
                kinds.GROUP,
                kinds.VERSION,
                *self._scope(resource),
                resource.plural,
                body,
                _preload_content=False,
            )
        )
        if reply.status == 201 and not resource.namespaced:
            self.cluster_scoped_made.append((resource, reply.body["metadata"]["name"]))
        return reply

    async def get(self, resource: kinds.Resource, name: str) -> Reply:
        return await self._call(
            self._method("get", resource)(
                kinds.GROUP,
                kinds.VERSION,
                *self._scope(resource),
                resource.plural,
                name,
                _preload_content=False,
            )
        )

    async def replace(self, body: dict[str, Any], *, status: bool = False) -> Reply:
        resource = RESOURCE_BY_KIND[body["kind"]]
        return await self._call(
            self._method("replace", resource, "_status" if status else "")(
                kinds.GROUP,
                kinds.VERSION,
                *self._scope(resource),
                resource.plural,
                body["metadata"]["name"],
                body,
                _preload_content=False,
            )
        )

    async def delete(self, resource: kinds.Resource, name: str) -> Reply:
        return await self._call(
            self._method("delete", resource)(
                kinds.GROUP,
                kinds.VERSION,
                *self._scope(resource),
                resource.plural,
                name,
                _preload_content=False,
            )
        )


@pytest.fixture
async def objects(kube_api: client.ApiClient, namespace: str) -> AsyncIterator[Objects]:
    """Objects API bound to the test's namespace; deletes cluster-scoped objects it made."""
    api = Objects(kube_api, namespace)
    yield api
    for resource, name in api.cluster_scoped_made:
        await api.delete(resource, name)


def unique(name: str) -> str:
    # RuntimeEnvironments are cluster-scoped: the per-test namespace does not separate them.
    return f"{name}-{uuid.uuid4().hex[:8]}"


def new_object(kind: str, spec: dict[str, Any], *, name: str = "obj") -> dict[str, Any]:
    if kind == kinds.RUNTIME_ENVIRONMENT.kind:
        name = unique(name)
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in recursively; a ``DELETE`` value removes the key."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_full_objects() -> dict[str, dict[str, Any]]:
    with (REPO / "libs" / "common" / "tests" / "data" / "full_objects.yaml").open() as fh:
        objects: dict[str, dict[str, Any]] = yaml.safe_load(fh)["objects"]
    return objects


FULL = load_full_objects()
MINIMAL: dict[str, dict[str, Any]] = {
    "Sandbox": {"runtime": "python:3.11"},
    "SandboxProfile": {"language": "python"},
    "WarmPool": {"runtime": "python:3.11", "minSize": 1},
    "WarmPod": {
        "poolRef": {"name": "pool"},
        "runtime": "python:3.11",
        "securityLevel": "standard",
        "resources": {"cpu": "500m", "memory": "512Mi", "ephemeralStorage": "1Gi"},
    },
    "RuntimeEnvironment": {"image": "img:1", "language": "python", "version": "3.11"},
}
CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "Checked",
    "lastTransitionTime": "2024-05-01T12:00:00Z",
}


# --- installation ---------------------------------------------------------------------


@pytest.mark.parametrize("resource", kinds.ALL, ids=lambda r: r.kind)
async def test_crd_is_established_with_the_schema_in_deploy(
    kube_api: client.ApiClient, resource: kinds.Resource
) -> None:
    api = client.ApiextensionsV1Api(kube_api)
    response: Any = await api.read_custom_resource_definition(
        resource.crd_name, _preload_content=False
    )
    served = json.loads(await response.read())
    conditions = {c["type"]: c["status"] for c in served["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    with (REPO / "deploy" / "crds" / f"{resource.plural}.yaml").open() as fh:
        local = yaml.safe_load(fh)
    assert served["spec"]["names"] == local["spec"]["names"]
    assert served["spec"]["scope"] == local["spec"]["scope"]
    assert served["spec"]["versions"] == local["spec"]["versions"]


# --- samples and defaults ---------------------------------------------------------------

EXPECTED_SAMPLE_SPECS: dict[str, dict[str, Any]] = {
    "RuntimeEnvironment": {
        "image": "ghcr.io/llmsafespace/runtime-python:3.11",
        "language": "python",
        "version": "3.11",
        "packageManager": "pip",
        "tags": ["general", "data-science"],
        "preInstalledPackages": ["numpy", "pandas", "requests"],
        "securityFeatures": ["seccomp", "no-new-privs"],
        "seccompProfile": {"type": "RuntimeDefault"},
        "resourceRequirements": {
            "minCpu": "100m",
            "minMemory": "128Mi",
            "recommendedCpu": "500m",
            "recommendedMemory": "512Mi",
        },
        "securityLevel": "standard",
        "runAsNonRoot": True,
    },
    "SandboxProfile": {
        "language": "python",
        "securityLevel": "standard",
        "seccompProfile": {"type": "RuntimeDefault"},
        "networkPolicies": [
            {
                "type": "egress",
                "rules": [
                    {"domain": "pypi.org"},
                    {
                        "domain": "files.pythonhosted.org",
                        "ports": [{"port": 443, "protocol": "TCP"}],
                    },
                ],
            }
        ],
        "preInstalledPackages": ["numpy", "pandas"],
        "resourceDefaults": {"cpu": "1", "memory": "1Gi", "ephemeralStorage": "2Gi"},
        "filesystemConfig": {
            "readOnlyPaths": ["/usr", "/etc"],
            "writablePaths": ["/tmp", "/workspace"],
        },
    },
    "WarmPool": {
        "runtime": "python:3.11",
        "minSize": 2,
        "maxSize": 5,
        "profileRef": {"name": "python-data"},
        "autoScaling": {"enabled": True, "targetUtilization": 75, "scaleDownDelay": 300},
        "securityLevel": "standard",
        "ttl": 3600,
        "disablePodRecycling": False,
        "recycleHighSecurityPods": False,
    },
    "Sandbox": {
        "runtime": "python:3.11",
        "timeout": 600,
        "profileRef": {"name": "python-data"},
        "networkAccess": {
            "egress": [{"domain": "api.github.com", "ports": [{"port": 443, "protocol": "TCP"}]}],
            "ingress": False,
        },
        "securityLevel": "standard",
        "filesystem": {"readOnlyRoot": True},
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
    },
}


def load_samples() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((REPO / "deploy" / "samples").glob("*.yaml")):
        with path.open() as fh:
            docs.extend(d for d in yaml.safe_load_all(fh) if d and d["kind"] in MODULE_BY_KIND)
    return docs


@pytest.mark.parametrize("sample", load_samples(), ids=lambda d: str(d["kind"]))
async def test_sample_is_accepted_with_defaults_applied(
    objects: Objects, sample: dict[str, Any]
) -> None:
    body = copy.deepcopy(sample)
    body["metadata"].pop("namespace", None)  # namespaced samples go into the test's namespace
    if body["kind"] == kinds.RUNTIME_ENVIRONMENT.kind:
        body["metadata"]["name"] = unique(body["metadata"]["name"])
    created = await objects.create(body)
    assert created.status == 201, created
    resource = RESOURCE_BY_KIND[body["kind"]]
    served = await objects.get(resource, body["metadata"]["name"])
    assert served.status == 200, served
    assert served.body["spec"] == EXPECTED_SAMPLE_SPECS[body["kind"]]
    assert "status" not in served.body
    assert served.body["metadata"].get("labels") == sample["metadata"].get("labels")
    mod = MODULE_BY_KIND[body["kind"]]
    assert (
        json.loads(mod.encode(mod.decode(json.dumps(served.body))))["spec"]
        == (EXPECTED_SAMPLE_SPECS[body["kind"]])
    )


# --- invalid objects --------------------------------------------------------------------


def invalid(kind: str, changes: dict[str, Any], field: str, case_id: str) -> Any:
    """A case: the minimal valid spec of ``kind`` with ``changes``; ``field`` must be named."""
    return pytest.param(kind, merged(MINIMAL[kind], changes), field, id=case_id)


SB, SBP, WP, WPOD, RTE = (
    "Sandbox",
    "SandboxProfile",
    "WarmPool",
    "WarmPod",
    "RuntimeEnvironment",
)
EGRESS_PORT = "spec.networkAccess.egress[0].ports[0]"

INVALID = [
    # Sandbox quantity patterns and bounds
    invalid(SB, {"resources": {"cpu": "abc"}}, "spec.resources.cpu", "sb-cpu-word"),
    invalid(SB, {"resources": {"cpu": "1.5m"}}, "spec.resources.cpu", "sb-cpu-fraction-milli"),
    invalid(SB, {"resources": {"cpu": "0"}}, "spec.resources.cpu", "sb-cpu-zero"),
    invalid(SB, {"resources": {"memory": "512MB"}}, "spec.resources.memory", "sb-mem-MB"),
    invalid(SB, {"resources": {"memory": "1K"}}, "spec.resources.memory", "sb-mem-upper-K"),
    invalid(
        SB,
        {"resources": {"ephemeralStorage": "-1Gi"}},
        "spec.resources.ephemeralStorage",
        "sb-ephemeral-negative",
    ),
    invalid(SB, {"storage": {"volumeSize": "5GB"}}, "spec.storage.volumeSize", "sb-volume-GB"),
    invalid(SB, {"timeout": 0}, "spec.timeout", "sb-timeout-0"),
    invalid(SB, {"timeout": 3601}, "spec.timeout", "sb-timeout-3601"),
    # Sandbox network rules
    invalid(
        SB,
        {"networkAccess": {"egress": [{"domain": "pypi.org", "ports": [{"port": 0}]}]}},
        f"{EGRESS_PORT}.port",
        "sb-port-0",
    ),
    invalid(
        SB,
        {"networkAccess": {"egress": [{"domain": "pypi.org", "ports": [{"port": 65536}]}]}},
        f"{EGRESS_PORT}.port",
        "sb-port-65536",
    ),
    invalid(
        SB,
        {
            "networkAccess": {
                "egress": [{"domain": "pypi.org", "ports": [{"port": 1, "protocol": "ICMP"}]}]
            }
        },
        f"{EGRESS_PORT}.protocol",
        "sb-protocol-ICMP",
    ),
    invalid(
        SB,
        {"networkAccess": {"egress": [{"domain": "*.example.com"}]}},
        "spec.networkAccess.egress[0].domain",
        "sb-domain-wildcard",
    ),
    invalid(
        SB,
        {"networkAccess": {"egress": [{"ports": [{"port": 443}]}]}},
        "spec.networkAccess.egress[0].domain",
        "sb-egress-no-domain",
    ),
    invalid(
        SB,
        {"networkAccess": {"egress": [{"domain": "pypi.org"}, {"domain": "pypi.org"}]}},
        "spec.networkAccess.egress[1]",
        "sb-egress-duplicate-domain",
    ),
    # Sandbox enums, required fields, formats and CEL rules
    invalid(SB, {"securityLevel": "paranoid"}, "spec.securityLevel", "sb-security-level-enum"),
    invalid(SB, {"runtime": DELETE}, "spec.runtime", "sb-runtime-missing"),
    invalid(SB, {"runtime": "python"}, "spec.runtime", "sb-runtime-no-version"),
    invalid(SB, {"securityLevel": "custom"}, "spec.profileRef", "sb-custom-needs-profile"),
    invalid(SB, {"profileRef": {"namespace": "x"}}, "spec.profileRef.name", "sb-profile-no-name"),
    invalid(SB, {"securityContext": {"runAsUser": 0}}, "spec.securityContext.runAsUser", "sb-root"),
    invalid(
        SB,
        {"securityContext": {"seccompProfile": {"type": "Localhost"}}},
        "spec.securityContext.seccompProfile.localhostProfile",
        "sb-seccomp-localhost-no-path",
    ),
    invalid(
        SB,
        {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
        "spec.securityContext.seccompProfile.type",
        "sb-seccomp-unconfined",
    ),
    invalid(
        SB,
        {"filesystem": {"writablePaths": ["tmp"]}},
        "spec.filesystem.writablePaths[0]",
        "sb-path-relative",
    ),
    invalid(
        SB,
        {"filesystem": {"writablePaths": ["/tmp/../etc"]}},
        "spec.filesystem.writablePaths[0]",
        "sb-path-dotdot",
    ),
    invalid(
        SB,
        {"storage": {"sharedVolumes": [{"claimName": "data"}]}},
        "spec.storage.sharedVolumes[0].mountPath",
        "sb-shared-volume-no-mount",
    ),
    invalid(
        SB,
        {"storage": {"storageClass": "fast"}},
        "spec.storage.storageClass",
        "sb-storage-class-not-persistent",
    ),
    # WarmPool
    invalid(WP, {"minSize": 5, "maxSize": 2}, "spec.minSize", "wp-min-above-max"),
    invalid(WP, {"minSize": -1}, "spec.minSize", "wp-min-negative"),
    invalid(WP, {"minSize": DELETE}, "spec.minSize", "wp-min-missing"),
    invalid(WP, {"ttl": -1}, "spec.ttl", "wp-ttl-negative"),
    invalid(
        WP,
        {"maxSize": 5, "autoScaling": {"targetUtilization": 0}},
        "spec.autoScaling.targetUtilization",
        "wp-target-0",
    ),
    invalid(
        WP,
        {"maxSize": 5, "autoScaling": {"targetUtilization": 101}},
        "spec.autoScaling.targetUtilization",
        "wp-target-101",
    ),
    invalid(WP, {"autoScaling": {"enabled": True}}, "spec.maxSize", "wp-autoscaling-unbounded"),
    invalid(WP, {"securityLevel": "custom"}, "spec.profileRef", "wp-custom-needs-profile"),
    invalid(WP, {"resources": {"cpu": "two"}}, "spec.resources.cpu", "wp-cpu-word"),
    invalid(WP, {"maxPodAge": -5}, "spec.maxPodAge", "wp-max-pod-age-negative"),
    # SandboxProfile
    invalid(SBP, {"language": DELETE}, "spec.language", "sbp-language-missing"),
    invalid(
        SBP,
        {"networkPolicies": [{"type": "sideways"}]},
        "spec.networkPolicies[0].type",
        "sbp-direction-enum",
    ),
    invalid(
        SBP,
        {
            "networkPolicies": [
                {"type": "egress", "rules": [{"domain": "a.b", "cidr": "10.0.0.0/8"}]}
            ]
        },
        "spec.networkPolicies[0].rules[0]",
        "sbp-domain-and-cidr",
    ),
    invalid(
        SBP,
        {"networkPolicies": [{"type": "egress", "rules": [{"cidr": "10.0.0.0/33"}]}]},
        "spec.networkPolicies[0].rules[0].cidr",
        "sbp-cidr-bad",
    ),
    invalid(
        SBP,
        {
            "networkPolicies": [
                {"type": "egress", "rules": [{"cidr": "10.0.0.0/8", "ports": [{"port": 70000}]}]}
            ]
        },
        "spec.networkPolicies[0].rules[0].ports[0].port",
        "sbp-port-70000",
    ),
    invalid(
        SBP,
        {"networkPolicies": [{"type": "ingress", "rules": [{"domain": "a.b"}]}]},
        "spec.networkPolicies[0].rules",
        "sbp-ingress-domain",
    ),
    invalid(
        SBP,
        {"filesystemConfig": {"readOnlyPaths": ["/work"], "writablePaths": ["/work/out"]}},
        "spec.filesystemConfig.writablePaths",
        "sbp-paths-overlap",
    ),
    invalid(
        SBP,
        {"resourceDefaults": {"memory": "lots"}},
        "spec.resourceDefaults.memory",
        "sbp-memory-word",
    ),
    # WarmPod
    invalid(WPOD, {"poolRef": DELETE}, "spec.poolRef", "wpod-pool-missing"),
    invalid(WPOD, {"resources": {"cpu": DELETE}}, "spec.resources.cpu", "wpod-cpu-missing"),
    invalid(WPOD, {"securityLevel": "low"}, "spec.securityLevel", "wpod-security-level-enum"),
    # RuntimeEnvironment
    invalid(RTE, {"image": DELETE}, "spec.image", "rte-image-missing"),
    invalid(RTE, {"version": DELETE}, "spec.version", "rte-version-missing"),
    invalid(RTE, {"imageDigest": "md5:abc"}, "spec.imageDigest", "rte-digest-bad"),
    invalid(RTE, {"securityFeatures": ["selinux"]}, "spec.securityFeatures[0]", "rte-feature"),
    invalid(
        RTE,
        {"resourceRequirements": {"minCpu": "2", "recommendedCpu": "500m"}},
        "spec.resourceRequirements.minCpu",
        "rte-min-above-recommended",
    ),
    invalid(
        RTE,
        {"appArmorProfile": {"type": "Unconfined"}},
        "spec.appArmorProfile.type",
        "rte-apparmor-unconfined",
    ),
]


def assert_rejected(reply: Reply, field: str) -> None:
    assert reply.status == 422, reply
    assert reply.body["reason"] == "Invalid", reply
    assert field in reply.body["message"], reply
    causes = [c.get("field") for c in reply.body["details"]["causes"]]
    assert field in causes, reply


@pytest.mark.parametrize(("kind", "spec", "field"), INVALID)
async def test_invalid_object_is_rejected_naming_the_field(
    objects: Objects, kind: str, spec: dict[str, Any], field: str
) -> None:
    reply = await objects.create(new_object(kind, spec))
    assert_rejected(reply, field)


@pytest.mark.parametrize("kind", list(MODULE_BY_KIND))
async def test_object_without_spec_is_rejected(objects: Objects, kind: str) -> None:
    body = new_object(kind, {})
    del body["spec"]
    assert_rejected(await objects.create(body), "spec")


# --- update rules -----------------------------------------------------------------------


async def create_ok(objects: Objects, body: dict[str, Any]) -> dict[str, Any]:
    reply = await objects.create(body)
    assert reply.status == 201, reply
    return reply.body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"runtime": "python:3.12"}, "spec.runtime"),
        ({"securityLevel": "high"}, "spec.securityLevel"),
        ({"resources": {"cpu": "2"}}, "spec.resources"),
        ({"profileRef": {"name": "other"}}, "spec.profileRef"),
        ({"storage": {"persistent": True}}, "spec.storage"),
        ({"securityContext": {"runAsUser": 2000}}, "spec.securityContext"),
        ({"filesystem": {"readOnlyRoot": False}}, "spec.filesystem"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_sandbox_spec_is_immutable(
    objects: Objects, changes: dict[str, Any], field: str
) -> None:
    spec = merged(MINIMAL[SB], {"resources": {"cpu": "1"}, "profileRef": {"name": "p"}})
    stored = await create_ok(objects, new_object(SB, spec))
    reply = await objects.replace(merged(stored, {"spec": changes}))
    assert_rejected(reply, field)


async def test_sandbox_timeout_and_network_access_may_change(objects: Objects) -> None:
    stored = await create_ok(objects, new_object(SB, MINIMAL[SB]))
    changes = {"timeout": 1200, "networkAccess": {"egress": [{"domain": "pypi.org"}]}}
    reply = await objects.replace(merged(stored, {"spec": changes}))
    assert reply.status == 200, reply
    assert reply.body["spec"]["timeout"] == 1200
    assert reply.body["spec"]["networkAccess"]["egress"] == [{"domain": "pypi.org"}]
    assert reply.body["metadata"]["generation"] == 2


async def test_warmpod_spec_is_immutable(objects: Objects) -> None:
    stored = await create_ok(objects, new_object(WPOD, MINIMAL[WPOD]))
    reply = await objects.replace(merged(stored, {"spec": {"runtime": "python:3.12"}}))
    assert_rejected(reply, "spec")


@pytest.mark.parametrize(
    ("kind", "status", "field"),
    [
        (WPOD, {"phase": "Assigned"}, "status.assignedTo"),
        (WPOD, {"phase": "Sleeping"}, "status.phase"),
        (SB, {"phase": "Exploded"}, "status.phase"),
        (SB, {"conditions": [CONDITION, CONDITION]}, "status.conditions[1]"),
        (
            SB,
            {"conditions": [merged(CONDITION, {"reason": DELETE})]},
            "status.conditions[0].reason",
        ),
        (SB, {"warmPodRef": {"namespace": "x"}}, "status.warmPodRef.name"),
        (WP, {"availablePods": -1}, "status.availablePods"),
        (
            SBP,
            {"conditions": [merged(CONDITION, {"status": "Maybe"})]},
            "status.conditions[0].status",
        ),
        (RTE, {"lastValidated": "yesterday"}, "status.lastValidated"),
    ],
)
async def test_invalid_status_is_rejected(
    objects: Objects, kind: str, status: dict[str, Any], field: str
) -> None:
    stored = await create_ok(objects, new_object(kind, MINIMAL[kind]))
    reply = await objects.replace(stored | {"status": status}, status=True)
    assert_rejected(reply, field)


# --- round trip through the models ------------------------------------------------------

OUR_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp")


@pytest.mark.parametrize("kind", list(MODULE_BY_KIND))
async def test_served_objects_round_trip_through_the_models(objects: Objects, kind: str) -> None:
    mod = MODULE_BY_KIND[kind]
    body = new_object(kind, FULL[kind]["spec"], name="full")
    body["metadata"] |= {
        "labels": {"app": "llmsafespace"},
        "annotations": {"llmsafespace.dev/note": "x"},
        "finalizers": [kinds.FINALIZER],
    }
    created = await create_ok(objects, body)
    resource = RESOURCE_BY_KIND[kind]
    try:
        assert created["spec"] == FULL[kind]["spec"]  # every default was already explicit

        # The status write goes through the model too: decode, set status, encode.
        obj = mod.decode(json.dumps(created))
        obj.status = codec.from_dict(FULL[kind]["status"], model=STATUS_MODEL[kind])
        written = await objects.replace(json.loads(mod.encode(obj)), status=True)
        assert written.status == 200, written

        served = await objects.get(resource, created["metadata"]["name"])
        assert served.status == 200, served
        assert served.body["status"] == FULL[kind]["status"]
        reencoded = json.loads(mod.encode(mod.decode(json.dumps(served.body))))
        assert reencoded["spec"] == served.body["spec"]
        assert reencoded["status"] == served.body["status"]
        assert reencoded["apiVersion"] == served.body["apiVersion"]
        assert reencoded["kind"] == served.body["kind"]
        for key in (*OUR_METADATA, "labels", "annotations", "finalizers"):
            assert reencoded["metadata"].get(key) == served.body["metadata"].get(key), key
    finally:
        # Nothing runs to remove our finalizer: without this, deleting the test's namespace
        # (or the cluster-scoped object) would hang forever.
        latest = await objects.get(resource, created["metadata"]["name"])
        cleared = await objects.replace(merged(latest.body, {"metadata": {"finalizers": []}}))
        assert cleared.status == 200, cleared


# --- status subresource -----------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MODULE_BY_KIND))
async def test_status_subresource_separates_spec_and_status(objects: Objects, kind: str) -> None:
    resource = RESOURCE_BY_KIND[kind]
    status = FULL[kind]["status"]
    body = new_object(kind, MINIMAL[kind]) | {"status": status}
    created = await create_ok(objects, body)
    assert "status" not in created  # create never sets status

    # /status takes the status and ignores a spec change in the same body.
    changed_spec = merged(created, {"spec": {"runtime": "go:1.22", "language": "go"}})
    written = await objects.replace(changed_spec | {"status": status}, status=True)
    assert written.status == 200, written
    served = await objects.get(resource, created["metadata"]["name"])
    assert served.body["status"] == status
    assert served.body["spec"] == created["spec"]
    assert served.body["metadata"]["generation"] == created["metadata"]["generation"]

    # The main resource ignores a status change.
    other = merged(served.body, {"status": {"observedGeneration": 99}})
    replaced = await objects.replace(other)
    assert replaced.status == 200, replaced
    final = await objects.get(resource, created["metadata"]["name"])
    assert final.body["status"] == status

    # A stale resourceVersion on /status is a conflict, never a silent overwrite: the one
    # from the create is stale since the status write above.
    stale = await objects.replace(created | {"status": {}}, status=True)
    assert stale.status == 409, stale
    assert (await objects.get(resource, created["metadata"]["name"])).body["status"] == status
