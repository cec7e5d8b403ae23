"""Which destinations an egress rule may open: the public internet, never the inside (pure).

An egress rule names a domain or (in a profile) a CIDR. A domain is only as trustworthy as
its DNS: a tenant's own domain, ``10-0-0-5.ns.pod.cluster.local`` or ``10.0.0.5.nip.io``
resolves to whatever its owner wants — a node's kubelet, etcd, another tenant's pod, the
bus, the cloud's metadata service. So a rule opens only addresses outside the
:data:`NON_PUBLIC` ranges (private, shared, link-local, loopback, documentation, multicast,
reserved; IPv4 and IPv6) and outside ``egress_denied_cidrs`` (cloud endpoints on public
addresses, e.g. Azure's 168.63.129.16); an operator opens an internal range on purpose with
``egress_allowed_private_cidrs`` (an internal package mirror, say).

- A resolved address in a denied range is dropped (:meth:`EgressRanges.admits`).
- A CIDR rule that lies inside a denied range is refused (:meth:`EgressRanges.carve` → None);
  one that contains denied ranges keeps them out with ``ipBlock.except``, so a profile's
  ``0.0.0.0/0`` means "the public internet".
- Cilium mode: ``toFQDNs`` allows whatever the DNS proxy saw; the denied ranges go into an
  ``egressDeny`` of the same policy (:meth:`EgressRanges.denied_cidrs`).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Final

from lss_sandbox_reconciler import settings as settings_module

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Every range that is not the public internet (RFC 6890 special-purpose registries and the
#: multicast ranges). Cloud metadata lives in 169.254.0.0/16 (AWS, GCP, Azure, Oracle),
#: 100.100.100.200 (Alibaba, in the shared range) and fd00:ec2::254 (AWS IPv6, in ULA).
NON_PUBLIC: Final[tuple[Network, ...]] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",
        "::ffff:0:0/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)


_IPV4_MAPPED: Final = ipaddress.ip_network("::ffff:0:0/96")


def parse_cidrs(values: Iterable[str]) -> tuple[Network, ...]:
    """Networks from CIDR strings; ValueError names the first that is not one (host bits
    set included: ``10.0.0.1/8`` is a mistake, not a network)."""
    found: list[Network] = []
    for value in values:
        try:
            found.append(ipaddress.ip_network(value.strip()))
        except ValueError as error:
            raise ValueError(f"{value!r} is not a CIDR: {error}") from None
    return tuple(found)


@dataclasses.dataclass(frozen=True, slots=True)
class EgressRanges:
    """The denied ranges, less what the operator allows (disjoint, sorted)."""

    denied: tuple[Network, ...]

    @classmethod
    def of(cls, *, denied: Sequence[str] = (), allowed: Sequence[str] = ()) -> EgressRanges:
        """:data:`NON_PUBLIC` plus ``denied``, minus ``allowed`` (CIDR strings)."""
        remaining = list(_collapse((*NON_PUBLIC, *parse_cidrs(denied))))
        for hole in parse_cidrs(allowed):
            remaining = [part for net in remaining for part in _exclude(net, hole)]
        return cls(denied=tuple(_collapse(remaining)))

    def admits(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether an egress rule may open this address."""
        return not any(address in net for net in self.denied if net.version == address.version)

    def carve(self, cidr: str) -> tuple[str, ...] | None:
        """The ``except`` list of a CIDR rule (empty: nothing to keep out); None when the
        whole rule lies inside a denied range. ValueError: not a CIDR."""
        (network,) = parse_cidrs((cidr,))
        inside: list[str] = []
        for net in self.denied:
            if net.version != network.version:
                continue
            if _subnet(network, net):
                return None
            if _subnet(net, network) and net != _IPV4_MAPPED:
                # Not the IPv4-mapped range: the API server checks an except entry with Go's
                # IPNet.Contains, which turns a mapped address into 4 bytes, so an IPv6 cidr
                # never "contains" it and the policy is refused (422). An IPv6 rule's peers
                # are IPv6 packets anyway; mapped answers are dropped by ``admits``.
                inside.append(str(net))
        return tuple(inside)

    def denied_cidrs(self) -> tuple[str, ...]:
        """The denied ranges as CIDR strings (IPv4 first), for a policy's deny rule: not the
        IPv4-mapped range (Kubernetes refuses mapped addresses in policies; the packets of a
        mapped address are IPv4 ones, denied by the IPv4 ranges)."""
        return tuple(str(net) for net in self.denied if net != _IPV4_MAPPED)


def of_settings(settings: settings_module.SandboxOptions) -> EgressRanges:
    """The ranges ``settings`` deny (computed once per distinct configuration)."""
    return _cached(
        tuple(settings.egress_denied_cidrs), tuple(settings.egress_allowed_private_cidrs)
    )


@functools.lru_cache(maxsize=8)
def _cached(denied: tuple[str, ...], allowed: tuple[str, ...]) -> EgressRanges:
    return EgressRanges.of(denied=denied, allowed=allowed)


def _subnet(inner: Network, outer: Network) -> bool:
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def _exclude(net: Network, hole: Network) -> list[Network]:
    """``net`` without ``hole``: itself when they do not overlap, nothing when ``hole``
    covers it, else the parts around ``hole``."""
    if _subnet(net, hole):
        return []
    if isinstance(net, ipaddress.IPv4Network) and isinstance(hole, ipaddress.IPv4Network):
        return list(net.address_exclude(hole)) if hole.subnet_of(net) else [net]
    if isinstance(net, ipaddress.IPv6Network) and isinstance(hole, ipaddress.IPv6Network):
        return list(net.address_exclude(hole)) if hole.subnet_of(net) else [net]
    return [net]


def _collapse(nets: Iterable[Network]) -> list[Network]:
    listed = list(nets)
    v4 = [net for net in listed if isinstance(net, ipaddress.IPv4Network)]
    v6 = [net for net in listed if isinstance(net, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
