"""Generate the Markdown configuration reference from a settings class.

``python -m lss_common.settings_doc`` prints the table for ``CommonSettings``;
``--settings module:Class`` documents a service's class, ``--output`` writes a file and
``--check`` exits 1 when that file is out of date. One row per field: environment variable,
type (with its bounds), default and description, grouped as the settings are.

This module reads settings classes; it must not instantiate them from the environment (the
reference shows defaults, never this machine's values).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import types
import typing
from collections.abc import Sequence

import annotated_types
import pydantic
import pydantic_settings
from pydantic.fields import FieldInfo

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def render(settings_class: type[pydantic_settings.BaseSettings], *, title: str) -> str:
    """The Markdown reference for ``settings_class``."""
    config = settings_class.model_config
    prefix = str(config.get("env_prefix") or "")
    delimiter = str(config.get("env_nested_delimiter") or "__")
    qualified = f"{settings_class.__module__}.{settings_class.__qualname__}"
    lines = [
        f"# {title}",
        "",
        f"Generated from `{qualified}` by `python -m lss_common.settings_doc`; do not edit by "
        "hand (a unit test checks that this file is current).",
        "",
        f"Every setting is an environment variable: `{prefix}` followed by the group and the "
        f"field in upper case, joined by `{delimiter}` (for example "
        f"`{prefix}NATS{delimiter}URL`). Lists are given as JSON "
        f"(`{prefix}CONSUMER{delimiter}BACKOFF_SECONDS='[0.5, 5]'`). Durations are in seconds.",
        "",
    ]
    general: list[tuple[str, FieldInfo]] = []
    groups: list[tuple[str, FieldInfo, type[pydantic.BaseModel]]] = []
    for name, field in settings_class.model_fields.items():
        group = _model_class(field.annotation)
        if group is None:
            general.append((name, field))
        else:
            groups.append((name, field, group))
    if general:
        lines += ["## General", ""]
        lines += _table((f"{prefix}{name}".upper(), field, _UNSET) for name, field in general)
    for name, field, group in groups:
        summary = field.description or _first_line(group.__doc__)
        lines += [f"## {name}", ""]
        if summary:
            lines += [summary, ""]
        # A service may give a shared group other defaults (its default_factory): show
        # the values this settings class really starts with, not the group class's.
        instance = field.get_default(call_default_factory=True)
        lines += _table(
            (
                f"{prefix}{name}{delimiter}{member}".upper(),
                member_field,
                getattr(instance, member, _UNSET),
            )
            for member, member_field in group.model_fields.items()
        )
    return "\n".join(lines).rstrip("\n") + "\n"


_UNSET = object()


def _table(rows: typing.Iterable[tuple[str, FieldInfo, object]]) -> list[str]:
    lines = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for env_var, field, actual in rows:
        cells = [
            f"`{env_var}`",
            _type_text(field),
            _default_text(field) if actual is _UNSET else _value_text(actual),
            (field.description or "").replace("|", "\\|").replace("\n", " "),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _model_class(annotation: object) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    return None


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _type_name(annotation: object) -> str:
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        named = [_type_name(a) for a in arguments if a is not type(None)]
        optional = len(named) < len(arguments)
        return " or ".join(named) + (", optional" if optional else "")
    if origin in (list, tuple, set, frozenset, Sequence):
        return f"list of {_type_name(arguments[0])}" if arguments else "list"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in arguments)
    return getattr(annotation, "__name__", str(annotation))


def _type_text(field: FieldInfo) -> str:
    bounds: list[str] = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Gt):
            bounds.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            bounds.append(f"≥ {item.ge}")
        elif isinstance(item, annotated_types.Lt):
            bounds.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.Le):
            bounds.append(f"≤ {item.le}")
        elif isinstance(item, annotated_types.MinLen):
            bounds.append(f"at least {item.min_length} item(s)")
        elif (pattern := getattr(item, "pattern", None)) is not None:
            bounds.append(f"matches `{pattern}`")
    text = _type_name(field.annotation)
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _default_text(field: FieldInfo) -> str:
    return _value_text(field.get_default(call_default_factory=True))


def _value_text(default: object) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, list | tuple | dict):
        return f"`{json.dumps(default)}`"
    return f"`{default}`"


def _load(spec: str) -> type[pydantic_settings.BaseSettings]:
    module_name, _, class_name = spec.partition(":")
    if not class_name:
        raise SystemExit(f"--settings must look like module:Class, got {spec!r}")
    loaded = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(loaded, type) and issubclass(loaded, pydantic_settings.BaseSettings)):
        raise SystemExit(f"{spec} is not a pydantic-settings class")
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lss_common.settings_doc", description=__doc__)
    parser.add_argument(
        "--settings",
        default="lss_common.settings:CommonSettings",
        help="the settings class, as module:Class",
    )
    parser.add_argument("--title", default="Configuration", help="the document's heading")
    parser.add_argument("--output", type=pathlib.Path, help="write here instead of stdout")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if --output differs from what would be written"
    )
    arguments = parser.parse_args(argv)
    settings_class = _load(arguments.settings)
    text = render(settings_class, title=arguments.title)
    if arguments.output is None:
        sys.stdout.write(text)
        return 0
    if arguments.check:
        current = arguments.output.read_text() if arguments.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{arguments.output} is out of date; regenerate it without --check\n")
            return 1
        return 0
    arguments.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
