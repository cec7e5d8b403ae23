"""settings: safe defaults (high → gvisor, small grace period, delete retention, auto egress);
LSS_SANDBOX__* env vars override them; every field has a description; high can never be
configured to an empty RuntimeClass; the generated configuration reference is current."""

from __future__ import annotations

import pathlib

import pydantic
import pytest

from lss_common import settings_doc
from lss_sandbox_reconciler import settings


def test_defaults() -> None:
    loaded = settings.SandboxReconcilerSettings()
    options = loaded.sandbox
    assert loaded.service_name == "sandbox-reconciler"
    assert options.runtime_class_high == "gvisor"
    assert options.runtime_class_standard is None
    assert options.termination_grace_period_seconds == 5
    assert options.pvc_retention is settings.PvcRetention.DELETE
    assert options.egress_mode is settings.EgressMode.AUTO
    assert options.default_run_as_user == options.default_run_as_group == 1000
    assert options.cluster_domain == "cluster.local"
    assert options.namespace_isolation is False


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSS_SANDBOX__RUNTIME_CLASS_HIGH", "kata")
    monkeypatch.setenv("LSS_SANDBOX__NODE_SELECTOR", '{"pool": "sandboxes"}')
    monkeypatch.setenv("LSS_SANDBOX__EGRESS_MODE", "ipblock")
    options = settings.SandboxReconcilerSettings().sandbox
    assert options.runtime_class_high == "kata"
    assert options.node_selector == {"pool": "sandboxes"}
    assert options.egress_mode is settings.EgressMode.IPBLOCK


def test_high_runtime_class_cannot_be_empty() -> None:
    with pytest.raises(pydantic.ValidationError, match="runtime_class_high"):
        settings.SandboxOptions(runtime_class_high="")


@pytest.mark.parametrize("model", [settings.SandboxOptions, settings.Toleration])
def test_every_field_is_described(model: type[pydantic.BaseModel]) -> None:
    missing = [name for name, field in model.model_fields.items() if not field.description]
    assert missing == []


def test_configuration_reference_is_current() -> None:
    doc = pathlib.Path(__file__).parents[4] / "docs" / "sandbox-reconciler-configuration.md"
    title = "Sandbox reconciler configuration"
    expected = settings_doc.render(settings.SandboxReconcilerSettings, title=title)
    assert doc.read_text() == expected, (
        "regenerate: uv run python -m lss_common.settings_doc --settings "
        "lss_sandbox_reconciler.settings:SandboxReconcilerSettings "
        f"--title '{title}' --output {doc}"
    )
