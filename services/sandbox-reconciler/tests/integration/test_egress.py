"""Egress by domain, end to end: never ``0.0.0.0/0``; ports and protocols as given.

- **ipblock mode** (no Cilium): each domain becomes a rule whose peers are the /32 and /128
  ipBlocks of its resolved addresses, on its ports (TCP 443 and 80 when it gives none). The
  addresses are resolved again every ``egress_refresh_interval_seconds``: when what a domain
  resolves to changes, the stored NetworkPolicy follows — replaced in place — though nothing
  else happens to the sandbox (no hint: only the scheduled refresh can see it). A domain
  that resolves to nothing usable (unknown, or only a link-local address such as cloud
  metadata) gets no rule at all, and ``NetworkReady=False/EgressUnresolved`` names it; with
  no rule left the egress policy is deleted rather than left without peers. Domains are
  answered by ``fake_dns`` (``reconciler_harness.FakeDns``) inside the product's own
  resolution path.
- **Cilium mode** (egress mode ``auto``): once the ``ciliumnetworkpolicies.cilium.io`` CRD is
  installed, a running sandbox's ipblock rule is replaced by a ``CiliumNetworkPolicy`` with
  ``toFQDNs`` (the reconciler asks again every ``cilium_check_interval_seconds``), a new
  sandbox gets one straight away, and the policy is deleted with the sandbox: the finalizer
  waits for it.

The Cilium test runs on ``private_platform``: the CRD is cluster-wide, and on the shared
platform it would switch every other test's reconciler (egress mode ``auto`` is the
default) to Cilium mode — or a developer's running platform with ``LSS_TEST_PLATFORM_STATE``.
It removes the CRD at the end all the same, so the private platform's other tests need not
care about their order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from reconciler_harness import Cluster, FakeDns, World, condition

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.models import kinds
from lss_common.testing import eventually
from lss_common.testing.finalizers import hold_deletion, release_deletion
from lss_sandbox_reconciler import names, observe
from lss_sandbox_reconciler.render import network
from lss_sandbox_reconciler.render import owner as owner_module

pytestmark = pytest.mark.integration

Allowed = set[tuple[str, int, str]]
"""Every (peer CIDR, port, protocol) an egress policy allows."""

WIDE_OPEN = ("0.0.0.0/0", "::/0")


def _allowed(policy: dict[str, Any]) -> Allowed:
    """What a stored egress NetworkPolicy allows, checking that every peer is a host."""
    result: Allowed = set()
    for rule in policy["spec"]["egress"]:
        # A rule without peers would allow every destination.
        assert rule.get("to"), f"egress rule without peers: {rule}"
        for peer in rule["to"]:
            assert set(peer) == {"ipBlock"}, peer
            cidr = peer["ipBlock"]["cidr"]
            assert cidr not in WIDE_OPEN
            assert cidr.endswith(("/32", "/128")), cidr
            assert "except" not in peer["ipBlock"]
            for port in rule["ports"]:
                result.add((cidr, port["port"], port["protocol"]))
    return result


def _web(cidr: str) -> Allowed:
    return {(cidr, 443, "TCP"), (cidr, 80, "TCP")}


def _given(cidr: str) -> Allowed:
    return {(cidr, 8443, "TCP"), (cidr, 5353, "UDP")}


async def _policies(cluster: Cluster, uid: str) -> dict[str, dict[str, Any]]:
    """The sandbox's NetworkPolicies by name; none of them opens everything."""
    found = await objects.list_objects(
        cluster.kube,
        resource=objects.NETWORK_POLICY,
        namespace=cluster.namespace,
        label_selector=f"{owner_module.SANDBOX_UID}={uid}",
    )
    for policy in found.items:
        for rule in policy["spec"].get("egress") or ():
            for peer in rule.get("to") or ():
                assert (peer.get("ipBlock") or {}).get("cidr") not in WIDE_OPEN, policy
    return {item["metadata"]["name"]: item for item in found.items}


