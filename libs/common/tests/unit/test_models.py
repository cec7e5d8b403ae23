"""The msgspec models against their CRDs, and their JSON round trip. Pure: no server.

Matrix:
- schema parity: for each kind, every property of the CRD's spec and status exists in the
  model under the same camelCase name with a compatible type, required exactly where the
  schema requires it, and vice versa (so the models cannot drift from ``deploy/crds``);
- kind identity (``models.kinds``) equals the CRD names, scope and short names;
- encoding: unset fields are omitted, names are camelCase, falsy values that were set are
  kept, ``apiVersion``/``kind`` are always present, status is absent until set;
- decoding: unknown fields are ignored; samples and full API-server-shaped objects round-trip
  to the identical JSON;
- hypothesis: for generated objects of every kind, ``decode(encode(x)) == x`` and the JSON
  holds no ``null`` and no snake_case key;
- timestamps: format/parse helpers.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import hypothesis
import msgspec
import msgspec.inspect as mi
import pytest
import yaml
from hypothesis import strategies as st

from lss_common.logic import status_records
from lss_common.models import (
    codec,
    kinds,
    meta,
    parts,
    profile,
    runtime,
    sandbox,
    warmpod,
    warmpool,
)

REPO = pathlib.Path(__file__).resolve().parents[4]
CRD_DIR = REPO / "deploy" / "crds"
SAMPLE_DIR = REPO / "deploy" / "samples"

# (resource, CRD file, top-level model, spec model, status model, module)
KINDS: list[tuple[kinds.Resource, str, type[meta.TopLevel], type[Any], type[Any], Any]] = [
    (
        kinds.SANDBOX,
        "sandboxes.yaml",
        sandbox.Sandbox,
        sandbox.SandboxSpec,
        sandbox.SandboxStatus,
        sandbox,
    ),
    (
        kinds.SANDBOX_PROFILE,
        "sandboxprofiles.yaml",
        profile.SandboxProfile,
        profile.SandboxProfileSpec,
        profile.SandboxProfileStatus,
        profile,
    ),
    (
        kinds.WARM_POOL,
        "warmpools.yaml",
        warmpool.WarmPool,
        warmpool.WarmPoolSpec,
        warmpool.WarmPoolStatus,
        warmpool,
    ),
    (
        kinds.WARM_POD,
        "warmpods.yaml",
        warmpod.WarmPod,
        warmpod.WarmPodSpec,
        warmpod.WarmPodStatus,
        warmpod,
    ),
    (
        kinds.RUNTIME_ENVIRONMENT,
        "runtimeenvironments.yaml",
        runtime.RuntimeEnvironment,
        runtime.RuntimeEnvironmentSpec,
        runtime.RuntimeEnvironmentStatus,
        runtime,
    ),
]
KIND_IDS = [k[0].kind for k in KINDS]


def load_crd(filename: str) -> dict[str, Any]:
    with (CRD_DIR / filename).open() as fh:
        crd: dict[str, Any] = yaml.safe_load(fh)
    return crd


def crd_schema(filename: str) -> dict[str, Any]:
    version: dict[str, Any] = load_crd(filename)["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def walk_properties(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (path, sub-schema) below ``schema``, array items included as ``path[]``."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from walk_properties(sub, f"{path}.{name}")
    if "items" in schema:
        yield f"{path}[]", schema["items"]
        yield from walk_properties(schema["items"], f"{path}[]")


def _non_none(t: mi.Type) -> mi.Type:
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        assert len(members) == 1, f"unexpected union {t}"
        return members[0]
    return t


def assert_schema_matches(schema: dict[str, Any], t: mi.Type, path: str) -> None:
    t = _non_none(t)
    kind = schema["type"]
    if isinstance(t, mi.StructType):
        assert kind == "object", path
        fields = {f.encode_name: f for f in t.fields}
        props = schema.get("properties", {})
        assert set(props) == set(fields), f"{path}: schema {sorted(props)} model {sorted(fields)}"
        required = {name for name, f in fields.items() if f.required}
        assert set(schema.get("required", [])) == required, f"{path}: required differs"
        for name, field in fields.items():
            assert_schema_matches(props[name], field.type, f"{path}.{name}")
    elif isinstance(t, mi.ListType):
        assert kind == "array", path
        assert_schema_matches(schema["items"], t.item_type, f"{path}[]")
    elif isinstance(t, mi.StrType):
        assert kind == "string", path
    elif isinstance(t, mi.IntType):
        assert kind == "integer", path
    elif isinstance(t, mi.BoolType):
        assert kind == "boolean", path
    else:
        raise AssertionError(f"{path}: no schema mapping for {t}")


# --- schema parity and CRD hygiene -------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "filename", "obj", "spec", "status", "mod"), KINDS, ids=KIND_IDS
)
def test_model_matches_crd_schema(
    resource: kinds.Resource,
    filename: str,
    obj: type[meta.TopLevel],
    spec: type[Any],
    status: type[Any],
    mod: Any,
) -> None:
    schema = crd_schema(filename)
    assert schema["required"] == ["spec"]
    assert_schema_matches(schema["properties"]["spec"], mi.type_info(spec), "spec")
    assert_schema_matches(schema["properties"]["status"], mi.type_info(status), "status")
    info = mi.type_info(obj)
    assert isinstance(info, mi.StructType)
    top = {f.encode_name for f in info.fields}
    assert top == {"apiVersion", "kind", "metadata", "spec", "status"}
    built = obj(spec=msgspec.convert(minimal_spec(resource), type=spec))
    assert json.loads(mod.encode(built))["kind"] == resource.kind


@pytest.mark.parametrize(("resource", "filename"), [k[:2] for k in KINDS], ids=KIND_IDS)
def test_kind_identity_matches_crd(resource: kinds.Resource, filename: str) -> None:
    crd = load_crd(filename)
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == resource.crd_name
    assert crd["spec"]["group"] == kinds.GROUP
    assert [v["name"] for v in crd["spec"]["versions"]] == [kinds.VERSION]
    assert (names["kind"], names["plural"], names["singular"]) == (
        resource.kind,
        resource.plural,
        resource.singular,
    )
    assert names["shortNames"] == [resource.short_name]
    assert names["categories"] == [kinds.CATEGORY]
    assert crd["spec"]["scope"] == ("Namespaced" if resource.namespaced else "Cluster")
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


@pytest.mark.parametrize("filename", [k[1] for k in KINDS])
def test_every_crd_field_is_described(filename: str) -> None:
    schema = crd_schema(filename)
    undocumented = [
        path
        for path, sub in walk_properties(schema, "")
        if path not in {".metadata"} and not sub.get("description")
    ]
    assert undocumented == []
    assert schema.get("description")


CPU_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
CPU_FIELDS = {"cpu", "minCpu", "recommendedCpu"}
SIZE_FIELDS = {"memory", "ephemeralStorage", "volumeSize", "minMemory", "recommendedMemory"}


@pytest.mark.parametrize("filename", [k[1] for k in KINDS])
def test_quantity_fields_share_one_pattern(filename: str) -> None:
    # Status usage fields (cpuUsage, memoryUsage) are reports, not inputs: no pattern.
    seen = 0
    for path, sub in walk_properties(crd_schema(filename), ""):
        leaf = path.rsplit(".", 1)[-1]
        if path.startswith(".spec") and leaf in CPU_FIELDS:
            assert sub["pattern"] == CPU_PATTERN, path
            seen += 1
        if path.startswith(".spec") and leaf in SIZE_FIELDS:
            assert sub["pattern"] == SIZE_PATTERN, path
            seen += 1
    assert seen > 0


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        *[("2", True), ("0.5", True), ("500m", True), ("1.25", True), ("16", True)],
        *[("abc", False), ("1.5m", False), ("-1", False), ("1e3", False), (".5", False)],
        *[("2 ", False), ("500M", False), ("", False)],
    ],
)
def test_cpu_pattern(value: str, ok: bool) -> None:
    assert bool(re.match(CPU_PATTERN, value)) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        *[("512Mi", True), ("1Gi", True), ("2Ti", True), ("1536", True), ("1.5Gi", True)],
        *[("100M", True), ("1G", True), ("2T", True), ("64k", True)],
        *[("512MB", False), ("1K", False), ("Gi", False), ("-1Gi", False), ("1 Gi", False)],
        *[("1gi", False), ("", False)],
    ],
)
def test_size_pattern(value: str, ok: bool) -> None:
    assert bool(re.match(SIZE_PATTERN, value)) is ok


def test_controller_defaults_satisfy_the_schema_patterns() -> None:
    assert re.match(CPU_PATTERN, parts.DEFAULT_CPU)
    assert re.match(SIZE_PATTERN, parts.DEFAULT_MEMORY)
    assert re.match(SIZE_PATTERN, parts.DEFAULT_EPHEMERAL_STORAGE)
    sandbox_schema = crd_schema("sandboxes.yaml")["properties"]["spec"]["properties"]
    assert sandbox_schema["timeout"]["default"] == sandbox.DEFAULT_TIMEOUT_SECONDS
    # Fields a profile can supply must not have schema defaults (docs/decisions-crds.md).
    for field in ("cpu", "memory", "ephemeralStorage"):
        assert "default" not in sandbox_schema["resources"]["properties"][field]
    assert "default" not in sandbox_schema["filesystem"]["properties"]["writablePaths"]


@pytest.mark.parametrize(
    ("enum_cls", "filename", "path"),
    [
        (sandbox.Phase, "sandboxes.yaml", ".status.phase"),
        (warmpod.Phase, "warmpods.yaml", ".status.phase"),
        (meta.SecurityLevel, "sandboxes.yaml", ".spec.securityLevel"),
        (meta.SecurityLevel, "warmpools.yaml", ".spec.securityLevel"),
        (meta.SecurityLevel, "runtimeenvironments.yaml", ".spec.securityLevel"),
        (meta.ConditionStatus, "sandboxes.yaml", ".status.conditions[].status"),
        (parts.Protocol, "sandboxes.yaml", ".spec.networkAccess.egress[].ports[].protocol"),
        (parts.SecurityProfileType, "runtimeenvironments.yaml", ".spec.appArmorProfile.type"),
        (profile.Direction, "sandboxprofiles.yaml", ".spec.networkPolicies[].type"),
        (runtime.SecurityFeature, "runtimeenvironments.yaml", ".spec.securityFeatures[]"),
    ],
)
def test_enum_constants_match_schema(enum_cls: type[Any], filename: str, path: str) -> None:
    schemas = dict(walk_properties(crd_schema(filename), ""))
    assert [member.value for member in enum_cls] == schemas[path]["enum"]


# --- encoding and decoding ------------------------------------------------------------


def minimal_spec(resource: kinds.Resource) -> dict[str, Any]:
    """The smallest spec each kind accepts."""
    specs: dict[str, dict[str, Any]] = {
        "Sandbox": {"runtime": "python:3.11"},
        "SandboxProfile": {"language": "python"},
        "WarmPool": {"runtime": "python:3.11", "minSize": 1},
        "WarmPod": {
            "poolRef": {"name": "p"},
            "runtime": "python:3.11",
            "securityLevel": "standard",
            "resources": {"cpu": "500m", "memory": "512Mi", "ephemeralStorage": "1Gi"},
        },
        "RuntimeEnvironment": {"image": "img:1", "language": "python", "version": "3.11"},
    }
    return specs[resource.kind]


def test_minimal_object_encodes_only_what_is_set() -> None:
    obj = sandbox.Sandbox(
        metadata=meta.ObjectMeta(name="sb1", namespace="ns"),
        spec=sandbox.SandboxSpec(runtime="python:3.11"),
    )
    assert json.loads(sandbox.encode(obj)) == {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "Sandbox",
        "metadata": {"name": "sb1", "namespace": "ns"},
        "spec": {"runtime": "python:3.11"},
    }


def test_names_are_camel_case_on_the_wire() -> None:
    obj = warmpool.WarmPool(
        spec=warmpool.WarmPoolSpec(
            runtime="python:3.11",
            min_size=0,
            max_size=0,
            disable_pod_recycling=False,
            min_pod_runtime_before_recycle=0,
            resources=parts.ResourceLimits(ephemeral_storage="1Gi"),
            auto_scaling=warmpool.AutoScaling(scale_down_delay=0),
        ),
        status=warmpool.WarmPoolStatus(available_pods=0, last_scale_time="2024-05-01T00:00:00Z"),
    )
    assert json.loads(warmpool.encode(obj))["spec"] == {
        "runtime": "python:3.11",
        "minSize": 0,
        "maxSize": 0,
        "resources": {"ephemeralStorage": "1Gi"},
        "autoScaling": {"scaleDownDelay": 0},
        "disablePodRecycling": False,
        "minPodRuntimeBeforeRecycle": 0,
    }
    assert json.loads(warmpool.encode(obj))["status"] == {
        "availablePods": 0,
        "lastScaleTime": "2024-05-01T00:00:00Z",
    }


def test_set_falsy_values_survive_a_round_trip() -> None:
    raw = {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "Sandbox",
        "metadata": {"name": "x", "labels": {}, "finalizers": []},
        "spec": {
            "runtime": "python:3.11",
            "networkAccess": {"egress": [], "ingress": False},
            "filesystem": {"readOnlyRoot": False, "writablePaths": []},
        },
        "status": {"conditions": [], "podName": "", "observedGeneration": 0},
    }
    assert json.loads(sandbox.encode(sandbox.decode(json.dumps(raw)))) == raw


def test_status_is_absent_until_set_and_empty_status_is_kept() -> None:
    without = sandbox.decode(b'{"spec":{"runtime":"python:3.11"}}')
    assert without.status is msgspec.UNSET
    assert "status" not in json.loads(sandbox.encode(without))
    assert sandbox.status_of(without) == sandbox.SandboxStatus()
    empty = sandbox.decode(b'{"spec":{"runtime":"python:3.11"},"status":{}}')
    assert empty.status == sandbox.SandboxStatus()
    assert json.loads(sandbox.encode(empty))["status"] == {}


def test_unknown_fields_are_ignored() -> None:
    data = {
        "apiVersion": "llmsafespace.dev/v1",
        "kind": "WarmPod",
        "metadata": {"name": "w", "managedFields": [{"manager": "kubectl"}], "selfLink": "/x"},
        "spec": minimal_spec(kinds.WARM_POD) | {"fromTheFuture": {"a": 1}},
        "status": {"phase": "Hibernating", "newCounter": 3},
    }
    obj = warmpod.decode(json.dumps(data))
    assert warmpod.status_of(obj).phase == "Hibernating"
    assert obj.metadata.name == "w"
    assert "fromTheFuture" not in json.loads(warmpod.encode(obj))["spec"]


def test_decode_rejects_wrong_types() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"spec\.timeout"):
        sandbox.decode(b'{"spec":{"runtime":"python:3.11","timeout":"300"}}')
    with pytest.raises(msgspec.ValidationError, match=r"spec"):
        sandbox.decode(b'{"metadata":{}}')


def load_samples() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(SAMPLE_DIR.glob("*.yaml")):
        with path.open() as fh:
            docs.extend(d for d in yaml.safe_load_all(fh) if d)
    return docs


MODULE_BY_KIND: dict[str, Any] = {k[0].kind: k[5] for k in KINDS}


def test_samples_cover_four_kinds_in_apply_order() -> None:
    assert [d["kind"] for d in load_samples()] == [
        "Namespace",
        "RuntimeEnvironment",
        "SandboxProfile",
        "WarmPool",
        "Sandbox",
    ]


@pytest.mark.parametrize(
    "doc", [d for d in load_samples() if d["kind"] in MODULE_BY_KIND], ids=lambda d: str(d["kind"])
)
def test_samples_round_trip(doc: dict[str, Any]) -> None:
    mod = MODULE_BY_KIND[doc["kind"]]
    assert json.loads(mod.encode(mod.from_dict(doc))) == doc
    assert json.loads(mod.encode(mod.decode(json.dumps(doc)))) == doc


def load_full_objects() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Server metadata and, per kind, a spec and status with every field set."""
    with (REPO / "libs" / "common" / "tests" / "data" / "full_objects.yaml").open() as fh:
        data: dict[str, Any] = yaml.safe_load(fh)
    return data["metadata"], data["objects"]


