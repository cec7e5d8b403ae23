"""settings_doc: one row per field with env var, type and bounds, default and description;
groups as sections; defaults shown, never the environment's values; the CLI writes, checks
(exit 1 when stale) and loads a service's class by module:Class."""

from __future__ import annotations

import pathlib

import pytest
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lss_common import settings_doc


class DemoGroup(BaseModel):
    """Demo group summary."""

    workers: int = Field(default=4, ge=1, le=64, description="Worker count | per pod.")
    delays_seconds: list[float] = Field(default=[0.5, 1.0], description="Delays.")
    token: str | None = Field(default=None, description="Optional token.")


class DemoSettings(BaseSettings):
    """A service's settings."""

    model_config = SettingsConfigDict(env_prefix="DEMO_", env_nested_delimiter="__")

    enabled: bool = Field(default=True, description="Turn it on.")
    group: DemoGroup = Field(default_factory=DemoGroup)


def test_render_rows() -> None:
    text = settings_doc.render(DemoSettings, title="Demo")
    assert text.startswith("# Demo\n")
    assert "| `DEMO_ENABLED` | boolean | `true` | Turn it on. |" in text
    assert "## group\n\nDemo group summary.\n" in text
    assert (
        "| `DEMO_GROUP__WORKERS` | integer (≥ 1, ≤ 64) | `4` | Worker count \\| per pod. |" in text
    )
    assert "| `DEMO_GROUP__DELAYS_SECONDS` | list of number | `[0.5, 1.0]` | Delays. |" in text
    assert "| `DEMO_GROUP__TOKEN` | string, optional | unset | Optional token. |" in text
    assert text.endswith("\n")
    assert not text.endswith("\n\n")


def test_render_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_GROUP__WORKERS", "9")
    assert "| `4` |" in settings_doc.render(DemoSettings, title="Demo")


def test_cli_writes_checks_and_loads_classes(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "config.md"
    spec = f"{__name__}:DemoSettings"
    assert settings_doc.main(["--settings", spec, "--title", "Demo", "--output", str(output)]) == 0
    assert output.read_text() == settings_doc.render(DemoSettings, title="Demo")
    check = ["--settings", spec, "--title", "Demo", "--output", str(output), "--check"]
    assert settings_doc.main(check) == 0
    output.write_text("stale")
    assert settings_doc.main(check) == 1
    assert "out of date" in capsys.readouterr().err
    assert settings_doc.main([]) == 0
    assert "`LSS_NATS__URL`" in capsys.readouterr().out


def test_cli_rejects_bad_class_specs() -> None:
    with pytest.raises(SystemExit, match="module:Class"):
        settings_doc.main(["--settings", "lss_common.settings"])
    with pytest.raises(SystemExit, match="not a pydantic-settings class"):
        settings_doc.main(["--settings", "lss_common.settings:NatsSettings"])
