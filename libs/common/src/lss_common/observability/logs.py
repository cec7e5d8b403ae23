"""Structured logs: one JSON object per line, a constant message, data in keys.

Keys come from three places, later ones winning: the static keys given to
``configure_logging`` (``service``), keys bound with ``bind(...)`` for the current task (the
object and message being handled), and ``extra=`` on the call itself (build it with
``extra(...)``, which lets ``name`` through: the stdlib refuses LogRecord attribute names).
The active OpenTelemetry span, if any, fills ``trace_id``/``span_id`` unless they are bound
explicitly. Messages are
constant ("status updated"), so logs can be grouped by message; the variable parts go in keys.

Levels (convention 7): INFO for state transitions, DEBUG for steady state, WARNING for retries,
ERROR for permanent failures.

This module formats and routes records; it must not decide what to log, and it imports nothing
from lss_common but the settings type (everything may log, so logging depends on nothing).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import logging
import sys
import types
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

import msgspec
from opentelemetry import trace

if TYPE_CHECKING:
    from lss_common import settings as settings_module

# The vocabulary every service uses, in output order: object, then message, then result.
KEYS: tuple[str, ...] = (
    "service",
    "kind",
    "namespace",
    "name",
    "uid",
    "resource_version",
    "subject",
    "stream_seq",
    "delivered",
    "msg_id",
    "outcome",
    "error",
    "trace_id",
    "span_id",
    "duration_seconds",
)

_EMPTY: Mapping[str, object] = types.MappingProxyType({})
_bound: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "lss_log_keys", default=_EMPTY
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    {
        *logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
    }
)

_HANDLER_NAME = "lss_common.observability.logs"
# ``extra=`` may not reuse a LogRecord attribute (the stdlib raises KeyError), and ``name`` is
# both the logger's name and our object-name key; ``extra()`` escapes such keys with this.
_ESCAPE = "lss_"


def extra(**keys: object) -> dict[str, object]:
    """An ``extra=`` mapping for these keys, safe even for ``name`` (the logger's attribute).

    ``logger.info("pod created", extra=logs.extra(name=pod_name, outcome="ack"))``. A plain
    ``extra={"name": ...}`` makes the logging module raise; this escapes the clash.
    """
    return {
        (f"{_ESCAPE}{key}" if key in _RECORD_ATTRIBUTES else key): value
        for key, value in keys.items()
    }


@contextlib.contextmanager
def bind(**keys: object) -> Iterator[None]:
    """Add keys to every record logged in this context (this task and tasks it creates).

    Keys whose value is ``None`` are not bound, so callers can pass optional values as they
    are. Nested binds merge; the inner value wins and the outer one returns on exit.
    """
    merged = dict(_bound.get())
    merged.update((key, value) for key, value in keys.items() if value is not None)
    token = _bound.set(types.MappingProxyType(merged))
    try:
        yield
    finally:
        _bound.reset(token)


def bound_keys() -> Mapping[str, object]:
    """The keys bound in the current context (read-only)."""
    return _bound.get()


def collect_keys(record: logging.LogRecord, *, static: Mapping[str, object]) -> dict[str, object]:
    """All keys for ``record``: static, then bound, then the span's ids, then ``extra=``."""
    keys: dict[str, object] = dict(static)
    keys.update(_bound.get())
    if "trace_id" not in keys:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            keys["trace_id"] = format(span_context.trace_id, "032x")
            keys["span_id"] = format(span_context.span_id, "016x")
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRIBUTES:
            continue
        if key.startswith(_ESCAPE) and key[len(_ESCAPE) :] in _RECORD_ATTRIBUTES:
            key = key[len(_ESCAPE) :]
        keys[key] = value
    return _ordered(keys)


def _ordered(keys: dict[str, object]) -> dict[str, object]:
    known = {key: keys[key] for key in KEYS if key in keys}
    known.update((key, value) for key, value in keys.items() if key not in known)
    return known


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode_fallback(value: Any) -> object:
    # Anything msgspec cannot encode (exceptions, paths, custom objects) is logged as text
    # rather than breaking the log line.
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_encode_fallback)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, keys, exception."""

    def __init__(self, *, static: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self._static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in collect_keys(record, static=self._static).items():
            line.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            line.setdefault("error", record.exc_info[1])
            line["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = record.stack_info
        return _encoder.encode(line).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for humans: ``time LEVEL logger: message key=value ...``."""

    def __init__(self, *, static: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self._static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        keys = collect_keys(record, static=self._static)
        keys.pop("service", None)  # the same on every line; noise for a human reader
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in keys.items())
        text = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if pairs:
            text = f"{text} {pairs}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            text = f"{text}\n{record.stack_info}"
        return text


def _text_value(value: object) -> str:
    text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(value)
    if not text or any(char.isspace() or char in '"=' for char in text):
        return _encoder.encode(text).decode()
    return text


def configure_logging(
    settings: settings_module.LogSettings,
    *,
    service: str,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route all records through one handler on the root logger; returns that handler.

    Calling it again replaces the handler it installed before (tests, reconfiguration) and
    leaves handlers installed by others alone. ``stream`` defaults to stderr.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    static = {"service": service}
    handler.setFormatter(
        JsonFormatter(static=static) if settings.json_format else TextFormatter(static=static)
    )
    root.addHandler(handler)
    level = logging.getLevelName(settings.level)
    root.setLevel(level)
    # kubernetes_asyncio logs whole response bodies at DEBUG, and aiohttp logs every probe
    # request; neither is useful at our DEBUG level and both would drown it.
    for noisy in ("kubernetes_asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, level))
    logging.captureWarnings(True)
    return handler
