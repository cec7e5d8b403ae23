"""Structured logs: JSON line shape, key sources and their precedence, bind() scoping across
tasks, trace ids from the active span, exceptions, the text format, and configure_logging."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace

from lss_common import settings as settings_module
from lss_common.observability import logs


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(static={"service": "svc"}))
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_constant_message(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("status updated", extra=logs.extra(name="sb-1"))
    logger.warning("retrying")
    records = lines(stream)
    assert len(records) == 2
    first = records[0]
    assert first["message"] == "status updated"
    assert first["level"] == "INFO"
    assert first["logger"] == logger.name
    assert first["service"] == "svc"
    assert first["name"] == "sb-1"
    assert isinstance(first["time"], str)
    assert first["time"].endswith("Z")


def test_bound_keys_appear_and_extra_wins(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    with logs.bind(kind="sandbox", namespace="ns", name="a", uid="u-1", delivered=2):
        logger.info("handled", extra=logs.extra(name="override", outcome="ack"))
    record = lines(stream)[0]
    assert record["kind"] == "sandbox"
    assert record["namespace"] == "ns"
    assert record["uid"] == "u-1"
    assert record["delivered"] == 2
    assert record["name"] == "override"
    assert record["outcome"] == "ack"


def test_standard_keys_come_first_in_vocabulary_order(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    with logs.bind(outcome="nak", subject="lss.evt.x", kind="sandbox"):
        logger.info("x", extra={"zeta": 1})
    keys = list(lines(stream)[0])
    assert keys[:4] == ["time", "level", "logger", "message"]
    assert keys.index("service") < keys.index("kind") < keys.index("subject")
    assert keys.index("subject") < keys.index("outcome") < keys.index("zeta")


def test_bind_nests_and_restores(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    with logs.bind(name="outer", kind="sandbox"):
        with logs.bind(name="inner", msg_id="m"):
            logger.info("inner")
        logger.info("outer")
    logger.info("none")
    inner, outer, none = lines(stream)
    assert (inner["name"], inner["kind"], inner["msg_id"]) == ("inner", "sandbox", "m")
    assert outer["name"] == "outer"
    assert "msg_id" not in outer
    assert "name" not in none
    assert logs.bound_keys() == {}


def test_plain_extra_cannot_carry_name_but_extra_helper_can(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    with pytest.raises(KeyError):
        logger.info("x", extra={"name": "clash"})
    assert logs.extra(name="n", kind="sandbox") == {"lss_name": "n", "kind": "sandbox"}
    logger.info("x", extra=logs.extra(name="n"))
    record = lines(stream)[0]
    assert record["name"] == "n"
    assert record["logger"] == logger.name


def test_bind_skips_none_values() -> None:
    with logs.bind(name="a", uid=None):
        assert dict(logs.bound_keys()) == {"name": "a"}


async def test_bound_keys_are_per_task(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    both_bound = asyncio.Barrier(2)

    async def handle(name: str) -> None:
        with logs.bind(name=name):
            await both_bound.wait()
            logger.info("handled")

    await asyncio.gather(handle("a"), handle("b"))
    assert sorted(str(record["name"]) for record in lines(stream)) == ["a", "b"]


def test_trace_ids_come_from_the_active_span(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    context = trace.SpanContext(
        trace_id=0x0123456789ABCDEF0123456789ABCDEF,
        span_id=0x0123456789ABCDEF,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    with trace.use_span(trace.NonRecordingSpan(context)):
        logger.info("in span")
    logger.info("no span")
    in_span, no_span = lines(stream)
    assert in_span["trace_id"] == "0123456789abcdef0123456789abcdef"
    assert in_span["span_id"] == "0123456789abcdef"
    assert "trace_id" not in no_span


def test_exception_gives_error_and_traceback(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    try:
        raise ValueError("bad spec")
    except ValueError:
        logger.exception("handler failed")
    record = lines(stream)[0]
    assert record["error"] == "ValueError: bad spec"
    assert "Traceback" in str(record["traceback"])
    assert record["level"] == "ERROR"


def test_unencodable_values_become_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured

    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    logger.info("x", extra={"thing": Opaque(), "error": KeyError("k")})
    record = lines(stream)[0]
    assert record["thing"] == "opaque!"
    assert record["error"] == "KeyError: 'k'"


def test_text_format_is_readable() -> None:
    formatter = logs.TextFormatter(static={"service": "svc"})
    record = logging.LogRecord("lss.x", logging.WARNING, __file__, 1, "retrying", (), None)
    record.__dict__["reason"] = "two words"
    with logs.bind(kind="sandbox", name="sb-1"):
        text = formatter.format(record)
    assert " WARNING lss.x: retrying " in text
    assert "kind=sandbox name=sb-1" in text
    assert 'reason="two words"' in text
    assert "service=" not in text


def test_configure_logging_installs_one_handler_and_replaces_it() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    first = io.StringIO()
    second = io.StringIO()
    try:
        settings = settings_module.LogSettings(level="DEBUG", json_format=True)
        logs.configure_logging(settings, service="svc-a", stream=first)
        handler = logs.configure_logging(settings, service="svc-b", stream=second)
        assert [h for h in root.handlers if h not in before] == [handler]
        logging.getLogger("lss.test").debug("hello")
        assert first.getvalue() == ""
        record = json.loads(second.getvalue().splitlines()[-1])
        assert record["service"] == "svc-b"
        assert record["message"] == "hello"
        text = logs.configure_logging(
            settings_module.LogSettings(json_format=False), service="svc", stream=io.StringIO()
        )
        assert isinstance(text.formatter, logs.TextFormatter)
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.setLevel(level)
