"""The alert rules (deploy/prometheus/alerts.yaml) load as Prometheus loads them: the rule
file's structure, every expression's PromQL and every annotation template, checked by
Prometheus's own rulefmt and PromQL parser (``promrules``). Every label a rule matches on,
groups by or prints is one its metrics carry (from the services' metric definitions). That
the running services export every metric the rules select is checked where the services run
from the chart (test_chart_install.py)."""

from __future__ import annotations

import re
from pathlib import Path

import prometheus_client
import yaml

from lss_common.bus import metrics as bus_metrics
from lss_common.observability import metrics as common_metrics
from lss_dev import prometheus_rules
from lss_pool_manager import metrics as pool_metrics
from lss_sandbox_reconciler import metrics as reconciler_metrics
from lss_sandbox_reconciler import warm
from lss_watcher import metrics as watcher_metrics

#: Labels Prometheus adds to every scraped series (the job, the target, and the pod and
#: namespace of Kubernetes service discovery's usual relabelling).
TARGET_LABELS = {"job", "instance", "pod", "namespace"}

#: (metric, label) → the values the services give it, for every label a rule matches on by
#: value (a rule matching another label must add it here).
LABEL_VALUES: dict[tuple[str, str], set[str]] = {
    ("llmsafespace_bus_messages_total", "outcome"): set(common_metrics.Outcome),
    ("llmsafespace_warmpool_size", "status"): set(pool_metrics.SIZE_STATUSES),
    ("llmsafespace_sandbox_warm_claims_total", "result"): set(warm.Result),
}


def _label_names() -> dict[str, set[str]]:
    """Every metric the services define → its label names, counters by their sample name."""
    registry = prometheus_client.CollectorRegistry()
    for metrics in (
        common_metrics.RuntimeMetrics,
        common_metrics.KubeMetrics,
        bus_metrics.BusMetrics,
        pool_metrics.PoolManagerMetrics,
        reconciler_metrics.SandboxMetrics,
        warm.WarmMetrics,
        watcher_metrics.WatcherMetrics,
    ):
        metrics.register(registry)
    found: dict[str, set[str]] = {}
    for collector in list(registry._collector_to_names):  # no public listing of collectors
        labelnames = getattr(collector, "_labelnames", None)
        if labelnames is None:
            continue
        for name in registry._collector_to_names[collector]:
            found[name] = set(labelnames)
    return found


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


def test_every_label_a_rule_uses_is_one_its_metrics_carry() -> None:
    defined = _label_names()
    annotations = {
        rule["alert"]: " ".join(rule["annotations"].values())
        for rule in yaml.safe_load(prometheus_rules.alerts_file().read_text())["groups"][0]["rules"]
    }
    for rule in prometheus_rules.rules(prometheus_rules.alerts_file()):
        carried = set(TARGET_LABELS)
        for selector in rule.selectors:
            assert selector.metric in defined, (rule.name, selector.metric)
            labels = defined[selector.metric]
            assert {m.label for m in selector.matchers} <= labels, (rule.name, selector)
            carried |= labels
            for matcher in selector.matchers:
                assert matcher.op == "=", (rule.name, matcher)
                allowed = LABEL_VALUES[(selector.metric, matcher.label)]
                assert matcher.value in allowed, (rule.name, matcher, sorted(allowed))
        assert set(rule.by) <= carried, (rule.name, rule.by)
        # What an alert can print: the groups of a "by" aggregation, else the series' labels.
        printable = set(rule.by) if rule.by and not rule.without else carried
        printed = set(re.findall(r"\$labels\.([a-zA-Z_]+)", annotations[rule.name]))
        assert printed <= printable, (rule.name, printed - printable)
