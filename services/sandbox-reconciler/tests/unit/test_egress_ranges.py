"""``egress_ranges``: what an egress rule may open. Every non-public range is denied, the
operator's extra ranges too, the operator's allowed ranges are holes in that; a CIDR rule
with its ``except`` list opens exactly the admitted addresses inside it."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_sandbox_reconciler import egress_ranges

RANGES = egress_ranges.EgressRanges.of(denied=["168.63.129.16/32"])


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",  # a pod, a node, a ClusterIP
        "172.20.0.1",
        "192.168.1.1",
        "100.100.100.200",  # Alibaba metadata (shared address space)
        "169.254.169.254",  # AWS, GCP, Azure, Oracle metadata
        "168.63.129.16",  # Azure wire server (public, denied by default)
        "127.0.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fe80::1",
        "::1",
        "::ffff:10.0.0.5",  # an IPv4-mapped private address
    ],
)
def test_the_inside_is_never_admitted(address: str) -> None:
    assert not RANGES.admits(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["151.101.0.223", "8.8.8.8", "2a04:4e42::223"])
def test_public_addresses_are_admitted(address: str) -> None:
    assert RANGES.admits(ipaddress.ip_address(address))


def test_a_cidr_rule_inside_a_denied_range_is_refused_and_a_wider_one_excepts() -> None:
    assert RANGES.carve("169.254.169.254/32") is None
    assert RANGES.carve("10.1.0.0/16") is None
    assert RANGES.carve("151.101.0.0/16") == ()
    internet = RANGES.carve("0.0.0.0/0")
    assert internet is not None
    assert "10.0.0.0/8" in internet
    assert "168.63.129.16/32" in internet
    assert all(":" not in cidr for cidr in internet)  # only the rule's own family
    v6 = RANGES.carve("::/0")
    assert v6 is not None
    assert "fc00::/7" in v6
    # Never the IPv4-mapped range: the API server refuses it under an IPv6 cidr.
    assert "::ffff:0:0/96" not in v6
    with pytest.raises(ValueError, match="not a CIDR"):
        RANGES.carve("10.0.0.1/8")


def test_the_cilium_deny_list_covers_both_families() -> None:
    denied = RANGES.denied_cidrs()
    assert "169.254.0.0/16" in denied
    assert "fc00::/7" in denied


def test_allowed_ranges_are_holes_in_the_denied_ones() -> None:
    ranges = egress_ranges.EgressRanges.of(allowed=["10.20.0.0/16", "fd12::/16"])
    assert ranges.admits(ipaddress.ip_address("10.20.3.4"))
    assert not ranges.admits(ipaddress.ip_address("10.21.3.4"))
    assert ranges.admits(ipaddress.ip_address("fd12::1"))
    assert ranges.carve("10.20.0.0/24") == ()
    # Allowing a whole denied range (or more) removes it.
    everything = egress_ranges.EgressRanges.of(allowed=["0.0.0.0/0"])
    assert everything.admits(ipaddress.ip_address("10.0.0.1"))
    assert not everything.admits(ipaddress.ip_address("fd00::1"))


_ADDRESSES = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)


@given(
    base=_ADDRESSES,
    prefix=st.integers(min_value=0, max_value=32),
    probe=_ADDRESSES,
    allowed=st.lists(
        st.tuples(_ADDRESSES, st.integers(min_value=8, max_value=32)).map(
            lambda pair: str(ipaddress.ip_network(f"{pair[0]}/{pair[1]}", strict=False))
        ),
        max_size=3,
    ),
)
def test_a_carved_rule_opens_exactly_the_admitted_addresses_in_it(
    base: ipaddress.IPv4Address, prefix: int, probe: ipaddress.IPv4Address, allowed: list[str]
) -> None:
    ranges = egress_ranges.EgressRanges.of(denied=["168.63.129.16/32"], allowed=allowed)
    rule = ipaddress.ip_network(f"{base}/{prefix}", strict=False)
    excluded = ranges.carve(str(rule))
    if excluded is None:
        # Refused only when nothing in it could be opened.
        assert not ranges.admits(rule.network_address)
        assert not ranges.admits(rule.broadcast_address)
        return
    opened = probe in rule and not any(probe in ipaddress.ip_network(cidr) for cidr in excluded)
    assert opened == (probe in rule and ranges.admits(probe))
