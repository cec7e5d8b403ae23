"""Subject building and the name-token encoding (pure).

Matrix: encode/decode round trip over arbitrary text (incl. dots, wildcards, whitespace,
non-ASCII, lone surrogates); token shape (one non-empty token, no '.', '*', '>', whitespace);
canonical form (decode accepts only what encode produces); subject builders ⇄ parsers for
namespaced and cluster-scoped objects; message ids.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lss_common import errors
from lss_common.logic import subjects

# DNS-1123 subdomains: what Kubernetes names really look like, dots included.
dns_names = st.from_regex(r"\A[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?\Z")
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)
kinds = st.sampled_from(["sandbox", "warmpool", "warmpod", "sandboxprofile", "runtimeenvironment"])


@given(any_text)
@example("")
@example("a.b.c")
@example("*")
@example(">")
@example(" \t\n")
@example("%")
@example("_")
@example("%cluster")
@example("\ud800")
def test_token_round_trip(value: str) -> None:
    token = subjects.encode_token(value)
    assert subjects.decode_token(token) == value


@given(any_text)
def test_token_is_one_safe_subject_token(value: str) -> None:
    token = subjects.encode_token(value)
    assert token
    assert not set(token) & set(".*>" + string.whitespace)
    assert token.isascii()


@given(any_text)
def test_no_namespace_encodes_to_the_cluster_token(value: str) -> None:
    assert subjects.encode_namespace(value) != subjects.CLUSTER_TOKEN


@given(st.text(alphabet="aZ09-_%.CF5E2x", max_size=12))
def test_decode_accepts_only_canonical_tokens(token: str) -> None:
    try:
        value = subjects.decode_token(token)
    except errors.InvalidMessage:
        return
    assert subjects.encode_token(value) == token


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("my-sandbox", "my-sandbox"),
        ("my.app.v1", "my_app_v1"),
        ("a_b", "a%5Fb"),
        ("", "%"),
        ("é", "%C3%A9"),
        ("a b", "a%20b"),
        ("x>*", "x%3E%2A"),
    ],
)
def test_token_examples(value: str, token: str) -> None:
    assert subjects.encode_token(value) == token


@pytest.mark.parametrize("token", ["", "a.b", "%61", "%2E", "%2e", "%G0", "%5", "a b", "a*"])
def test_decode_rejects_foreign_tokens(token: str) -> None:
    with pytest.raises(errors.InvalidMessage):
        subjects.decode_token(token)


@given(kinds, st.none() | dns_names, dns_names)
def test_event_subject_round_trip(kind: str, namespace: str | None, name: str) -> None:
    subject = subjects.event_subject(kind, namespace=namespace, name=name, prefix="lss")
    assert subject.count(".") == 4
    assert subjects.parse_event_subject(subject, prefix="lss") == (kind, namespace, name)


@given(kinds, st.none() | any_text, any_text)
def test_status_subject_round_trip_any_text(kind: str, namespace: str | None, name: str) -> None:
    subject = subjects.status_subject(kind, namespace=namespace, name=name, prefix="p-1")
    assert subjects.parse_status_subject(subject, prefix="p-1") == (kind, namespace, name)


@given(dns_names, dns_names)
def test_recycle_subject_round_trip(namespace: str, warmpod: str) -> None:
    subject = subjects.recycle_subject(namespace, warmpod=warmpod)
    assert subjects.parse_recycle_subject(subject) == ("warmpod", namespace, warmpod)


def test_subject_shapes() -> None:
    assert (
        subjects.event_subject("sandbox", namespace="team-a", name="job.1")
        == "lss.evt.sandbox.team-a.job_1"
    )
    assert (
        subjects.event_subject("runtimeenvironment", namespace=None, name="python-3.12")
        == "lss.evt.runtimeenvironment.%cluster.python-3_12"
    )
    assert (
        subjects.status_subject("warmpool", namespace="ns", name="p") == "lss.status.warmpool.ns.p"
    )
    assert subjects.recycle_subject("ns", warmpod="wp.1") == "lss.recycle.ns.wp_1"
    assert subjects.events_filter("sandbox") == "lss.evt.sandbox.>"
    assert subjects.events_filter() == "lss.evt.>"
    assert subjects.status_filter(prefix="x") == "x.status.>"
    assert subjects.recycle_filter() == "lss.recycle.>"


@pytest.mark.parametrize(
    "subject",
    [
        "lss.evt.sandbox.ns",  # too short
        "lss.evt.sandbox.ns.a.b",  # a dot in a name that was not encoded
        "other.evt.sandbox.ns.n",  # wrong prefix
        "lss.status.sandbox.ns.n",  # wrong section
        "lss.evt.Sand*box.ns.n",  # bad kind
        "lss.evt.sandbox.ns.%zz",  # bad escape
    ],
)
def test_parse_rejects_foreign_subjects(subject: str) -> None:
    with pytest.raises(errors.InvalidMessage):
        subjects.parse_event_subject(subject)


@pytest.mark.parametrize("kind", ["", "Sandbox", "sand.box", "a>"])
def test_builders_reject_bad_kinds(kind: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        subjects.event_subject(kind, namespace="ns", name="n")


def test_builders_reject_bad_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        subjects.event_subject("sandbox", namespace="ns", name="n", prefix="a.b")


def test_message_id() -> None:
    assert (
        subjects.message_id("sandbox", namespace="ns", name="a.b", resource_version="42")
        == "sandbox/ns/a_b/42"
    )
    assert (
        subjects.message_id(
            "runtimeenvironment", namespace=None, name="py", resource_version="7", round_id="r9"
        )
        == "runtimeenvironment/%cluster/py/7/r9"
    )


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, ``>`` one or more trailing tokens."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or token not in ("*", tokens[index]):
            return False
    return len(tokens) == len(wanted)


@pytest.mark.parametrize("prefix", ["lss", "t0123456789", "a-b_c"])
def test_resync_request_subject_is_outside_every_stream(prefix: str) -> None:
    subject = subjects.resync_request_subject(prefix=prefix)
    assert subject == f"{prefix}.ctl.resync"
    # A stream capturing it would store every request and answer its publisher.
    stream_subjects = [
        subjects.events_filter(prefix=prefix),
        subjects.recycle_filter(prefix=prefix),
        subjects.status_filter(prefix=prefix),
    ]
    assert [pattern for pattern in stream_subjects if _matches(pattern, subject)] == []
    # The matcher itself does match what the streams hold.
    assert _matches(
        subjects.events_filter(prefix=prefix),
        subjects.event_subject("sandbox", namespace="ns", name="n", prefix=prefix),
    )


def test_resync_request_subject_rejects_bad_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        subjects.resync_request_subject(prefix="a.>")