async def test_ipblock_rules_follow_what_the_domains_resolve_to(
    world: World, cluster: Cluster, fake_dns: FakeDns
) -> None:
    api, files = fake_dns.domain("api"), fake_dns.domain("files")
    fake_dns.answers[api] = ("151.101.113.10",)
    fake_dns.answers[files] = ("151.101.113.20", "2a04:4e42::20")
    await world.start_reconciler(
        egress_mode="ipblock",
        egress_refresh_interval_seconds=1.0,
        # Below the refresh interval, as in production (60 s vs 300 s): a refresh resolves.
        reconcile_options={"dns_cache_seconds": 0.5},
    )
    await world.start_watcher()
    await cluster.create_runtime()
    created = await cluster.create_sandbox(
        "net",
        timeout=600,
        networkAccess={
            "egress": [
                {"domain": api},
                {
                    "domain": files,
                    "ports": [{"port": 8443, "protocol": "TCP"}, {"port": 5353, "protocol": "UDP"}],
                },
            ]
        },
    )
    uid = created["metadata"]["uid"]
    egress = names.policy_name("net", policy=names.Policy.EGRESS)
    deny = names.policy_name("net", policy=names.Policy.DENY)

    async def allows(expected: Allowed) -> dict[str, Any] | None:
        policy = (await _policies(cluster, uid)).get(egress)
        return policy if policy is not None and _allowed(policy) == expected else None

    async def wait_allowed(expected: Allowed, what: str) -> dict[str, Any]:
        found: dict[str, Any] = await eventually.eventually(
            lambda: allows(expected), timeout_seconds=60, describe=what
        )
        return found

    await cluster.wait_phase("net", "Running")
    first = await wait_allowed(
        _web("151.101.113.10/32") | _given("151.101.113.20/32") | _given("2a04:4e42::20/128"),
        "each domain's addresses on its ports",
    )
    annotation = first["metadata"]["annotations"][network.ALLOWED_DOMAINS_ANNOTATION]
    assert set(annotation.split(",")) == {api, files}
    obj = await cluster.sandbox("net")
    assert obj is not None
    assert condition(obj, "NetworkReady")["status"] == "True"

    # The domain moves. Nothing happens to the sandbox or its children, so only the
    # scheduled refresh can make the policy follow.
    fake_dns.answers[api] = ("151.101.113.11", "151.101.113.12")
    moved = await wait_allowed(
        _web("151.101.113.11/32")
        | _web("151.101.113.12/32")
        | _given("151.101.113.20/32")
        | _given("2a04:4e42::20/128"),
        "the refreshed addresses replace the old ones",
    )
    # Replaced in place, never deleted and re-created.
    assert moved["metadata"]["uid"] == first["metadata"]["uid"]

    # Nothing usable: only the inside (cloud metadata's link-local address, a pod or node
    # address, AWS metadata over IPv6), or no answer at all. No rule is written for either,
    # and with no rule left there is no egress policy at all.
    fake_dns.answers[api] = ("169.254.169.254", "10.0.0.5", "fd00:ec2::254")
    del fake_dns.answers[files]

    async def unresolved() -> dict[str, Any] | None:
        obj = await cluster.sandbox("net")
        policies = await _policies(cluster, uid)
        if obj is None or egress in policies or deny not in policies:
            return None
        network_ready = condition(obj, "NetworkReady")
        if network_ready["reason"] != "EgressUnresolved":
            return None
        return obj

    closed: dict[str, Any] = await eventually.eventually(
        unresolved, timeout_seconds=60, describe="egress policy gone, EgressUnresolved"
    )
    network_ready = condition(closed, "NetworkReady")
    assert network_ready["status"] == "False"
    assert api in network_ready["message"]
    assert files in network_ready["message"]
    assert closed["status"]["phase"] == "Running"  # the sandbox runs; only its egress is closed

    fake_dns.answers[api] = ("151.101.113.13",)
    fake_dns.answers[files] = ("151.101.113.20",)
    await wait_allowed(
        _web("151.101.113.13/32") | _given("151.101.113.20/32"), "resolvable again: rules back"
    )

    async def network_ready_again() -> bool:
        obj = await cluster.sandbox("net")
        return bool(obj and condition(obj, "NetworkReady")["status"] == "True")

    await eventually.eventually(network_ready_again, timeout_seconds=60, describe="NetworkReady")
    await cluster.delete_sandbox("net")
    await cluster.wait_gone("net")
    assert await _policies(cluster, uid) == {}


# -- Cilium ---------------------------------------------------------------------------------

