"""The Helm chart (deploy/helm/llmsafespace) as rendered by the pinned helm: what each value
turns into, and that bad values are refused naming the value. That the objects are admitted
and run is test_chart_install.py, on a real API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lss_dev import helm, paths, prometheus_rules

NAMESPACE = "lss-system"
SECRET = "nats-users"
BASE: dict[str, Any] = {"nats": {"auth": {"existingSecret": SECRET}}}
# component -> its NATS user (deploy/nats/authorization.conf)
COMPONENTS = {
    "watcher": "watcher",
    "sandbox-reconciler": "sandbox-reconciler",
    "pool-manager": "pool-manager",
}
RBAC_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def _values(**overrides: Any) -> dict[str, Any]:
    """BASE with ``overrides`` merged in (one level deep per top-level key)."""
    merged: dict[str, Any] = {key: dict(value) for key, value in BASE.items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _render(values: dict[str, Any]) -> list[dict[str, Any]]:
    return helm.template(values, namespace=NAMESPACE)


def _of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _deployment(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return _of_kind(docs, "Deployment")[f"llmsafespace-{component}"]


def _job(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return _of_kind(docs, "Job")[f"llmsafespace-{component}-topology"]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _env(workload: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or -> the valueFrom mapping."""
    return {
        e["name"]: e["value"] if "value" in e else e["valueFrom"]
        for e in _container(workload)["env"]
    }


def _rbac_docs(*files: str, namespace: str) -> list[dict[str, Any]]:
    text = "\n---\n".join(
        (paths.repo_root() / "deploy" / "rbac" / f).read_text() for f in files
    ).replace("llmsafespace-system", namespace)
    return [d for d in yaml.safe_load_all(text) if d]


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def test_the_chart_lints_strictly() -> None:
    done = helm.run(
        "lint",
        "--strict",
        str(helm.chart_dir()),
        f"--kube-version={helm.kube_version()}",
        values=BASE,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_the_accounts_roles_and_scope_are_those_of_deploy_rbac_in_the_release_namespace() -> None:
    docs = _render(BASE)
    rendered = sorted((d for d in docs if d["kind"] in RBAC_KINDS), key=_key)
    expected = sorted(
        _rbac_docs(
            "watcher.yaml",
            "sandbox-reconciler.yaml",
            "pool-manager.yaml",
            "scope.yaml",
            namespace=NAMESPACE,
        ),
        key=_key,
    )
    assert rendered == expected
    accounts = _of_kind(docs, "ServiceAccount")
    for component in COMPONENTS:
        pod = _deployment(docs, component)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == f"llmsafespace-{component}"
        assert accounts[pod["serviceAccountName"]]["metadata"]["namespace"] == NAMESPACE
    # The scope names the accounts of this namespace, not deploy/rbac's.
    assert "llmsafespace-system" not in yaml.safe_dump_all(docs)
    assert f"system:serviceaccount:{NAMESPACE}:llmsafespace-pool-manager" in yaml.safe_dump_all(
        list(_of_kind(docs, "ValidatingAdmissionPolicy").values())
    )


@pytest.mark.parametrize("isolation", [False, True])
def test_namespace_isolation_brings_its_role_and_its_setting_together(isolation: bool) -> None:
    docs = _render(_values(sandboxReconciler={"namespaceIsolation": isolation}))
    roles = _of_kind(docs, "ClusterRole")
    assert ("llmsafespace-sandbox-reconciler-isolation" in roles) is isolation
    assert (
        "llmsafespace-sandbox-reconciler-isolation" in _of_kind(docs, "ClusterRoleBinding")
    ) is (isolation)
    env = _env(_deployment(docs, "sandbox-reconciler"))
    assert env["LSS_SANDBOX__NAMESPACE_ISOLATION"] == str(isolation).lower()
    if isolation:
        (role_doc,) = [
            d
            for d in _rbac_docs("sandbox-reconciler-isolation.yaml", namespace=NAMESPACE)
            if d["kind"] == "ClusterRole"
        ]
        assert roles["llmsafespace-sandbox-reconciler-isolation"] == role_doc


def test_the_scope_can_be_left_out() -> None:
    docs = _render(_values(scope={"enabled": False}))
    assert _of_kind(docs, "ValidatingAdmissionPolicy") == {}
    assert _of_kind(docs, "ValidatingAdmissionPolicyBinding") == {}
    assert set(_of_kind(docs, "ClusterRole")) == {f"llmsafespace-{c}" for c in COMPONENTS}


def test_the_charts_crds_are_deploy_crds() -> None:
    done = helm.run("show", "crds", str(helm.chart_dir()))
    assert done.returncode == 0, done.stderr
    shown = sorted(
        (d for d in yaml.safe_load_all(done.stdout) if d), key=lambda d: d["metadata"]["name"]
    )
    expected = sorted(
        (
            yaml.safe_load(p.read_text())
            for p in (paths.repo_root() / "deploy" / "crds").glob("*.yaml")
        ),
        key=lambda d: d["metadata"]["name"],
    )
    assert shown == expected
    assert len(shown) == 5


def _pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
    ]


