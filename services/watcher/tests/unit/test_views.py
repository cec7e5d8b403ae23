"""views: the watch wire format and the trimmed object views (pure).

Matrix: lines split across any chunking (hypothesis) and blank lines dropped; watch events of
every type decode, including ERROR (410) and BOOKMARK; objects decode to their identity,
owners, labels, pool reference and raw status, with unknown and large fields skipped; odd
objects (missing metadata, null status) decode with defaults and are judged incomplete;
garbage raises ``msgspec.DecodeError``.
"""

from __future__ import annotations

import itertools

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from lss_watcher import views

POD = (
    b'{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"ns","uid":"u1",'
    b'"resourceVersion":"42","labels":{"app":"llmsafespace"},"managedFields":[{"manager":"x"}],'
    b'"ownerReferences":[{"apiVersion":"llmsafespace.dev/v1","kind":"Sandbox","name":"sb",'
    b'"uid":"u0","controller":true,"blockOwnerDeletion":true}]},'
    b'"spec":{"containers":[{"name":"sandbox","image":"i"}]},"status":{"phase":"Running"}}'
)


def test_object_view() -> None:
    view = views.decode_object(POD)
    meta = view.metadata
    assert (meta.name, meta.namespace, meta.uid, meta.resource_version) == ("p", "ns", "u1", "42")
    assert meta.labels == {"app": "llmsafespace"}
    assert meta.owner_references == [
        views.OwnerRef(
            api_version="llmsafespace.dev/v1", kind="Sandbox", name="sb", uid="u0", controller=True
        )
    ]
    assert view.spec == views.Spec()
    assert bytes(view.status) == b'{"phase":"Running"}'
    assert views.is_complete(view)


def test_warm_pod_pool_ref() -> None:
    view = views.decode_object(
        b'{"metadata":{"name":"wp","namespace":"ns","uid":"u","resourceVersion":"1"},'
        b'"spec":{"poolRef":{"name":"pool","namespace":"other"},"runtime":"python:3.11"}}'
    )
    assert view.spec is not None
    assert view.spec.pool_ref == views.PoolRef(name="pool", namespace="other")


@pytest.mark.parametrize(
    "document",
    [b"{}", b'{"metadata":{}}', b'{"metadata":{"name":"x"},"status":null}', b'{"kind":"Status"}'],
)
def test_odd_objects_decode_but_are_incomplete(document: bytes) -> None:
    view = views.decode_object(document)
    assert not views.is_complete(view)
    assert views.is_absent(view.status)


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"not json",
        b"[]",
        b'{"metadata":[]}',
        b'{"metadata":{"name":7}}',
        b'{"metadata":{"labels":{"a":1}}}',
        b'{"metadata":{"ownerReferences":{}}}',
    ],
)
def test_garbage_raises_decode_error(document: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        views.decode_object(document)


def test_events() -> None:
    added = views.decode_event(b'{"type":"ADDED","object":' + POD + b"}")
    assert added.type == "ADDED"
    assert views.decode_object(added.object).metadata.name == "p"
    bookmark = views.decode_event(
        b'{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":'
        b'{"resourceVersion":"99","annotations":{"k8s.io/initial-events-end":"true"}}}}'
    )
    assert views.decode_bookmark_version(bookmark.object) == "99"
    error = views.decode_event(
        b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},'
        b'"status":"Failure","message":"too old resource version: 1 (264)",'
        b'"reason":"Expired","code":410}}'
    )
    assert views.decode_status(error.object) == views.ApiStatus(
        code=410, reason="Expired", message="too old resource version: 1 (264)"
    )
    empty = views.decode_event(b'{"type":"ERROR"}')
    assert views.is_absent(empty.object)
    with pytest.raises(msgspec.DecodeError):
        views.decode_event(b'{"type":')


@hypothesis.given(
    lines=st.lists(
        st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b and b.strip()),
        max_size=10,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
    blank=st.booleans(),
)
def test_line_splitter_any_chunking(lines: list[bytes], cuts: list[int], blank: bool) -> None:
    stream = b"".join(line + (b"\n\n" if blank else b"\n") for line in lines)
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    splitter = views.LineSplitter()
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(splitter.feed(stream[start:end]))
    assert out == lines
    assert splitter.pending_bytes == 0


def test_line_splitter_holds_an_unfinished_line() -> None:
    splitter = views.LineSplitter()
    assert splitter.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert splitter.pending_bytes == 4
    assert splitter.feed(b"") == []
    assert splitter.feed(b":2}\n") == [b'{"b":2}']
