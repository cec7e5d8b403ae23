"""kube.podexec, the pure parts: the exec query carries the argv one element per ``command``
parameter and survives URL encoding unchanged (hypothesis: no element is split, joined or
altered, whatever it holds); the final Status on channel 3 becomes an exit code and message
(Success, a kubelet's NonZeroExitCode, a runtime's plain failure, garbage is never success);
an output tail keeps only the last bytes."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common.kube import podexec

ARGV = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=50), min_size=1
)


@given(argv=ARGV)
def test_argv_survives_the_query_string_verbatim(argv: list[str]) -> None:
    query = podexec.exec_query(argv, container="sandbox")
    decoded = urllib.parse.parse_qsl(urllib.parse.urlencode(query), keep_blank_values=True)
    assert [value for key, value in decoded if key == "command"] == argv
    assert {k: v for k, v in decoded if k != "command"} == {
        "container": "sandbox",
        "stdin": "false",
        "stdout": "true",
        "stderr": "true",
        "tty": "false",
    }


def test_empty_argv_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty argv"):
        podexec.exec_query([], container="sandbox")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"metadata": {}, "status": "Success"}, (0, None)),
        (
            {
                "status": "Failure",
                "message": "command terminated with non-zero exit code: exit status 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            },
            (3, "command terminated with non-zero exit code: exit status 3"),
        ),
        (
            {"status": "Failure", "reason": "InternalError", "message": "cmd wait: exit status 7"},
            (None, "cmd wait: exit status 7"),
        ),
        (
            {"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": []}},
            (None, "NonZeroExitCode"),
        ),
        (
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "x"}]},
            },
            (None, "NonZeroExitCode"),
        ),
    ],
)
def test_parse_status(status: dict[str, object], expected: tuple[int | None, str | None]) -> None:
    assert podexec.parse_status(json.dumps(status).encode()) == expected


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b""])
def test_unreadable_status_is_never_success(data: bytes) -> None:
    code, message = podexec.parse_status(data)
    assert code is None
    assert message is not None
    assert "unreadable" in message


def test_output_tail_keeps_the_last_bytes() -> None:
    tail = podexec.OutputTail(5)
    tail.write(b"abc")
    assert tail.value() == b"abc"
    tail.write(b"defgh")
    assert tail.value() == b"defgh"
    tail.write(b"ijklmnop")
    assert tail.value() == b"lmnop"


def test_result_succeeds_only_with_code_zero_in_time() -> None:
    assert podexec.ExecResult(exit_code=0, stdout=b"", stderr=b"").succeeded
    assert not podexec.ExecResult(exit_code=1, stdout=b"", stderr=b"").succeeded
    assert not podexec.ExecResult(exit_code=None, stdout=b"", stderr=b"").succeeded
    assert not podexec.ExecResult(exit_code=0, stdout=b"", stderr=b"", timed_out=True).succeeded
