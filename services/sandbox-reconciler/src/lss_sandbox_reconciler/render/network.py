"""The sandbox's network policies: default deny with its fixed allowances, then one policy
per optional allowance (pure).

Every policy selects the pod by the sandbox's UID label. NetworkPolicies add up: a pod
selected by any policy of a type is isolated in that direction, and what is allowed is the
union of every selecting policy's rules. So the fixed part is one object, and each optional
allowance lives in its own object ("removing an allowance" is deleting that object):

- ``deny``: both policy types (default deny in and out) with the two allowances every
  sandbox has — egress to the cluster DNS pods on UDP and TCP 53, and ingress from the
  LLMSafeSpace API pods to the agent port (the seed also let the sandbox open connections to
  the API on any port; nothing needs that, so it is gone). These were three objects
  (``deny``, ``dns``, ``api``) with the same meaning; one costs one write instead of three.
  Policies of the old names still labelled with the sandbox's UID are deleted by the
  planner like any allowance no longer wanted, *after* the new ``deny`` is in place;
- ``ingress``: present only when ``networkAccess.ingress`` is true (any source, agent port)
  or the profile has ingress CIDR rules;
- ``egress``: the profile's CIDR rules, and in ipblock mode each domain's resolved addresses
  as /32 (/128) ipBlocks on the rule's ports; absent when it would be empty;
- ``fqdn`` (Cilium mode): a CiliumNetworkPolicy with ``toFQDNs`` per domain, plus the DNS
  rule through Cilium's DNS proxy that FQDN policies need to learn the addresses.

Never ``0.0.0.0/0`` for a domain: a domain whose addresses are unknown gets *no* rule (fail
closed) and is reported as unresolved, and a rule is never emitted without peers (a
NetworkPolicy rule with ports but no ``to`` would allow every destination). No rule opens
the inside (``egress_ranges.py``): resolved addresses in a denied range (private, shared,
link-local where cloud metadata lives, loopback, ULA, multicast, reserved, and the
configured ones) are dropped, a profile CIDR holding denied ranges excepts them, and the
Cilium policy denies them (``egressDeny``) whatever the DNS proxy saw.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Final

from lss_sandbox_reconciler import egress_ranges, merge, names
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module

COMPONENT: Final = "network-policy"
ALLOWED_DOMAINS_ANNOTATION: Final = "llmsafespace.dev/allowed-domains"
CILIUM_API_VERSION: Final = "cilium.io/v2"
CILIUM_KIND: Final = "CiliumNetworkPolicy"
_NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
_AGENT_PORTS: Final = ({"port": merge.AGENT_PORT, "protocol": "TCP"},)


@dataclasses.dataclass(frozen=True, slots=True)
class Policies:
    """The desired policies, by name, and what could not be rendered."""

    network_policies: Mapping[str, dict[str, Any]]
    cilium_policies: Mapping[str, dict[str, Any]]
    unresolved_domains: tuple[str, ...]
    """Domains allowed by the spec that have no usable address yet (ipblock mode)."""


def choose_egress_mode(
    settings: settings_module.SandboxOptions, *, cilium_available: bool
) -> settings_module.EgressMode:
    """CILIUM or IPBLOCK: ``auto`` becomes CILIUM exactly when Cilium's CRD is installed."""
    if settings.egress_mode is settings_module.EgressMode.AUTO:
        return (
            settings_module.EgressMode.CILIUM
            if cilium_available
            else settings_module.EgressMode.IPBLOCK
        )
    return settings.egress_mode


def host_cidrs(addresses: Sequence[str], *, ranges: egress_ranges.EgressRanges) -> tuple[str, ...]:
    """Usable addresses as sorted, de-duplicated /32 and /128 CIDRs; the rest (inside a
    denied range, or not an address) dropped."""
    found: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            continue
        if (
            not ranges.admits(address)
            or address.is_unspecified
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
        ):
            continue
        found.add(ipaddress.ip_network(address))
    return tuple(str(net) for net in sorted(found, key=lambda n: (n.version, n.network_address)))


def _ip_block(rule: merge.CidrRule) -> dict[str, Any]:
    if not rule.excluded:
        return {"cidr": rule.cidr}
    return {"cidr": rule.cidr, "except": list(rule.excluded)}


def _ports(ports: Sequence[merge.Port]) -> list[dict[str, Any]]:
    return [{"port": p.port, "protocol": p.protocol} for p in ports]


def _policy(
    owner: owner_module.Owner,
    *,
    policy: names.Policy,
    spec: dict[str, Any],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata = owner_module.child_metadata(
        owner, name=names.policy_name(owner.name, policy=policy), component=COMPONENT
    )
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {"podSelector": {"matchLabels": owner_module.selector(owner)}, **spec},
    }


