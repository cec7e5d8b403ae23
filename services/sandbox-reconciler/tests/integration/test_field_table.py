"""Each Sandbox spec field and each SandboxProfile field visibly lands on the children.

End to end on the real platform: Sandboxes are created in a namespace enforcing Pod Security
``restricted``; the watcher and the reconciler run; the children are read back from the API
server (so what is checked is what the API server stored, after admission and defaulting).
One table row per field: ``(field, object, JSON path, expected value)``. Two sandboxes carry
every row, so the platform work is done once per module:

- ``spec-box`` sets every spec field itself (no profile);
- ``profile-box`` sets almost nothing and takes the rest from its SandboxProfile.

Fields that land on no child, on purpose: ``spec.timeout`` (the lifetime, enforced by the
reconciler: ``test_lifecycle.py``), profile ``language`` (must equal the runtime's, else
``ProfileConflict``: ``test_failures.py``) and profile ``preInstalledPackages`` (what the
runtime image holds; the validator's business). Egress domains are IP literals here
(``151.101.2.10``): ``getaddrinfo`` answers them without DNS, so the ipblock path runs for real
without depending on this machine's resolver.

Paths: ``$.a.b`` keys, ``['key.with.dots']``, ``[0]`` list indexes and ``[?name=value]`` the
first list item whose ``name`` is ``value``.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import prometheus_client
import pytest
from kubernetes_asyncio import client as k8s_client
from reconciler_harness import Cluster, World, condition

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import labels
from lss_common.observability import metrics
from lss_common.testing import eventually
from lss_dev import fixtures_kube
from lss_dev import platform as platform_module
from lss_sandbox_reconciler import names
from lss_sandbox_reconciler.render import network
from lss_sandbox_reconciler.render import owner as owner_module
from lss_sandbox_reconciler.render import pod as pod_render

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/llmsafespace/runtime-python:3.11"
SPEC_BOX = "spec-box"
PROFILE_BOX = "profile-box"
PROFILE = "table"

SPEC: dict[str, Any] = {
    "securityLevel": "high",
    "timeout": 900,
    "resources": {"cpu": "1500m", "memory": "768Mi", "ephemeralStorage": "2Gi"},
    "networkAccess": {
        "ingress": True,
        "egress": [{"domain": "151.101.2.10", "ports": [{"port": 8443, "protocol": "TCP"}]}],
    },
    "filesystem": {"readOnlyRoot": False, "writablePaths": ["/home/app"]},
    "storage": {
        "persistent": True,
        "volumeSize": "3Gi",
        "storageClass": "fast-table",
        "sharedVolumes": [{"claimName": "shared-data", "mountPath": "/shared", "readOnly": True}],
    },
    "securityContext": {
        "runAsUser": 2001,
        "runAsGroup": 3001,
        "seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/spec.json"},
    },
}
PROFILE_BOX_SPEC: dict[str, Any] = {
    "securityLevel": "standard",
    "profileRef": {"name": PROFILE},
    "resources": {"cpuPinning": True},
}
PROFILE_SPEC: dict[str, Any] = {
    "securityLevel": "high",
    "seccompProfile": {"type": "Localhost", "localhostProfile": "llmsafespace/profile.json"},
    "networkPolicies": [
        {
            "type": "egress",
            "rules": [
                {"cidr": "151.101.64.0/18", "ports": [{"port": 5432, "protocol": "TCP"}]},
                {"domain": "151.101.100.7", "ports": [{"port": 9000, "protocol": "TCP"}]},
            ],
        },
        {
            "type": "ingress",
            "rules": [{"cidr": "10.30.0.0/16", "ports": [{"port": 8080, "protocol": "TCP"}]}],
        },
    ],
    "preInstalledPackages": ["numpy"],
    "resourceDefaults": {"cpu": "1200m", "memory": "1Gi", "ephemeralStorage": "3Gi"},
    "filesystemConfig": {"writablePaths": ["/var/cache/app"], "readOnlyPaths": ["/etc/app"]},
}

POD = "Pod"
SERVICE = "Service"
ACCOUNT = "ServiceAccount"
CLAIM = "PersistentVolumeClaim"
DENY = "NetworkPolicy/deny"
INGRESS = "NetworkPolicy/ingress"
EGRESS = "NetworkPolicy/egress"


@dataclass(frozen=True)
class Row:
    field: str
    box: str
    obj: str
    path: str
    expected: Any
    """A value, or a callable of the sandbox's UID giving it."""


