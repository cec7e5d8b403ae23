"""OpenTelemetry tracing: provider setup and W3C trace context on NATS message headers.

``configure_tracing`` installs the process's tracer provider once at service start (OTel's
provider is process-global by design). The span helpers use OTel's proxy tracer, so they work
before and without configuration: with no SDK installed, trace context still flows from a
message's ``traceparent`` header to the spans (and log lines) of its handler.

Context travels as W3C ``traceparent``/``tracestate`` headers, always, whatever global
propagator is set, so that every service and the API service agree on the wire format.

This module does not log, count, or know about subjects beyond putting them in attributes.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk import resources
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import export as sdk_export
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace.propagation import tracecontext

from lss_common import settings as settings_module

_TRACER_NAME = "lss_common.bus"
_propagator = tracecontext.TraceContextTextMapPropagator()
_tracer = trace.get_tracer(_TRACER_NAME)

# Optional dependency: only needed when an OTLP endpoint is configured.
_OTLP_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def configure_tracing(
    settings: settings_module.TracingSettings, *, service_name: str
) -> sdk_trace.TracerProvider | None:
    """Install a tracer provider for this process; None when tracing is disabled.

    Call once, at service start. Root traces are sampled at ``sample_ratio``; child spans
    follow their parent's decision so a trace is never half-recorded. Spans are exported over
    OTLP/HTTP when ``otlp_endpoint`` is set (needs ``opentelemetry-exporter-otlp-proto-http``),
    otherwise only created and propagated.
    """
    if not settings.enabled:
        return None
    provider = sdk_trace.TracerProvider(
        resource=resources.Resource.create({resources.SERVICE_NAME: service_name}),
        sampler=sampling.ParentBased(sampling.TraceIdRatioBased(settings.sample_ratio)),
    )
    if settings.otlp_endpoint:
        try:
            exporter_module = importlib.import_module(_OTLP_EXPORTER_MODULE)
        except ImportError as exc:
            raise RuntimeError(
                "tracing.otlp_endpoint is set but opentelemetry-exporter-otlp-proto-http is "
                "not installed"
            ) from exc
        exporter = exporter_module.OTLPSpanExporter(endpoint=settings.otlp_endpoint)
        provider.add_span_processor(sdk_export.BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's W3C context to ``headers`` (in place) and return them."""
    _propagator.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The W3C context carried by ``headers`` (an empty context when there is none)."""
    return _propagator.extract(dict(headers or {}))


@contextlib.contextmanager
def producer_span(subject: str, *, stream: str, msg_id: str | None) -> Iterator[trace.Span]:
    """A PRODUCER span around one publish; inject headers inside it."""
    attributes: dict[str, str] = {
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.destination.name": subject,
        "messaging.nats.stream": stream,
    }
    if msg_id is not None:
        attributes["messaging.message.id"] = msg_id
    # The span name uses the stream, not the subject, to keep span-name cardinality bounded.
    with _tracer.start_as_current_span(
        f"send {stream}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


@contextlib.contextmanager
def consumer_span(
    subject: str,
    *,
    stream: str,
    headers: Mapping[str, str] | None,
    delivered: int,
    msg_id: str | None,
) -> Iterator[trace.Span]:
    """A CONSUMER span for handling one message, child of the publisher's span if known.

    Exceptions are not recorded as span errors here: the consume loop decides outcomes and
    sets the span status itself.
    """
    attributes: dict[str, str | int] = {
        "messaging.system": "nats",
        "messaging.operation.type": "process",
        "messaging.destination.name": subject,
        "messaging.nats.stream": stream,
        "messaging.nats.message.delivery_count": delivered,
    }
    if msg_id is not None:
        attributes["messaging.message.id"] = msg_id
    with _tracer.start_as_current_span(
        f"process {stream}",
        context=extract_context(headers),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None outside a valid span."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
