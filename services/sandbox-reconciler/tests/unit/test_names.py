"""names: every child name is a DNS-1035 label of at most 63 characters, deterministic, and
distinct for distinct sandboxes (per kind); short names stay readable, long or dotted ones
get a hash; suffixes with a hyphen and empty names are refused; isolation namespaces fit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_sandbox_reconciler import names

# A Kubernetes object name (DNS subdomain): labels of [a-z0-9-] joined by dots, <= 253.
_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
SANDBOX_NAMES = (
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join).filter(lambda n: len(n) <= 253)
)
SUFFIXES = ["", names.DATA_SUFFIX, *(p.value for p in names.Policy)]


@pytest.mark.parametrize(
    ("sandbox_name", "suffix", "expected"),
    [
        ("demo", "", "sandbox-demo"),
        ("demo", "data", "sandbox-demo-data"),
        ("demo", "deny", "sandbox-demo-deny"),
        ("1abc", "", "sandbox-1abc"),
    ],
)
def test_short_names_are_readable(sandbox_name: str, suffix: str, expected: str) -> None:
    assert names.child_name(sandbox_name, suffix=suffix) == expected


def test_long_name_is_truncated_with_a_hash() -> None:
    long_name = "a" * 100
    result = names.pod_name(long_name)
    assert len(result) == names.MAX_NAME_LENGTH
    assert result.startswith("sandbox-aaaa")
    assert names.is_dns_label(result)


def test_dotted_name_is_hashed_not_collapsed() -> None:
    assert names.pod_name("my.box") != names.pod_name("my-box")
    assert names.is_dns_label(names.pod_name("my.box"))


def test_pod_service_and_account_share_the_plain_name() -> None:
    assert names.pod_name("x") == names.service_name("x") == names.service_account_name("x")
    assert names.claim_name("x") == "sandbox-x-data"
    assert names.policy_name("x", policy=names.Policy.FQDN) == "sandbox-x-fqdn"


def test_invalid_input_is_refused() -> None:
    with pytest.raises(ValueError, match="required"):
        names.child_name("")
    with pytest.raises(ValueError, match="hyphen"):
        names.child_name("x", suffix="a-b")


def test_isolation_namespace() -> None:
    uid = "0F3C1D2E-4B5A-4C6D-8E7F-9A0B1C2D3E4F"
    result = names.isolation_namespace(uid, prefix="sandbox-")
    assert result == "sandbox-" + uid.lower()
    assert len(result) <= 63
    with pytest.raises(ValueError, match="not a valid namespace"):
        names.isolation_namespace(uid, prefix="x" * 30)


@given(name=SANDBOX_NAMES, suffix=st.sampled_from(SUFFIXES))
def test_every_name_is_a_valid_label_and_deterministic(name: str, suffix: str) -> None:
    result = names.child_name(name, suffix=suffix)
    assert names.is_dns_label(result), result
    assert result == names.child_name(name, suffix=suffix)
    if suffix:
        assert result.endswith(f"-{suffix}")


@given(
    pair=st.lists(SANDBOX_NAMES, min_size=2, max_size=2, unique=True),
    suffix=st.sampled_from(SUFFIXES),
)
def test_distinct_sandboxes_get_distinct_names(pair: list[str], suffix: str) -> None:
    first, second = pair
    assert names.child_name(first, suffix=suffix) != names.child_name(second, suffix=suffix)


@given(name=SANDBOX_NAMES)
def test_one_sandbox_policies_have_distinct_names(name: str) -> None:
    found = {names.policy_name(name, policy=p) for p in names.Policy}
    assert len(found) == len(names.Policy)