C = "$.spec.containers[?name=sandbox]"
ROWS: tuple[Row, ...] = (
    # -- the sandbox's own spec ------------------------------------------------------------
    Row("spec.runtime", SPEC_BOX, POD, f"{C}.image", IMAGE),
    Row("spec.securityLevel=high", SPEC_BOX, POD, "$.spec.runtimeClassName", "gvisor"),
    Row("spec.resources.cpu", SPEC_BOX, POD, f"{C}.resources.limits.cpu", "1500m"),
    Row("spec.resources.cpu (request)", SPEC_BOX, POD, f"{C}.resources.requests.cpu", "1500m"),
    Row("spec.resources.memory", SPEC_BOX, POD, f"{C}.resources.limits.memory", "768Mi"),
    Row(
        "spec.resources.memory (request)",
        SPEC_BOX,
        POD,
        f"{C}.resources.requests.memory",
        "768Mi",
    ),
    Row(
        "spec.resources.ephemeralStorage",
        SPEC_BOX,
        POD,
        f"{C}.resources.limits['ephemeral-storage']",
        "2Gi",
    ),
    Row(
        "spec.resources.ephemeralStorage (emptyDir sizeLimit)",
        SPEC_BOX,
        POD,
        "$.spec.volumes[?name=tmp].emptyDir.sizeLimit",
        "2Gi",
    ),
    Row(
        "spec.networkAccess.ingress",
        SPEC_BOX,
        INGRESS,
        "$.spec.ingress[0]",
        {"ports": [{"port": 8080, "protocol": "TCP"}]},
    ),
    Row(
        "spec.networkAccess.egress[].domain",
        SPEC_BOX,
        EGRESS,
        "$.spec.egress[0].to",
        [{"ipBlock": {"cidr": "151.101.2.10/32"}}],
    ),
    Row(
        "spec.networkAccess.egress[].ports",
        SPEC_BOX,
        EGRESS,
        "$.spec.egress[0].ports",
        [{"port": 8443, "protocol": "TCP"}],
    ),
    Row(
        "spec.networkAccess.egress[].domain (annotation)",
        SPEC_BOX,
        EGRESS,
        f"$.metadata.annotations['{network.ALLOWED_DOMAINS_ANNOTATION}']",
        "151.101.2.10",
    ),
    Row(
        "spec.filesystem.readOnlyRoot",
        SPEC_BOX,
        POD,
        f"{C}.securityContext.readOnlyRootFilesystem",
        False,
    ),
    Row(
        "spec.filesystem.writablePaths",
        SPEC_BOX,
        POD,
        f"{C}.volumeMounts[?mountPath=/home/app].name",
        "writable-2",
    ),
    Row(
        "spec.filesystem.writablePaths (emptyDir)",
        SPEC_BOX,
        POD,
        "$.spec.volumes[?name=writable-2].emptyDir.sizeLimit",
        "2Gi",
    ),
    Row(
        "spec.storage.persistent (claim mounted at /data)",
        SPEC_BOX,
        POD,
        "$.spec.volumes[?name=data].persistentVolumeClaim.claimName",
        names.claim_name(SPEC_BOX),
    ),
    Row(
        "spec.storage.persistent (mount)",
        SPEC_BOX,
        POD,
        f"{C}.volumeMounts[?mountPath=/data].name",
        "data",
    ),
    Row(
        "spec.storage.persistent (PVC)",
        SPEC_BOX,
        CLAIM,
        "$.spec.accessModes",
        ["ReadWriteOnce"],
    ),
    Row("spec.storage.volumeSize", SPEC_BOX, CLAIM, "$.spec.resources.requests.storage", "3Gi"),
    Row("spec.storage.storageClass", SPEC_BOX, CLAIM, "$.spec.storageClassName", "fast-table"),
    Row(
        "spec.storage.sharedVolumes[].claimName",
        SPEC_BOX,
        POD,
        "$.spec.volumes[?name=shared-0].persistentVolumeClaim",
        {"claimName": "shared-data", "readOnly": True},
    ),
    Row(
        "spec.storage.sharedVolumes[].mountPath/readOnly",
        SPEC_BOX,
        POD,
        f"{C}.volumeMounts[?name=shared-0]",
        {"name": "shared-0", "mountPath": "/shared", "readOnly": True},
    ),
    Row("spec.securityContext.runAsUser", SPEC_BOX, POD, "$.spec.securityContext.runAsUser", 2001),
    Row(
        "spec.securityContext.runAsUser (container)",
        SPEC_BOX,
        POD,
        f"{C}.securityContext.runAsUser",
        2001,
    ),
    Row(
        "spec.securityContext.runAsGroup", SPEC_BOX, POD, "$.spec.securityContext.runAsGroup", 3001
    ),
    Row(
        "spec.securityContext.runAsGroup (fsGroup)",
        SPEC_BOX,
        POD,
        "$.spec.securityContext.fsGroup",
        3001,
    ),
    Row(
        "spec.securityContext.seccompProfile",
        SPEC_BOX,
        POD,
        "$.spec.securityContext.seccompProfile",
        {"type": "Localhost", "localhostProfile": "llmsafespace/spec.json"},
    ),
    # -- identity: metadata.name and UID on every child ----------------------------------
    Row(
        "metadata.uid (Service selector)",
        SPEC_BOX,
        SERVICE,
        "$.spec.selector",
        lambda uid: {owner_module.SANDBOX_UID: uid},
    ),
    Row(
        "metadata.uid (Service owner)",
        SPEC_BOX,
        SERVICE,
        "$.metadata.ownerReferences[0].uid",
        lambda uid: uid,
    ),
    Row(
        "Service on the agent port",
        SPEC_BOX,
        SERVICE,
        "$.spec.ports[0]",
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
    ),
    Row(
        "metadata.uid (pod label)",
        SPEC_BOX,
        POD,
        f"$.metadata.labels['{owner_module.SANDBOX_UID}']",
        lambda uid: uid,
    ),
    Row(
        "metadata.uid (deny selects the pod)",
        SPEC_BOX,
        DENY,
        "$.spec.podSelector.matchLabels",
        lambda uid: {owner_module.SANDBOX_UID: uid},
    ),
    Row("default deny both ways", SPEC_BOX, DENY, "$.spec.policyTypes", ["Ingress", "Egress"]),
    Row(
        "metadata.name (ServiceAccount)",
        SPEC_BOX,
        POD,
        "$.spec.serviceAccountName",
        names.service_account_name(SPEC_BOX),
    ),
    Row(
        "ServiceAccount without a token",
        SPEC_BOX,
        ACCOUNT,
        "$.automountServiceAccountToken",
        False,
    ),
    # -- the profile's fields (the sandbox leaves them unset) ------------------------------
    Row("profile.securityLevel=high", PROFILE_BOX, POD, "$.spec.runtimeClassName", "gvisor"),
    Row(
        "profile.seccompProfile",
        PROFILE_BOX,
        POD,
        "$.spec.securityContext.seccompProfile",
        {"type": "Localhost", "localhostProfile": "llmsafespace/profile.json"},
    ),
    Row(
        "profile.networkPolicies egress cidr",
        PROFILE_BOX,
        EGRESS,
        "$.spec.egress[0]",
        {
            "to": [{"ipBlock": {"cidr": "151.101.64.0/18"}}],
            "ports": [{"port": 5432, "protocol": "TCP"}],
        },
    ),
    Row(
        "profile.networkPolicies egress domain",
        PROFILE_BOX,
        EGRESS,
        "$.spec.egress[1]",
        {
            "to": [{"ipBlock": {"cidr": "151.101.100.7/32"}}],
            "ports": [{"port": 9000, "protocol": "TCP"}],
        },
    ),
    Row(
        "profile.networkPolicies ingress cidr",
        PROFILE_BOX,
        INGRESS,
        "$.spec.ingress",
        [
            {
                "from": [{"ipBlock": {"cidr": "10.30.0.0/16"}}],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }
        ],
    ),
    # cpuPinning (the sandbox's) rounds the profile's 1200m up to whole cores.
    Row("profile.resourceDefaults.cpu", PROFILE_BOX, POD, f"{C}.resources.limits.cpu", "2"),
    Row("spec.resources.cpuPinning", PROFILE_BOX, POD, f"{C}.resources.requests.cpu", "2"),
    Row(
        "spec.resources.cpuPinning (node selector)",
        PROFILE_BOX,
        POD,
        "$.spec.nodeSelector['cpu-pinning']",
        "true",
    ),
    Row(
        "spec.resources.cpuPinning (annotation)",
        PROFILE_BOX,
        POD,
        f"$.metadata.annotations['{pod_render.CPU_PINNING_ANNOTATION}']",
        "true",
    ),
    Row("profile.resourceDefaults.memory", PROFILE_BOX, POD, f"{C}.resources.limits.memory", "1Gi"),
    Row(
        "profile.resourceDefaults.ephemeralStorage",
        PROFILE_BOX,
        POD,
        f"{C}.resources.limits['ephemeral-storage']",
        "3Gi",
    ),
    Row(
        "profile.filesystemConfig.writablePaths",
        PROFILE_BOX,
        POD,
        f"{C}.volumeMounts[?mountPath=/var/cache/app].name",
        "writable-2",
    ),
    Row(
        "profile.filesystemConfig.readOnlyPaths (root stays read-only)",
        PROFILE_BOX,
        POD,
        f"{C}.securityContext.readOnlyRootFilesystem",
        True,
    ),
    Row(
        "no spec.storage: no claim mounted",
        PROFILE_BOX,
        POD,
        "$.spec.volumes[?name=data]",
        None,
    ),
)

