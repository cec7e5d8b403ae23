"""The alert rules (deploy/prometheus/alerts.yaml) load as Prometheus loads them: the rule
file's structure, every expression's PromQL and every annotation template, checked by
Prometheus's own rulefmt and PromQL parser (``promrules``). That the services export every
metric the rules select is checked where the services run from the chart
(test_chart_install.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from lss_dev import prometheus_rules


def test_the_alert_rules_load_as_prometheus_loads_them() -> None:
    selected = prometheus_rules.selected_metrics(prometheus_rules.alerts_file())
    rules = yaml.safe_load(prometheus_rules.alerts_file().read_text())["groups"][0]["rules"]
    assert list(selected) == [rule["alert"] for rule in rules]
    assert len(selected) == 12
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        assert rule["alert"].startswith("LLMSafeSpace"), rule["alert"]
    for name, metrics in selected.items():
        assert metrics, name
        assert all(m.startswith("llmsafespace_") for m in metrics), (name, metrics)


def test_a_rule_prometheus_would_refuse_is_refused(tmp_path: Path) -> None:
    text = prometheus_rules.alerts_file().read_text()
    broken_expr = tmp_path / "expr.yaml"
    broken_expr.write_text(
        text.replace("llmsafespace_bus_connected == 0", "llmsafespace_bus_connected == (0")
    )
    done = prometheus_rules.check(broken_expr)
    assert done.returncode == 1
    assert "LLMSafeSpaceNatsDisconnected" in done.stderr
    assert "unclosed left parenthesis" in done.stderr
    broken_template = tmp_path / "template.yaml"
    broken_template.write_text(
        text.replace('"{{ $labels.job }} has been', '"{{ $labels.job } has been')
    )
    done = prometheus_rules.check(broken_template)
    assert done.returncode == 1
    assert 'annotation "summary"' in done.stderr
