"""mapping: which owner keys an object's change wakes (pure).

Matrix: owner references to each LLMSafeSpace kind (controller or not), to other groups and
unknown kinds; cluster-scoped owners; the owner labels (same and other namespace, missing
names); a WarmPod's spec.poolRef (same and other namespace); de-duplication and order; own
keys of custom kinds (cluster-scoped: no namespace) and none for children. Hypothesis: any
labels and references produce keys only of known kinds, never the object's own key, never
twice, and references to foreign groups never matter.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from lss_common.models import labels
from lss_watcher import mapping, resources, settings, views

TABLE = {r.name: r for r in resources.watched_resources(settings.WatcherOptions())}
POD = TABLE[resources.Name.POD]
SANDBOX = TABLE[resources.Name.SANDBOX]
WARM_POD = TABLE[resources.Name.WARM_POD]
RUNTIME = TABLE[resources.Name.RUNTIME_ENVIRONMENT]
Key = mapping.ObjectKey


def view(
    *,
    name: str = "obj",
    namespace: str | None = "ns",
    owners: list[dict[str, Any]] | None = None,
    obj_labels: dict[str, str] | None = None,
    pool_ref: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> views.ObjectView:
    document: dict[str, Any] = {
        "metadata": {
            "name": name,
            "uid": "u",
            "resourceVersion": "1",
            "labels": obj_labels,
            "annotations": annotations,
            "ownerReferences": owners,
        }
    }
    if namespace is not None:
        document["metadata"]["namespace"] = namespace
    if pool_ref is not None:
        document["spec"] = {"poolRef": pool_ref}
    return views.decode_object(msgspec.json.encode(document))


def ref(
    kind: str, name: str, *, api_version: str = "llmsafespace.dev/v1", controller: bool = True
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": "x",
        "controller": controller,
    }


@pytest.mark.parametrize(
    ("resource", "obj", "expected"),
    [
        # Owner references to each of our kinds.
        (POD, view(owners=[ref("Sandbox", "sb")]), [Key("sandbox", "ns", "sb")]),
        (POD, view(owners=[ref("WarmPod", "wp")]), [Key("warmpod", "ns", "wp")]),
        (POD, view(owners=[ref("WarmPool", "pool")]), [Key("warmpool", "ns", "pool")]),
        (POD, view(owners=[ref("SandboxProfile", "p")]), [Key("sandboxprofile", "ns", "p")]),
        (
            POD,
            view(owners=[ref("RuntimeEnvironment", "py")]),
            [Key("runtimeenvironment", None, "py")],
        ),
        # Not controller: still an owner that wants to hear about it.
        (POD, view(owners=[ref("WarmPod", "wp", controller=False)]), [Key("warmpod", "ns", "wp")]),
        # Both, in reference order.
        (
            POD,
            view(owners=[ref("Sandbox", "sb"), ref("WarmPod", "wp", controller=False)]),
            [Key("sandbox", "ns", "sb"), Key("warmpod", "ns", "wp")],
        ),
        # Other groups, other versions of our group, unknown kinds.
        (POD, view(owners=[ref("ReplicaSet", "rs", api_version="apps/v1")]), []),
        (POD, view(owners=[ref("Sandbox", "sb", api_version="example.com/v1")]), []),
        (
            POD,
            view(owners=[ref("Sandbox", "sb", api_version="llmsafespace.dev/v2")]),
            [Key("sandbox", "ns", "sb")],
        ),
        (POD, view(owners=[ref("Gadget", "g")]), []),
        (POD, view(owners=[ref("Sandbox", "")]), []),
        # Labels: same namespace, other namespace, and no name.
        (POD, view(obj_labels={labels.SANDBOX_NAME: "sb"}), [Key("sandbox", "ns", "sb")]),
        (
            POD,
            view(obj_labels={labels.SANDBOX_NAME: "sb", labels.SANDBOX_NAMESPACE: "home"}),
            [Key("sandbox", "home", "sb")],
        ),
        (POD, view(obj_labels={labels.SANDBOX_NAMESPACE: "home"}), []),
        (POD, view(obj_labels={labels.SANDBOX_NAME: ""}), []),
        (
            POD,
            view(obj_labels={labels.WARM_POD_NAME: "wp", labels.WARM_POD_NAMESPACE: "pools"}),
            [Key("warmpod", "pools", "wp")],
        ),
        (POD, view(obj_labels={labels.WARM_POOL_NAME: "pool"}), [Key("warmpool", "ns", "pool")]),
        (POD, view(obj_labels={"app": "llmsafespace"}), []),
        # A reference and a label naming the same owner: one key.
        (
            POD,
            view(owners=[ref("Sandbox", "sb")], obj_labels={labels.SANDBOX_NAME: "sb"}),
            [Key("sandbox", "ns", "sb")],
        ),
        # A WarmPod's pool, from spec.poolRef, in its namespace or another.
        (WARM_POD, view(name="wp", pool_ref={"name": "pool"}), [Key("warmpool", "ns", "pool")]),
        (
            WARM_POD,
            view(name="wp", pool_ref={"name": "pool", "namespace": "pools"}),
            [Key("warmpool", "pools", "pool")],
        ),
        (
            WARM_POD,
            view(name="wp", owners=[ref("WarmPool", "pool")], pool_ref={"name": "pool"}),
            [Key("warmpool", "ns", "pool")],
        ),
        # poolRef means nothing on other kinds.
        (POD, view(pool_ref={"name": "pool"}), []),
        # An object never wakes itself.
        (SANDBOX, view(name="sb", obj_labels={labels.SANDBOX_NAME: "sb"}), []),
        # A retained claim of a sandbox whose name is too long for a label: the annotation.
        (
            POD,
            view(annotations={labels.SANDBOX_NAME_ANNOTATION: "s" * 80, "other": "x"}),
            [Key("sandbox", "ns", "s" * 80)],
        ),
        # ... never over an owner reference or a label.
        (
            POD,
            view(
                owners=[ref("Sandbox", "sb")],
                annotations={labels.SANDBOX_NAME_ANNOTATION: "other"},
            ),
            [Key("sandbox", "ns", "sb")],
        ),
        # A cluster-scoped object cannot have namespaced owners.
        (RUNTIME, view(namespace=None, owners=[ref("Sandbox", "sb")]), []),
        (
            RUNTIME,
            view(namespace=None, owners=[ref("RuntimeEnvironment", "base")]),
            [Key("runtimeenvironment", None, "base")],
        ),
    ],
)
def test_owner_keys(
    resource: resources.WatchedResource, obj: views.ObjectView, expected: list[Key]
) -> None:
    assert list(mapping.owner_keys(resource, obj)) == expected


def test_own_keys() -> None:
    assert mapping.own_key(SANDBOX, view(name="a.b")) == Key("sandbox", "ns", "a.b")
    assert mapping.own_key(RUNTIME, view(name="py", namespace=None)) == Key(
        "runtimeenvironment", None, "py"
    )
    assert mapping.own_key(POD, view()) is None


names = st.text(alphabet="abc.-", min_size=0, max_size=5)
label_keys = st.sampled_from(
    [
        labels.SANDBOX_NAME,
        labels.SANDBOX_NAMESPACE,
        labels.WARM_POD_NAME,
        labels.WARM_POD_NAMESPACE,
        labels.WARM_POOL_NAME,
        "app",
        "other",
    ]
)
references = st.builds(
    ref,
    st.sampled_from(
        ["Sandbox", "WarmPod", "WarmPool", "SandboxProfile", "RuntimeEnvironment", "Pod", "X"]
    ),
    names,
    api_version=st.sampled_from(["llmsafespace.dev/v1", "apps/v1", "v1", ""]),
    controller=st.booleans(),
)


@hypothesis.given(
    resource=st.sampled_from(list(TABLE.values())),
    name=names.filter(bool),
    owners=st.lists(references, max_size=4),
    obj_labels=st.dictionaries(label_keys, names, max_size=6),
    pool=st.none() | st.fixed_dictionaries({"name": names}),
)
def test_owner_keys_properties(
    resource: resources.WatchedResource,
    name: str,
    owners: list[dict[str, Any]],
    obj_labels: dict[str, str],
    pool: dict[str, str] | None,
) -> None:
    namespace = "ns" if resource.namespaced else None
    obj = view(name=name, namespace=namespace, owners=owners, obj_labels=obj_labels, pool_ref=pool)
    keys = mapping.owner_keys(resource, obj)
    assert len(set(keys)) == len(keys)
    assert mapping.own_key(resource, obj) not in keys
    known = {token for token, _ in mapping.KIND_TOKENS.values()}
    for key in keys:
        assert key.kind in known
        assert key.name
        assert (key.namespace is None) == (key.kind == "runtimeenvironment")
    ours = [o for o in owners if o["apiVersion"].startswith("llmsafespace.dev/")]
    without_foreign = view(
        name=name, namespace=namespace, owners=ours, obj_labels=obj_labels, pool_ref=pool
    )
    assert mapping.owner_keys(resource, without_foreign) == keys
