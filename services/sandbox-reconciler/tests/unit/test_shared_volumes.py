"""shared_volumes.check: a claim is mounted only when labelled shareable (read-only: read-only
mounts only); a missing or unread claim fails closed; the first refused entry is named."""

from __future__ import annotations

from typing import Any

import pytest

from lss_common.models import labels
from lss_sandbox_reconciler import merge, shared_volumes, testing
from lss_sandbox_reconciler import settings as settings_module


def _spec(*mounts: tuple[str, bool]) -> merge.EffectiveSpec:
    volumes = [
        {"claimName": claim, "mountPath": f"/shared{index}", "readOnly": read_only}
        for index, (claim, read_only) in enumerate(mounts)
    ]
    return merge.merge_spec(
        testing.make_sandbox(spec={"storage": {"sharedVolumes": volumes}}),
        profile=None,
        runtime=testing.make_runtime(),
        settings=settings_module.SandboxOptions(),
    )


def _claim(shareable: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"metadata": {"name": "c"}}
    if shareable is not None:
        found["metadata"]["labels"] = {labels.SHAREABLE: shareable}
    return found


@pytest.mark.parametrize(
    ("shareable", "read_only", "refused_field"),
    [
        ("true", False, None),
        ("true", True, None),
        ("read-only", True, None),
        ("read-only", False, "spec.storage.sharedVolumes[0].readOnly"),
        (None, True, "spec.storage.sharedVolumes[0].claimName"),
        ("yes", True, "spec.storage.sharedVolumes[0].claimName"),
        ("", True, "spec.storage.sharedVolumes[0].claimName"),
    ],
)
def test_a_claim_is_mounted_only_as_its_label_allows(
    shareable: str | None, read_only: bool, refused_field: str | None
) -> None:
    spec = _spec(("data", read_only))
    claims = {"data": _claim(shareable)}
    if refused_field is None:
        shared_volumes.check(spec, claims=claims)
        return
    with pytest.raises(merge.SpecConflict) as caught:
        shared_volumes.check(spec, claims=claims)
    assert caught.value.reason == merge.Reason.SHARED_VOLUME_NOT_ALLOWED
    assert caught.value.field == refused_field
    assert "'data'" in str(caught.value)


def test_a_missing_or_unread_claim_is_refused_and_the_first_refusal_is_named() -> None:
    spec = _spec(("ok", True), ("gone", True), ("unread", True))
    with pytest.raises(merge.SpecConflict) as caught:
        shared_volumes.check(spec, claims={"ok": _claim("true"), "gone": None})
    assert caught.value.field == "spec.storage.sharedVolumes[1].claimName"
    assert "not found" in str(caught.value)
    with pytest.raises(merge.SpecConflict) as caught:
        shared_volumes.check(spec, claims={"ok": _claim("true"), "gone": _claim("true")})
    assert caught.value.field == "spec.storage.sharedVolumes[2].claimName"
    shared_volumes.check(_spec(), claims={})  # no shared volume: nothing to check


def test_under_namespace_isolation_shared_volumes_are_refused_as_such() -> None:
    with pytest.raises(merge.SpecConflict) as caught:
        shared_volumes.check(_spec(("data", True)), claims={}, isolated=True)
    assert caught.value.field == "spec.storage.sharedVolumes"
    assert "namespace isolation" in str(caught.value)
