"""resources: the table of watched resources and their URL paths (pure); and the generated
configuration reference is current."""

from __future__ import annotations

import pathlib

from lss_common import settings_doc
from lss_watcher import resources, settings

REPO = pathlib.Path(__file__).resolve().parents[4]
CONFIG_DOC = REPO / "docs" / "watcher-configuration.md"
TITLE = "Watcher configuration"


def test_default_table() -> None:
    table = resources.watched_resources(settings.WatcherOptions())
    assert [r.name for r in table] == list(resources.Name)
    by_name = {r.name: r for r in table}
    assert {r.name for r in table if r.own_kind} == {
        resources.Name.SANDBOX,
        resources.Name.SANDBOX_PROFILE,
        resources.Name.WARM_POOL,
        resources.Name.WARM_POD,
        resources.Name.RUNTIME_ENVIRONMENT,
    }
    assert {r.name for r in table if r.publishes_status} == {
        resources.Name.SANDBOX,
        resources.Name.WARM_POOL,
    }
    assert {r.name for r in table if r.label_selector} == {
        r.name for r in table if r.own_kind is None
    }
    assert all(r.label_selector in (None, "app=llmsafespace") for r in table)
    assert [r.name for r in table if r.optional] == [resources.Name.CILIUM_NETWORK_POLICY]
    assert by_name[resources.Name.CILIUM_NETWORK_POLICY].collection_path == (
        "/apis/cilium.io/v2/ciliumnetworkpolicies"
    )
    assert by_name[resources.Name.SANDBOX].collection_path == "/apis/llmsafespace.dev/v1/sandboxes"
    assert (
        by_name[resources.Name.RUNTIME_ENVIRONMENT].collection_path
        == "/apis/llmsafespace.dev/v1/runtimeenvironments"
    )
    assert by_name[resources.Name.POD].collection_path == "/api/v1/pods"
    assert (
        by_name[resources.Name.NETWORK_POLICY].collection_path
        == "/apis/networking.k8s.io/v1/networkpolicies"
    )


def test_one_namespace() -> None:
    table = resources.watched_resources(
        settings.WatcherOptions(namespace="team-a", child_label_selector="app=x")
    )
    by_name = {r.name: r for r in table}
    assert by_name[resources.Name.SANDBOX].collection_path == (
        "/apis/llmsafespace.dev/v1/namespaces/team-a/sandboxes"
    )
    assert by_name[resources.Name.PERSISTENT_VOLUME_CLAIM].collection_path == (
        "/api/v1/namespaces/team-a/persistentvolumeclaims"
    )
    # Cluster-scoped kinds are always watched cluster-wide.
    assert by_name[resources.Name.RUNTIME_ENVIRONMENT].namespace is None
    assert by_name[resources.Name.RUNTIME_ENVIRONMENT].collection_path == (
        "/apis/llmsafespace.dev/v1/runtimeenvironments"
    )
    assert by_name[resources.Name.POD].label_selector == "app=x"


def test_configuration_reference_is_current() -> None:
    expected = settings_doc.render(settings.WatcherSettings, title=TITLE)
    assert CONFIG_DOC.read_text() == expected, (
        "regenerate: uv run python -m lss_common.settings_doc --settings "
        f"lss_watcher.settings:WatcherSettings --title '{TITLE}' --output {CONFIG_DOC}"
    )