SERVER_METADATA, FULL = load_full_objects()


@pytest.mark.parametrize("kind", KIND_IDS)
def test_full_server_object_round_trips_exactly(kind: str) -> None:
    mod = MODULE_BY_KIND[kind]
    metadata = dict(SERVER_METADATA)
    if kind == "RuntimeEnvironment":
        del metadata["namespace"]
    raw = {"apiVersion": kinds.API_VERSION, "kind": kind, "metadata": metadata} | FULL[kind]
    server_extra = {"managedFields": [{"manager": "kube-controller-manager"}]}
    served = raw | {"metadata": metadata | server_extra}
    assert json.loads(mod.encode(mod.decode(json.dumps(served)))) == raw
    # Every CRD property is exercised by FULL, so this also proves no field is dropped.
    schema = crd_schema(next(k[1] for k in KINDS if k[0].kind == kind))
    schema_paths = {p for p, _ in walk_properties(schema, "") if p.startswith((".spec", ".status"))}
    assert schema_paths <= set(json_paths(raw, "")), sorted(schema_paths - set(json_paths(raw, "")))


def json_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield f"{path}.{key}"
            yield from json_paths(sub, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield f"{path}[]"
            yield from json_paths(item, f"{path}[]")


def test_codec_dict_helpers_agree_with_json() -> None:
    obj = runtime.from_dict(
        {"metadata": {"name": "python-3.11"}, "spec": FULL["RuntimeEnvironment"]["spec"]}
    )
    assert codec.to_dict(obj) == json.loads(codec.encode(obj))
    assert codec.decode(codec.encode(obj), model=runtime.RuntimeEnvironment) == obj


# --- hypothesis: generated objects of every kind ----------------------------------------

_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
_INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def strategy_for(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values of a msgspec type, including None for every optional field."""
    if isinstance(t, mi.UnionType):
        return st.one_of(*(strategy_for(m) for m in t.types))
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.StrType):
        return _TEXT
    if isinstance(t, mi.IntType):
        return _INT
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.ListType):
        return st.lists(strategy_for(t.item_type), max_size=3)
    if isinstance(t, mi.DictType):
        return st.dictionaries(_TEXT, strategy_for(t.value_type), max_size=3)
    if isinstance(t, mi.StructType):
        fields = {f.name: strategy_for(f.type) for f in t.fields}
        return st.builds(t.cls, **fields)
    raise AssertionError(f"no strategy for {t}")


def object_strategy(obj: type[meta.TopLevel]) -> st.SearchStrategy[Any]:
    info = mi.type_info(obj)
    assert isinstance(info, mi.StructType)
    by_name = {f.name: f for f in info.fields}
    status_type = by_name["status"].type
    return st.builds(
        obj,
        metadata=strategy_for(by_name["metadata"].type),
        spec=strategy_for(by_name["spec"].type),
        status=st.one_of(st.just(msgspec.UNSET), strategy_for(status_type)),
    )


def assert_clean_json(value: Any, path: str = "") -> None:
    """No nulls and no snake_case keys anywhere (dict keys of labels etc. are data)."""
    assert value is not None, f"null at {path}"
    if isinstance(value, dict):
        data_maps = ("labels", "annotations")
        for key, sub in value.items():
            if not path.endswith(data_maps):
                assert "_" not in key, f"snake_case key {path}.{key}"
            assert_clean_json(sub, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_clean_json(item, f"{path}[{i}]")


@pytest.mark.parametrize(("kind", "obj_type", "mod"), [(k[0].kind, k[2], k[5]) for k in KINDS])
def test_generated_objects_round_trip(kind: str, obj_type: type[meta.TopLevel], mod: Any) -> None:
    @hypothesis.given(object_strategy(obj_type))
    @hypothesis.settings(max_examples=150, deadline=None)
    def check(obj: Any) -> None:
        data = mod.encode(obj)
        assert mod.decode(data) == obj
        parsed = json.loads(data)
        assert parsed["kind"] == kind
        assert parsed["apiVersion"] == kinds.API_VERSION
        assert_clean_json(parsed)
        assert mod.from_dict(parsed) == obj

    check()


# --- timestamps -----------------------------------------------------------------------


@hypothesis.given(
    st.datetimes(
        min_value=datetime.datetime(1970, 1, 1),
        max_value=datetime.datetime(8999, 1, 1),
        timezones=st.sampled_from(
            [
                datetime.UTC,
                datetime.timezone(datetime.timedelta(hours=2)),
                datetime.timezone(-datetime.timedelta(hours=5, minutes=30)),
            ]
        ),
    )
)
def test_timestamp_format_parse_round_trip_at_second_precision(moment: datetime.datetime) -> None:
    text = meta.format_timestamp(moment)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)
    assert meta.parse_timestamp(text) == moment.replace(microsecond=0).astimezone(datetime.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)),
        ("2024-05-01T14:00:00+02:00", datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)),
        (
            "2024-05-01T12:00:00.250000Z",
            datetime.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=datetime.UTC),
        ),
    ],
)
def test_parse_timestamp(text: str, expected: datetime.datetime) -> None:
    assert meta.parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Valid RFC 3339 whose UTC form is outside Python's calendar (OverflowError).
        ("0001-01-01T00:00:00+01:00", meta.EARLIEST),
        ("9999-12-31T23:30:00-01:00", meta.LATEST),
        ("0001-01-01T00:00:00Z", meta.EARLIEST),
        ("9999-12-31T23:59:59Z", meta.LATEST),
    ],
)
def test_a_timestamp_at_the_calendars_edge_is_clamped_not_raised(
    text: str, expected: datetime.datetime
) -> None:
    """A status is written by others: a valid value at the edge of the calendar crashed the
    watcher (and would every later pass adding a lifetime to it)."""
    assert meta.parse_timestamp(text) == expected
    assert status_records.parse_time(text) == expected
    assert meta.parse_timestamp(text) + datetime.timedelta(days=3650) > expected


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        meta.format_timestamp(datetime.datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="no time zone"):
        meta.parse_timestamp("2024-05-01T12:00:00")