def test_every_pod_of_the_chart_is_restricted() -> None:
    docs = _render(_values(nats={"tls": {"existingSecret": "nats-tls", "mutual": True}}))
    pods = _pods(docs)
    assert len(pods) == 6
    for name, pod in pods:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] != 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["enableServiceLinks"] is False, name
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert flag not in pod, name
        for volume in pod["volumes"]:
            assert set(volume) <= {"name", "emptyDir", "secret"}, (name, volume)
        for container in pod["containers"]:
            c = container["securityContext"]
            assert c["allowPrivilegeEscalation"] is False, name
            assert c["readOnlyRootFilesystem"] is True, name
            assert c["capabilities"] == {"drop": ["ALL"]}, name
            assert "privileged" not in c, name
            assert container["resources"]["limits"]["memory"], name
    jobs = _of_kind(docs, "Job")
    for job in jobs.values():
        # Declaring the NATS topology needs no Kubernetes access at all.
        assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        assert "serviceAccountName" not in job["spec"]["template"]["spec"]


def test_in_password_mode_each_service_is_its_own_nats_user_and_the_jobs_are_setup() -> None:
    docs = _render(BASE)
    for component, user in COMPONENTS.items():
        env = _env(_deployment(docs, component))
        assert env["LSS_NATS__USER"] == user
        assert env["LSS_NATS__PASSWORD"] == {
            "secretKeyRef": {"name": SECRET, "key": f"{user}-password"}
        }
        assert env["LSS_NATS__INBOX_PREFIX"] == f"_INBOX.{user}"
        assert env["LSS_NATS__DECLARE_TOPOLOGY"] == "false"
        assert env["LSS_SERVICE_NAME"] == component
        job = _job(docs, component)
        assert _container(job)["args"] == ["--declare-topology"]
        assert _container(job)["image"] == _container(_deployment(docs, component))["image"]
        job_env = _env(job)
        assert job_env["LSS_NATS__USER"] == "setup"
        assert job_env["LSS_NATS__PASSWORD"] == {
            "secretKeyRef": {"name": SECRET, "key": "setup-password"}
        }
        assert job_env["LSS_NATS__INBOX_PREFIX"] == "_INBOX.setup"
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