def render_policies(
    spec: merge.EffectiveSpec,
    *,
    owner: owner_module.Owner,
    settings: settings_module.SandboxOptions,
    egress_mode: settings_module.EgressMode,
    resolved: Mapping[str, Sequence[str]],
) -> Policies:
    """Every policy the sandbox should have now; ``resolved`` maps domain → addresses."""
    if egress_mode is settings_module.EgressMode.AUTO:
        raise ValueError("choose the egress mode first (choose_egress_mode)")
    policies: dict[str, dict[str, Any]] = {}

    def add(policy: dict[str, Any]) -> None:
        policies[policy["metadata"]["name"]] = policy

    # Default deny (both policy types) with the two fixed allowances in the same object:
    # NetworkPolicies add up per direction, so one policy with both types, the DNS egress
    # rule and the API ingress rule allows exactly what three separate ones did.
    add(
        _policy(
            owner,
            policy=names.Policy.DENY,
            spec={
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": dict(settings.api_namespace_selector)
                                },
                                "podSelector": {"matchLabels": dict(settings.api_pod_selector)},
                            }
                        ],
                        "ports": [dict(p) for p in _AGENT_PORTS],
                    }
                ],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {_NAMESPACE_NAME_LABEL: settings.dns_namespace}
                                },
                                "podSelector": {"matchLabels": dict(settings.dns_pod_selector)},
                            }
                        ],
                        "ports": [
                            {"port": 53, "protocol": "UDP"},
                            {"port": 53, "protocol": "TCP"},
                        ],
                    }
                ],
            },
        )
    )
    ingress_rules: list[dict[str, Any]] = []
    if spec.ingress_open:
        # No "from": any source, but only the agent port.
        ingress_rules.append({"ports": [dict(p) for p in _AGENT_PORTS]})
    ingress_rules.extend(
        {"from": [{"ipBlock": _ip_block(rule)}], "ports": _ports(rule.ports)}
        for rule in spec.ingress_cidrs
    )
    if ingress_rules:
        add(
            _policy(
                owner,
                policy=names.Policy.INGRESS,
                spec={"policyTypes": ["Ingress"], "ingress": ingress_rules},
            )
        )
    egress_rules: list[dict[str, Any]] = [
        {"to": [{"ipBlock": _ip_block(rule)}], "ports": _ports(rule.ports)}
        for rule in spec.egress_cidrs
    ]
    ranges = egress_ranges.of_settings(settings)
    unresolved: list[str] = []
    cilium: dict[str, dict[str, Any]] = {}
    if egress_mode is settings_module.EgressMode.IPBLOCK:
        for rule in spec.egress_domains:
            cidrs = host_cidrs(resolved.get(rule.domain, ()), ranges=ranges)
            if not cidrs:
                unresolved.append(rule.domain)
                continue
            egress_rules.append(
                {"to": [{"ipBlock": {"cidr": cidr}} for cidr in cidrs], "ports": _ports(rule.ports)}
            )
    elif spec.egress_domains:
        fqdn = render_fqdn_policy(spec, owner=owner, settings=settings)
        cilium[fqdn["metadata"]["name"]] = fqdn
    if egress_rules:
        domains = (
            [rule.domain for rule in spec.egress_domains if rule.domain not in unresolved]
            if egress_mode is settings_module.EgressMode.IPBLOCK
            else []
        )
        add(
            _policy(
                owner,
                policy=names.Policy.EGRESS,
                spec={"policyTypes": ["Egress"], "egress": egress_rules},
                annotations={ALLOWED_DOMAINS_ANNOTATION: ",".join(domains)} if domains else None,
            )
        )
    return Policies(
        network_policies=policies, cilium_policies=cilium, unresolved_domains=tuple(unresolved)
    )


def render_fqdn_policy(
    spec: merge.EffectiveSpec,
    *,
    owner: owner_module.Owner,
    settings: settings_module.SandboxOptions,
) -> dict[str, Any]:
    """The CiliumNetworkPolicy allowing each domain by name on its ports."""
    dns_peer = {
        "matchLabels": {
            "k8s:io.kubernetes.pod.namespace": settings.dns_namespace,
            **{f"k8s:{key}": value for key, value in settings.dns_pod_selector.items()},
        }
    }
    egress: list[dict[str, Any]] = [
        {
            # FQDN rules only match addresses Cilium's DNS proxy saw resolved, so DNS must go
            # through the proxy (an L7 dns rule on port 53).
            "toEndpoints": [dns_peer],
            "toPorts": [
                {
                    "ports": [{"port": "53", "protocol": "ANY"}],
                    "rules": {"dns": [{"matchPattern": "*"}]},
                }
            ],
        }
    ]
    egress.extend(
        {
            "toFQDNs": [{"matchName": rule.domain}],
            "toPorts": [
                {"ports": [{"port": str(p.port), "protocol": p.protocol} for p in rule.ports]}
            ],
        }
        for rule in spec.egress_domains
    )
    # toFQDNs allows whatever address the DNS proxy saw for the name; a deny rule wins over
    # every allow, so a name resolving inside stays closed (egress_ranges.py).
    denied = egress_ranges.of_settings(settings).denied_cidrs()
    return {
        "apiVersion": CILIUM_API_VERSION,
        "kind": CILIUM_KIND,
        "metadata": owner_module.child_metadata(
            owner, name=names.policy_name(owner.name, policy=names.Policy.FQDN), component=COMPONENT
        ),
        "spec": {
            "endpointSelector": {"matchLabels": owner_module.selector(owner)},
            "egress": egress,
            "egressDeny": [{"toCIDRSet": [{"cidr": cidr} for cidr in denied]}],
        },
    }
