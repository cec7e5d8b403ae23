"""Settings from the environment: LSS_ prefix, __ nesting, JSON lists, validation of bounds,
unknown variables ignored; and the generated docs/configuration.md is current."""

from __future__ import annotations

import pathlib

import pydantic
import pytest

from lss_common import settings, settings_doc

REPO = pathlib.Path(__file__).resolve().parents[4]


def test_defaults_are_valid() -> None:
    loaded = settings.CommonSettings()
    assert loaded.consumer.shutdown_grace_seconds > 0
    assert loaded.http.port == 8081
    assert loaded.log.json_format is True


def test_nested_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSS_NATS__URL", "nats://nats.example:4222")
    monkeypatch.setenv("LSS_KUBE__REQUEST_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("LSS_CONSUMER__BACKOFF_SECONDS", "[0.1, 1, 10]")
    monkeypatch.setenv("LSS_LOG__JSON_FORMAT", "false")
    monkeypatch.setenv("LSS_HTTP__PORT", "9090")
    monkeypatch.setenv("LSS_SERVICE_NAME", "sandbox-reconciler")
    monkeypatch.setenv("LSS_NOT_A_SETTING", "ignored")
    loaded = settings.CommonSettings()
    assert loaded.nats.url == "nats://nats.example:4222"
    assert loaded.kube.request_timeout_seconds == 2.5
    assert loaded.consumer.backoff_seconds == [0.1, 1.0, 10.0]
    assert loaded.log.json_format is False
    assert loaded.http.port == 9090
    assert loaded.service_name == "sandbox-reconciler"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LSS_CONSUMER__CONCURRENCY", "0"),
        ("LSS_HTTP__PORT", "70000"),
        ("LSS_LOG__LEVEL", "LOUD"),
        ("LSS_HTTP__READINESS_CHECK_TIMEOUT_SECONDS", "0"),
        ("LSS_NATS__SUBJECT_PREFIX", "a.b"),
    ],
)
def test_out_of_bounds_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(pydantic.ValidationError):
        settings.CommonSettings()


def is_group(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def test_every_field_has_a_description_and_every_group_a_docstring() -> None:
    groups: list[type[pydantic.BaseModel]] = [settings.CommonSettings]
    for field in settings.CommonSettings.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, pydantic.BaseModel):
            groups.append(field.annotation)
    for group in groups:
        assert group.__doc__, f"{group.__name__} has no docstring"
        for name, field in group.model_fields.items():
            if not is_group(field.annotation):
                assert field.description, f"{group.__name__}.{name} has no description"


def test_configuration_doc_is_current() -> None:
    path = REPO / "docs" / "configuration.md"
    expected = settings_doc.render(settings.CommonSettings, title="Configuration")
    assert path.read_text() == expected, (
        "docs/configuration.md is out of date: run "
        "`uv run python -m lss_common.settings_doc --output docs/configuration.md`"
    )


def test_environment_of_reproduces_the_settings_in_another_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    groups = ("nats", "kube", "consumer", "http", "log")
    original = settings.CommonSettings(
        service_name="pool-manager",
        nats=settings.NatsSettings(url="nats://nats.example:4222"),
        kube=settings.KubeSettings(kubeconfig="/etc/kube/config", max_connections=8),
        consumer=settings.ConsumerSettings(concurrency=7, backoff_seconds=[0.5, 2.0]),
        log=settings.LogSettings(json_format=False),
    )
    env = settings.environment_of(original, groups=groups)
    assert env["LSS_CONSUMER__BACKOFF_SECONDS"] == "[0.5, 2.0]"  # lists as JSON
    assert env["LSS_LOG__JSON_FORMAT"] == "false"
    assert "LSS_KUBE__CONTEXT" not in env  # unset stays unset
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rebuilt = settings.CommonSettings()
    assert rebuilt.service_name == original.service_name
    for group in groups:
        assert getattr(rebuilt, group) == getattr(original, group)


@pytest.mark.parametrize("prefix", ["", "_INBOX.", "_INBOX..x", "_INBOX.>", "_INBOX.*", "a b"])
def test_an_inbox_prefix_that_is_not_a_literal_subject_is_refused(prefix: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="inbox_prefix"):
        settings.NatsSettings(inbox_prefix=prefix)
    assert settings.NatsSettings(inbox_prefix="_INBOX.sandbox-reconciler").inbox_prefix


def test_a_user_gets_an_inbox_of_its_own_unless_one_is_given() -> None:
    def inbox(**values: str) -> str:
        return settings.NatsSettings.model_validate(values).inbox_prefix

    assert inbox() == "_INBOX"
    assert inbox(user="pool-manager", password="x") == "_INBOX.pool-manager"
    assert inbox(user="a@b", password="x") == "_INBOX"  # not a subject token
    assert inbox(user="watcher", password="x", inbox_prefix="_I.w") == "_I.w"