def test_with_credentials_files_each_pod_mounts_only_its_own() -> None:
    docs = _render(_values(nats={"auth": {"mode": "credentials", "existingSecret": SECRET}}))
    workloads = [(_deployment(docs, c), u) for c, u in COMPONENTS.items()]
    workloads += [(_job(docs, c), "setup") for c in COMPONENTS]
    for workload, user in workloads:
        pod = workload["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "nats-credentials"]
        assert volume["secret"]["secretName"] == SECRET
        assert volume["secret"]["items"] == [{"key": f"{user}.creds", "path": f"{user}.creds"}]
        (mount,) = [
            m for m in _container(workload)["volumeMounts"] if m["name"] == "nats-credentials"
        ]
        assert mount["readOnly"] is True
        env = _env(workload)
        assert env["LSS_NATS__CREDENTIALS_FILE"] == str(Path(mount["mountPath"]) / f"{user}.creds")
        assert env["LSS_NATS__INBOX_PREFIX"] == f"_INBOX.{user}"
        assert "LSS_NATS__USER" not in env
        assert "LSS_NATS__PASSWORD" not in env


def test_token_and_no_authentication() -> None:
    docs = _render(_values(nats={"auth": {"mode": "token", "existingSecret": SECRET}}))
    env = _env(_deployment(docs, "watcher"))
    assert env["LSS_NATS__TOKEN"] == {"secretKeyRef": {"name": SECRET, "key": "token"}}
    assert "LSS_NATS__USER" not in env
    assert "LSS_NATS__INBOX_PREFIX" not in env
    docs = _render({"nats": {"auth": {"mode": "none"}}})
    for workload in [*_of_kind(docs, "Deployment").values(), *_of_kind(docs, "Job").values()]:
        assert not {
            k
            for k in _env(workload)
            if k.startswith("LSS_NATS__")
            and k not in {"LSS_NATS__URL", "LSS_NATS__DECLARE_TOPOLOGY"}
        }


def test_tls_files_are_mounted_and_named() -> None:
    docs = _render(_values(nats={"tls": {"existingSecret": "nats-tls", "mutual": True}}))
    for workload in [*_of_kind(docs, "Deployment").values(), *_of_kind(docs, "Job").values()]:
        pod = workload["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "nats-tls"]
        assert [i["key"] for i in volume["secret"]["items"]] == ["ca.crt", "tls.crt", "tls.key"]
        (mount,) = [m for m in _container(workload)["volumeMounts"] if m["name"] == "nats-tls"]
        env = _env(workload)
        for setting, file in (
            ("LSS_NATS__TLS_CA_FILE", "ca.crt"),
            ("LSS_NATS__TLS_CERT_FILE", "tls.crt"),
            ("LSS_NATS__TLS_KEY_FILE", "tls.key"),
        ):
            assert env[setting] == str(Path(mount["mountPath"]) / file)
    docs = _render(_values(nats={"tls": {"existingSecret": "nats-tls"}}))
    env = _env(_deployment(docs, "watcher"))
    assert "LSS_NATS__TLS_CA_FILE" in env
    assert "LSS_NATS__TLS_CERT_FILE" not in env


def test_services_declare_their_own_topology_when_asked_and_no_job_runs() -> None:
    docs = _render(_values(nats={"topology": "services"}))
    assert _of_kind(docs, "Job") == {}
    for component in COMPONENTS:
        assert _env(_deployment(docs, component))["LSS_NATS__DECLARE_TOPOLOGY"] == "true"


def test_settings_reach_every_service_and_its_job_and_a_components_own_win() -> None:
    docs = _render(
        _values(
            env={"LSS_LOG__LEVEL": "DEBUG", "LSS_NATS__SUBJECT_PREFIX": "acme"},
            poolManager={
                "env": {"LSS_LOG__LEVEL": "WARNING", "LSS_POOL__REFILL_BATCH_SECONDS": "0.5"}
            },
        )
    )
    for component in COMPONENTS:
        for workload in (_deployment(docs, component), _job(docs, component)):
            env = _env(workload)
            assert env["LSS_NATS__SUBJECT_PREFIX"] == "acme"
            own = component == "pool-manager"
            assert env["LSS_LOG__LEVEL"] == ("WARNING" if own else "DEBUG")
            assert ("LSS_POOL__REFILL_BATCH_SECONDS" in env) is own


def test_the_controllers_own_traffic_is_denied_but_dns_nats_and_the_api_server() -> None:
    docs = _render(BASE)
    (policy,) = _of_kind(docs, "NetworkPolicy").values()
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] is None or spec["ingress"] == []
    selector = spec["podSelector"]["matchLabels"]
    for workload in _of_kind(docs, "Deployment").values():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    ports = [sorted(p["port"] for p in rule["ports"]) for rule in spec["egress"]]
    assert ports == [[53, 53], [4222], [443, 6443]]
    assert "to" in spec["egress"][0]  # DNS: kube-dns only
    scraper = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    docs = _render(_values(networkPolicy={"metricsFrom": scraper}))
    (policy,) = _of_kind(docs, "NetworkPolicy").values()
    assert policy["spec"]["ingress"] == [
        {"from": scraper, "ports": [{"port": 8081, "protocol": "TCP"}]}
    ]
    assert _of_kind(_render(_values(networkPolicy={"enabled": False})), "NetworkPolicy") == {}


def test_the_alert_rules_are_installed_as_they_are_when_asked() -> None:
    assert _of_kind(_render(BASE), "PrometheusRule") == {}
    docs = _render(_values(alerts={"prometheusRule": True, "labels": {"release": "prometheus"}}))
    (rule,) = _of_kind(docs, "PrometheusRule").values()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == yaml.safe_load(prometheus_rules.alerts_file().read_text())


def test_a_component_with_one_replica_has_no_disruption_budget() -> None:
    docs = _render(_values(watcher={"replicas": 1}))
    budgets = _of_kind(docs, "PodDisruptionBudget")
    assert set(budgets) == {"llmsafespace-sandbox-reconciler", "llmsafespace-pool-manager"}
    for budget in budgets.values():
        assert budget["spec"]["maxUnavailable"] == 1
    assert _deployment(docs, "watcher")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (_values(watcher={"replicas": -1}), "/watcher/replicas"),
        (_values(sandboxReconcilr={}), "'sandboxReconcilr' not allowed"),
        (_values(nats={"auth": {"mode": "ldap", "existingSecret": SECRET}}), "/nats/auth/mode"),
        (_values(nats={"url": "http://nats:4222"}), "/nats/url"),
        (_values(nats={"topology": "maybe"}), "/nats/topology"),
        (_values(env={"lss_log__level": "DEBUG"}), "'lss_log__level' not allowed"),
        (_values(watcher={"env": {"PATH": "/x"}}), "/watcher/env"),
        (_values(env={"LSS_KUBE__MAX_CONNECTIONS": 64}), "/env/LSS_KUBE__MAX_CONNECTIONS"),
        (
            _values(watcher={"resources": {"limits": {"memory": "lots"}}}),
            "/watcher/resources/limits/memory",
        ),
        ({"nats": {"auth": {"existingSecret": ""}}}, "nats.auth.existingSecret"),
        (_values(poolManager={"env": {"LSS_NATS__USER": "x"}}), "poolManager.env.LSS_NATS__USER"),
        (
            _values(env={"LSS_SANDBOX__NAMESPACE_ISOLATION": "true"}),
            "env.LSS_SANDBOX__NAMESPACE_ISOLATION",
        ),
        (_values(env={"LSS_HTTP__PORT": "9000"}), "env.LSS_HTTP__PORT"),
    ],
)
def test_bad_values_are_refused_naming_the_value(values: dict[str, Any], message: str) -> None:
    done = helm.render(values, namespace=NAMESPACE)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert done.stdout == ""
