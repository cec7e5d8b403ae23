"""The alert rules in ``deploy/prometheus``, loaded as Prometheus loads them, by ``promrules``
(built from ``tools/platform/promrules`` like the rest of the local platform)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

from lss_dev import build, paths


def alerts_file() -> Path:
    return paths.repo_root() / "deploy" / "prometheus" / "alerts.yaml"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    """``promrules <path>``: exit 0 and a JSON summary, or 1 and Prometheus's errors."""
    binary = build.ensure(build.PROMRULES)["promrules"]
    return subprocess.run(
        [str(binary), str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def selected_metrics(path: Path) -> dict[str, list[str]]:
    """Rule name → the metric names its expression selects; raises if the file is refused."""
    done = check(path)
    if done.returncode != 0:
        raise RuntimeError(f"{path} does not load: {done.stderr}")
    found = json.loads(done.stdout)["rules"]
    return {rule["name"]: list(rule["metrics"]) for rule in found}


@dataclasses.dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    """``=``, ``!=``, ``=~`` or ``!~``."""
    value: str


@dataclasses.dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]
    """What it matches on besides the metric name."""


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    selectors: tuple[Selector, ...]
    by: tuple[str, ...]
    """The labels of every ``by (...)`` aggregation in the expression."""
    without: bool
    """Whether an aggregation is ``without (...)`` (it keeps labels not named)."""


def rules(path: Path) -> list[Rule]:
    """The rules of ``path`` as Prometheus parsed them; raises if the file is refused."""
    done = check(path)
    if done.returncode != 0:
        raise RuntimeError(f"{path} does not load: {done.stderr}")
    return [
        Rule(
            name=rule["name"],
            selectors=tuple(
                Selector(s["metric"], tuple(Matcher(**m) for m in s["matchers"]))
                for s in rule["selectors"]
            ),
            by=tuple(rule["by"]),
            without=bool(rule["without"]),
        )
        for rule in json.loads(done.stdout)["rules"]
    ]
