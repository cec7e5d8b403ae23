"""resolve: runtime selection by language:version (exactly one; none, several, unavailable
and malformed each give their reason on RuntimeResolved; unvalidated is usable); profile
lookup in the sandbox's namespace, another namespace refused unless shared, missing and
rejected profiles each give their reason on ProfileResolved."""

from __future__ import annotations

import pytest

from lss_sandbox_reconciler import resolve, testing

PY311 = testing.make_runtime()
PY312 = testing.make_runtime(name="python-3-12", version="3.12")
NODE = testing.make_runtime(name="node-20", language="nodejs", version="20")


@pytest.mark.parametrize(
    ("runtime", "candidates", "expected"),
    [
        ("python:3.11", (PY311, PY312, NODE), "python-3-11"),
        ("python:3.12", (PY311, PY312, NODE), "python-3-12"),
        ("nodejs:20", (NODE,), "node-20"),
        ("python:3.11", (testing.make_runtime(available=None),), "python-3-11"),
    ],
)
def test_select_runtime(runtime: str, candidates: tuple[object, ...], expected: str) -> None:
    chosen = resolve.select_runtime(runtime, candidates=candidates)
    assert chosen.metadata.name == expected


@pytest.mark.parametrize(
    ("runtime", "candidates", "reason"),
    [
        ("python:3.10", (PY311, PY312), resolve.Reason.RUNTIME_NOT_FOUND),
        ("ruby:3.11", (PY311,), resolve.Reason.RUNTIME_NOT_FOUND),
        ("python", (PY311,), resolve.Reason.RUNTIME_NOT_FOUND),
        ("python:", (PY311,), resolve.Reason.RUNTIME_NOT_FOUND),
        ("python:3.11", (), resolve.Reason.RUNTIME_NOT_FOUND),
        (
            "python:3.11",
            (PY311, testing.make_runtime(name="python-3-11-b")),
            resolve.Reason.RUNTIME_AMBIGUOUS,
        ),
        (
            "python:3.11",
            (testing.make_runtime(available=False),),
            resolve.Reason.RUNTIME_UNAVAILABLE,
        ),
    ],
)
def test_select_runtime_failures(
    runtime: str, candidates: tuple[object, ...], reason: resolve.Reason
) -> None:
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.select_runtime(runtime, candidates=candidates)
    assert caught.value.reason == reason
    assert caught.value.field == "spec.runtime"
    assert caught.value.condition_type is resolve.ConditionType.RUNTIME_RESOLVED
    assert "spec.runtime" in str(caught.value)


def test_ambiguous_names_every_match() -> None:
    with pytest.raises(resolve.ResolveError, match="python-3-11, python-3-11-b"):
        resolve.select_runtime(
            "python:3.11", candidates=(testing.make_runtime(name="python-3-11-b"), PY311)
        )


@pytest.mark.parametrize(
    ("profile_ref", "shared", "expected"),
    [
        (None, (), None),
        ({"name": "p"}, (), ("team-a", "p")),
        ({"name": "p", "namespace": "team-a"}, (), ("team-a", "p")),
        ({"name": "p", "namespace": "presets"}, ("presets",), ("presets", "p")),
    ],
)
def test_profile_key(
    profile_ref: dict[str, str] | None, shared: tuple[str, ...], expected: tuple[str, str] | None
) -> None:
    spec = {"profileRef": profile_ref} if profile_ref else {}
    obj = testing.make_sandbox(spec=spec)
    assert resolve.profile_key(obj, shared_namespaces=shared) == expected


def test_profile_in_another_namespace_is_refused() -> None:
    obj = testing.make_sandbox(spec={"profileRef": {"name": "p", "namespace": "other"}})
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.profile_key(obj, shared_namespaces=("presets",))
    assert caught.value.reason == resolve.Reason.PROFILE_NAMESPACE_FORBIDDEN
    assert caught.value.field == "spec.profileRef.namespace"
    assert caught.value.condition_type is resolve.ConditionType.PROFILE_RESOLVED


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (None, resolve.Reason.PROFILE_NOT_FOUND),
        (testing.make_profile(valid=False), resolve.Reason.PROFILE_INVALID),
    ],
)
def test_check_profile_failures(found: object, reason: resolve.Reason) -> None:
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.check_profile(found, key=("team-a", "preset"))
    assert caught.value.reason == reason
    assert "team-a/preset" in str(caught.value)


@pytest.mark.parametrize("valid", [True, None])
def test_check_profile_accepts_valid_and_unvalidated(valid: bool | None) -> None:
    found = testing.make_profile(valid=valid)
    assert resolve.check_profile(found, key=("team-a", "preset")) is found