CILIUM_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": observe.CILIUM_CRD_NAME},
    "spec": {
        "group": observe.CILIUM_NETWORK_POLICY.group,
        "scope": "Namespaced",
        "names": {
            "kind": network.CILIUM_KIND,
            "listKind": f"{network.CILIUM_KIND}List",
            "plural": observe.CILIUM_NETWORK_POLICY.plural,
            "singular": "ciliumnetworkpolicy",
            "shortNames": ["cnp"],
        },
        "versions": [
            {
                "name": observe.CILIUM_NETWORK_POLICY.version,
                "served": True,
                "storage": True,
                # Cilium's real schema is large; the reconciler needs only the kind stored.
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
async def cilium_crd(private_kube: client.Kube, private_namespace: str) -> AsyncIterator[None]:
    """Installs nothing yet; removes Cilium's CRD (if the test installed it) afterwards."""
    yield
    try:
        await objects.delete_object(
            private_kube, resource=observe.CUSTOM_RESOURCE_DEFINITION, name=observe.CILIUM_CRD_NAME
        )
    except errors.NotFoundError:
        return

    async def gone() -> bool:
        try:
            await objects.get_object(
                private_kube,
                resource=observe.CUSTOM_RESOURCE_DEFINITION,
                name=observe.CILIUM_CRD_NAME,
            )
        except errors.NotFoundError:
            return True
        return False

    await eventually.eventually(gone, timeout_seconds=60, describe="Cilium's CRD removed")


async def _install_cilium_crd(cluster: Cluster) -> None:
    await objects.create_object(
        cluster.kube, resource=observe.CUSTOM_RESOURCE_DEFINITION, body=CILIUM_CRD
    )

    async def served() -> bool:
        await objects.list_objects(
            cluster.kube, resource=observe.CILIUM_NETWORK_POLICY, namespace=cluster.namespace
        )
        return True

    await eventually.eventually(served, timeout_seconds=60, describe="CiliumNetworkPolicy served")


async def _fqdn_policy(cluster: Cluster, name: str) -> dict[str, Any] | None:
    try:
        return await objects.get_object(
            cluster.kube,
            resource=observe.CILIUM_NETWORK_POLICY,
            name=names.policy_name(name, policy=names.Policy.FQDN),
            namespace=cluster.namespace,
        )
    except errors.NotFoundError:
        return None


def _dns_rule() -> dict[str, Any]:
    return {
        "toEndpoints": [
            {
                "matchLabels": {
                    "k8s:io.kubernetes.pod.namespace": "kube-system",
                    "k8s:k8s-app": "kube-dns",
                }
            }
        ],
        "toPorts": [
            {
                "ports": [{"port": "53", "protocol": "ANY"}],
                "rules": {"dns": [{"matchPattern": "*"}]},
            }
        ],
    }


def _ports(rule: dict[str, Any]) -> set[tuple[str, str]]:
    """The (port, protocol) pairs of a Cilium rule (their order carries no meaning)."""
    return {(p["port"], p["protocol"]) for to in rule["toPorts"] for p in to["ports"]}


async def test_cilium_fqdn_policy_once_the_crd_is_installed(
    private_world: World, private_cluster: Cluster, fake_dns: FakeDns, cilium_crd: None
) -> None:
    cluster = private_cluster
    early_domain, late_domain = fake_dns.domain("early"), fake_dns.domain("late")
    fake_dns.answers[early_domain] = ("151.101.113.30",)
    await private_world.start_reconciler(
        egress_refresh_interval_seconds=1.0,
        reconcile_options={"cilium_check_interval_seconds": 0.5, "dns_cache_seconds": 0.5},
    )
    await private_world.start_watcher()
    await cluster.create_runtime()

    # Before the CRD: ipblock.
    early = await cluster.create_sandbox(
        "early", timeout=600, networkAccess={"egress": [{"domain": early_domain}]}
    )
    early_uid = early["metadata"]["uid"]
    early_egress = names.policy_name("early", policy=names.Policy.EGRESS)
    await cluster.wait_phase("early", "Running")

    async def ipblock_rule() -> bool:
        policy = (await _policies(cluster, early_uid)).get(early_egress)
        return policy is not None and _allowed(policy) == _web("151.101.113.30/32")

    await eventually.eventually(ipblock_rule, timeout_seconds=60, describe="ipblock rule")

    await _install_cilium_crd(cluster)

    # The running sandbox switches: an FQDN policy, and its ipblock rule goes.
    async def switched() -> dict[str, Any] | None:
        policies = await _policies(cluster, early_uid)
        fqdn = await _fqdn_policy(cluster, "early")
        if fqdn is None or early_egress in policies:
            return None
        return fqdn

    fqdn: dict[str, Any] = await eventually.eventually(
        switched, timeout_seconds=60, describe="ipblock rule replaced by a CiliumNetworkPolicy"
    )
    assert fqdn["spec"]["endpointSelector"] == {
        "matchLabels": {owner_module.SANDBOX_UID: early_uid}
    }
    dns, by_name = fqdn["spec"]["egress"]
    assert dns == _dns_rule()
    assert by_name["toFQDNs"] == [{"matchName": early_domain}]
    assert _ports(by_name) == {("443", "TCP"), ("80", "TCP")}

    # A sandbox created now gets the FQDN policy straight away, with its ports as given (its
    # domain is never resolved: Cilium enforces names).
    late = await cluster.create_sandbox(
        "late",
        timeout=600,
        networkAccess={
            "egress": [{"domain": late_domain, "ports": [{"port": 8443, "protocol": "TCP"}]}]
        },
    )
    late_uid = late["metadata"]["uid"]
    obj = await cluster.wait_phase("late", "Running")
    network_ready = condition(obj, "NetworkReady")
    assert network_ready["status"] == "True"
    assert "cilium" in network_ready["message"]
    late_fqdn = await _fqdn_policy(cluster, "late")
    assert late_fqdn is not None
    dns, by_name = late_fqdn["spec"]["egress"]
    assert dns == _dns_rule()
    assert by_name["toFQDNs"] == [{"matchName": late_domain}]
    assert _ports(by_name) == {("8443", "TCP")}
    assert late_fqdn["metadata"]["labels"][owner_module.SANDBOX_UID] == late_uid
    assert [(o["kind"], o["uid"]) for o in late_fqdn["metadata"]["ownerReferences"]] == [
        ("Sandbox", late_uid)
    ]
    # Egress by name only: no NetworkPolicy opens an address for it.
    assert set(await _policies(cluster, late_uid)) == {
        names.policy_name("late", policy=names.Policy.DENY)
    }

    # The watcher, started before the CRD existed, watches CiliumNetworkPolicies now: one
    # deleted by hand is announced and re-created (nothing else would wake the sandbox: in
    # Cilium mode no refresh is scheduled).
    await objects.delete_object(
        cluster.kube,
        resource=observe.CILIUM_NETWORK_POLICY,
        name=names.policy_name("late", policy=names.Policy.FQDN),
        namespace=cluster.namespace,
    )

    async def fqdn_back() -> dict[str, Any] | None:
        found = await _fqdn_policy(cluster, "late")
        if found is None or found["metadata"]["uid"] == late_fqdn["metadata"]["uid"]:
            return None
        return found

    back = await eventually.eventually(
        fqdn_back, timeout_seconds=30, describe="the FQDN policy re-created"
    )
    assert back["spec"] == late_fqdn["spec"]

    # Deleted with the sandbox: while the policy's deletion hangs, so does the Sandbox's.
    late_fqdn_name = names.policy_name("late", policy=names.Policy.FQDN)
    await hold_deletion(
        cluster.kube,
        resource=observe.CILIUM_NETWORK_POLICY,
        name=late_fqdn_name,
        namespace=cluster.namespace,
    )
    await cluster.delete_sandbox("late")

    async def policy_deleting_rest_gone() -> bool:
        policy = await _fqdn_policy(cluster, "late")
        rest = await cluster.children(late_uid)
        return bool(
            policy and policy["metadata"].get("deletionTimestamp") and not any(rest.values())
        )

    await eventually.eventually(
        policy_deleting_rest_gone, timeout_seconds=60, describe="FQDN policy held, rest gone"
    )
    held = await cluster.sandbox("late")
    assert held is not None
    assert kinds.FINALIZER in held["metadata"]["finalizers"]
    await release_deletion(
        cluster.kube,
        resource=observe.CILIUM_NETWORK_POLICY,
        name=late_fqdn_name,
        namespace=cluster.namespace,
    )
    await cluster.wait_gone("late")
    assert await _fqdn_policy(cluster, "late") is None

    await cluster.delete_sandbox("early")
    await cluster.wait_gone("early")
    assert await _fqdn_policy(cluster, "early") is None
    assert await _policies(cluster, early_uid) == {}