_TOKEN = re.compile(r"\.([A-Za-z0-9_-]+)|\['([^']+)'\]|\[(\d+)\]|\[\?([^=\]]+)=([^\]]+)\]")


def lookup(obj: Any, path: str) -> Any:
    """The value at ``path`` (see the module docstring); None when any step is missing."""
    if not path.startswith("$"):
        raise ValueError(f"a path starts with $: {path}")
    rest = path[1:]
    current = obj
    while rest:
        match = _TOKEN.match(rest)
        if match is None:
            raise ValueError(f"cannot parse {rest!r} in {path}")
        rest = rest[match.end() :]
        key, quoted, index, field, value = match.groups()
        if current is None:
            return None
        if key is not None or quoted is not None:
            current = current.get(key if key is not None else quoted)
        elif index is not None:
            position = int(index)
            current = current[position] if position < len(current) else None
        else:
            current = next((item for item in current if str(item.get(field)) == value), None)
    return current


def test_lookup() -> None:
    doc = {"a": {"b.c": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]}}
    assert lookup(doc, "$.a['b.c'][1].v") == 2
    assert lookup(doc, "$.a['b.c'][?name=x].v") == 1
    assert lookup(doc, "$.a['b.c'][?name=z].v") is None
    assert lookup(doc, "$.a.missing.deeper") is None


