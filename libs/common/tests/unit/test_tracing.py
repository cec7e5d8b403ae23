"""W3C trace context on message headers (pure OTel, no exporter, no global provider)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk import trace as sdk_trace

from lss_common.observability import tracing


def test_headers_carry_the_current_span_to_the_consumer_span() -> None:
    tracer = sdk_trace.TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("publisher") as publisher:
        headers = tracing.inject_headers({})
    publisher_context = publisher.get_span_context()
    assert headers["traceparent"].split("-")[1] == format(publisher_context.trace_id, "032x")
    with tracing.consumer_span(
        "lss.evt.sandbox.ns.n", stream="S", headers=headers, delivered=1, msg_id="m"
    ):
        assert tracing.current_trace_id() == format(publisher_context.trace_id, "032x")
    assert trace.get_current_span().get_span_context().is_valid is False


def test_no_context_outside_spans() -> None:
    assert tracing.inject_headers({}) == {}
    assert tracing.current_trace_id() is None
    assert tracing.extract_context({"traceparent": "garbage"}) == tracing.extract_context(None)