@dataclass
class Landed:
    """What the API server stored for each sandbox: object key → JSON, and the UIDs."""

    objects: dict[tuple[str, str], dict[str, Any]]
    uids: dict[str, str]


def _wanted(box: str) -> dict[str, tuple[objects.ApiResource, str]]:
    found = {
        POD: (objects.POD, names.pod_name(box)),
        SERVICE: (objects.SERVICE, names.service_name(box)),
        ACCOUNT: (objects.SERVICE_ACCOUNT, names.service_account_name(box)),
        DENY: (objects.NETWORK_POLICY, names.policy_name(box, policy=names.Policy.DENY)),
        INGRESS: (objects.NETWORK_POLICY, names.policy_name(box, policy=names.Policy.INGRESS)),
        EGRESS: (objects.NETWORK_POLICY, names.policy_name(box, policy=names.Policy.EGRESS)),
    }
    if box == SPEC_BOX:
        found[CLAIM] = (objects.PERSISTENT_VOLUME_CLAIM, names.claim_name(box))
    return found


@pytest.fixture(scope="module")
async def landed(
    platform: platform_module.Platform, nats_url: str, kube_api: k8s_client.ApiClient
) -> AsyncIterator[Landed]:
    """Both sandboxes created once per module; their children as the API server stores them."""
    kube = client.Kube(
        api=kube_api,
        request_timeout_seconds=10.0,
        metrics=metrics.KubeMetrics.register(prometheus_client.CollectorRegistry()),
    )
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    core = k8s_client.CoreV1Api(kube_api)
    await core.create_namespace(
        k8s_client.V1Namespace(
            metadata=k8s_client.V1ObjectMeta(name=namespace, labels=fixtures_kube.PSS_LABELS)
        )
    )
    cluster = Cluster(kube, namespace=namespace, language=f"lang{uuid.uuid4().hex[:8]}")
    world = World(platform=platform, nats_url=nats_url, namespace=namespace)
    try:
        # Pinned pods never schedule on kwok's nodes (no cpu-pinning label): keep them
        # Creating instead of Failed/Unschedulable, so their children stay to be read.
        await world.start_reconciler(unschedulable_deadline_seconds=3600, egress_mode="ipblock")
        await world.start_watcher()
        await cluster.create_runtime(image=IMAGE)
        await cluster.create_profile(PROFILE, spec=PROFILE_SPEC)
        # The shared volume's claim, shared with sandboxes by whoever owns it.
        await objects.create_object(
            kube,
            resource=objects.PERSISTENT_VOLUME_CLAIM,
            namespace=namespace,
            body={
                "metadata": {
                    "name": "shared-data",
                    "labels": {labels.SHAREABLE: labels.SHAREABLE_READ_ONLY},
                },
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        uids = {
            SPEC_BOX: (await cluster.create_sandbox(SPEC_BOX, **SPEC))["metadata"]["uid"],
            PROFILE_BOX: (await cluster.create_sandbox(PROFILE_BOX, **PROFILE_BOX_SPEC))[
                "metadata"
            ]["uid"],
        }
        stored: dict[tuple[str, str], dict[str, Any]] = {}

        async def everything_stored() -> bool:
            for box in (SPEC_BOX, PROFILE_BOX):
                for key, (resource, name) in _wanted(box).items():
                    if (box, key) in stored:
                        continue
                    found = await cluster.child(resource, name)
                    if found is None:
                        return False
                    stored[(box, key)] = found
                obj = await cluster.sandbox(box)
                if obj is None or not any(
                    c["type"] == "NetworkReady" and c["status"] == "True"
                    for c in (obj.get("status") or {}).get("conditions") or ()
                ):
                    return False
            return True

        try:
            await eventually.eventually(
                everything_stored, timeout_seconds=60, describe="every child stored"
            )
        except eventually.EventuallyTimeout as error:
            raise AssertionError(f"{error}; stored so far: {sorted(stored)}") from None
        for box in (SPEC_BOX, PROFILE_BOX):
            obj = await cluster.sandbox(box)
            assert obj is not None
            assert condition(obj, "Ready")["reason"] != "Failed", obj["status"]
            assert obj["status"]["phase"] in ("Creating", "Running"), obj["status"]
        yield Landed(objects=stored, uids=uids)
    finally:
        await world.stop()
        for box in (SPEC_BOX, PROFILE_BOX):
            with contextlib.suppress(errors.LssError):
                await cluster.delete_sandbox(box)
        await cluster.cleanup()
        await core.delete_namespace(namespace)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.field}->{row.obj}")
def test_field_lands(landed: Landed, row: Row) -> None:
    stored = landed.objects[(row.box, row.obj)]
    expected: Any = row.expected
    if callable(expected):
        expected = expected(landed.uids[row.box])
    found = lookup(stored, row.path)
    assert found == expected, (
        f"{row.field}: {row.obj} {stored['metadata']['name']} at {row.path}: "
        f"{found!r} != {expected!r}"
    )


def test_every_row_is_checked_on_both_sandboxes(landed: Landed) -> None:
    """Every object of the table exists for both sandboxes and no row is a silent None."""
    for row in ROWS:
        assert (row.box, row.obj) in landed.objects
    assert sum(1 for row in ROWS if row.expected is None) == 1
