"""Idempotent declaration of the JetStream streams and durable pull consumers.

Every service declares, at start, the streams it touches and its own durable consumer; any
number of replicas may do so at once. Declaring what already exists is a no-op. Drift (the
server's config differs from ours in a field we manage) is corrected:

* a stream is updated in place, keeping fields we do not manage (an operator's ``max_bytes``),
  because deleting a shared stream would drop every service's consumer; a change the server
  refuses (e.g. storage type) raises ``errors.PermanentError`` for a human to resolve;
* a consumer is updated in place; when the server refuses (``err_code`` 10012, e.g. a new
  deliver policy) it is deleted and re-created. On an interest stream that drops the hints
  only it was holding; the caller asks the watchers for a resync round
  (``resync_requests``, done by ``consuming.ConsumerComponent``), and the periodic resync
  is the backstop.

Server errors are classified by JetStream ``err_code``, never by description text.
Stream choices (see ``docs/bus.md``): LSS_EVENTS holds ``<prefix>.evt.>`` and
``<prefix>.recycle.>`` with interest retention (a hint lives until every consumer interested
in it has acked); LSS_STATUS holds ``<prefix>.status.>`` with limits retention and one message
per subject (the latest status).

This module does not publish or consume.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
import re

import nats.errors
import nats.js
import nats.js.errors
from nats.js import api

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.logic import subjects

_log = logging.getLogger(__name__)

# JetStream API error codes (nats-server/server/errors.json).
ERR_STREAM_NOT_FOUND = 10059
ERR_STREAM_NAME_IN_USE = 10058  # exists with a different configuration
ERR_STREAM_INVALID_CONFIG = 10052  # e.g. "can not change storage type"
ERR_CONSUMER_NOT_FOUND = 10014
ERR_CONSUMER_CREATE = 10012  # e.g. "deliver policy can not be updated"

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")

# The stream fields we own; others (max_bytes, ...) are the operator's and survive updates.
_STREAM_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "num_replicas",
    "max_age",
    "duplicate_window",
    "max_msgs_per_subject",
    "discard",
    "allow_direct",
    "allow_msg_ttl",
)
_CONSUMER_FIELDS = (
    "durable_name",
    "filter_subjects",
    "ack_policy",
    "deliver_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
)


class Declared(enum.StrEnum):
    """What a declaration did."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    RECREATED = "recreated"


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A service's durable pull consumer: its name and the subjects it wants."""

    durable: str
    filter_subjects: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.durable):
            raise ValueError(f"consumer name {self.durable!r} must match {_NAME_RE.pattern}")
        if not self.filter_subjects:
            raise ValueError(f"consumer {self.durable!r} needs at least one filter subject")


def is_stream_missing(error: BaseException | None) -> bool:
    """Whether a NATS client error says the stream is not there (deleted by an operator, or
    lost with a server's store): a publish no stream takes (``NoStreamResponseError``), a
    direct get nobody answers (``NoRespondersError``: the stream itself answers those), or
    the API's "stream not found". The caller declares the streams again."""
    if isinstance(error, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
        return True
    return isinstance(error, nats.js.errors.APIError) and error.err_code == ERR_STREAM_NOT_FOUND


def events_stream_config(settings: settings_module.NatsSettings) -> api.StreamConfig:
    """LSS_EVENTS: work hints and recycle requests, kept until every interested consumer acks."""
    return api.StreamConfig(
        name=settings.events_stream,
        description="LLMSafeSpace work hints (Kubernetes is the source of truth)",
        subjects=[
            subjects.events_filter(prefix=settings.subject_prefix),
            subjects.recycle_filter(prefix=settings.subject_prefix),
        ],
        retention=api.RetentionPolicy.INTEREST,
        storage=_storage(settings),
        num_replicas=settings.replicas,
        max_age=settings.events_max_age_seconds,
        duplicate_window=settings.duplicate_window_seconds,
        max_msgs_per_subject=-1,
        discard=api.DiscardPolicy.OLD,
    )


def status_stream_config(settings: settings_module.NatsSettings) -> api.StreamConfig:
    """LSS_STATUS: the latest committed status per object subject.

    ``allow_direct`` serves last-value reads from any replica; ``allow_msg_ttl`` lets the
    watcher give an object's final (deleted) record a TTL so the stream does not keep every
    object that ever existed.
    """
    return api.StreamConfig(
        name=settings.status_stream,
        description="LLMSafeSpace committed status, last value per object",
        subjects=[subjects.status_filter(prefix=settings.subject_prefix)],
        retention=api.RetentionPolicy.LIMITS,
        storage=_storage(settings),
        num_replicas=settings.replicas,
        duplicate_window=settings.duplicate_window_seconds,
        max_msgs_per_subject=1,
        discard=api.DiscardPolicy.OLD,
        allow_direct=True,
        allow_msg_ttl=True,
    )


def consumer_config(
    spec: ConsumerSpec, *, settings: settings_module.ConsumerSettings
) -> api.ConsumerConfig:
    """The durable pull consumer for ``spec``: explicit acks, never gives up by default."""
    return api.ConsumerConfig(
        durable_name=spec.durable,
        filter_subjects=list(spec.filter_subjects),
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=settings.ack_wait_seconds,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
    )


async def declare_streams(
    js: nats.js.JetStreamContext, *, settings: settings_module.NatsSettings
) -> dict[str, Declared]:
    """Declare LSS_EVENTS and LSS_STATUS; returns what happened to each, by stream name."""
    return {
        config.name or "": await declare_stream(js, config, create=settings.declare_topology)
        for config in (events_stream_config(settings), status_stream_config(settings))
    }


_HOW_TO_DECLARE = (
    "declare it with `python -m lss_<service> --declare-topology` under a NATS user that "
    "may (nats.declare_topology is off here)"
)


async def declare_stream(
    js: nats.js.JetStreamContext, config: api.StreamConfig, *, create: bool = True
) -> Declared:
    """Create ``config``'s stream, or bring the managed fields of an existing one in line;
    with ``create`` False only check that it exists (a retryable error if not) and warn of
    drift."""
    name = config.name or ""
    try:
        try:
            info = await js.stream_info(name)
        except nats.js.errors.APIError as exc:
            if exc.err_code != ERR_STREAM_NOT_FOUND:
                raise
            if not create:
                raise errors.RetryableError(
                    f"stream {name} does not exist: {_HOW_TO_DECLARE}"
                ) from exc
            try:
                await js.add_stream(config)
            except nats.js.errors.APIError as add_exc:
                # Another replica created it first, with another config: fall through to update.
                if add_exc.err_code != ERR_STREAM_NAME_IN_USE:
                    raise
                info = await js.stream_info(name)
            else:
                _log.info("stream created", extra={"stream": name})
                return Declared.CREATED
        drift = _drift(config, info.config, _STREAM_FIELDS)
        if not drift:
            return Declared.UNCHANGED
        if not create:
            _log.warning(
                "stream config drift, not corrected (nats.declare_topology is off)",
                extra={"stream": name, "fields": drift},
            )
            return Declared.UNCHANGED
        merged = info.config.evolve(**{field: getattr(config, field) for field in drift})
        try:
            await js.update_stream(merged)
        except nats.js.errors.APIError as exc:
            if exc.err_code == ERR_STREAM_INVALID_CONFIG:
                raise errors.PermanentError(
                    f"stream {name}: the server refuses to change {', '.join(drift)} "
                    f"({exc.description}); migrate the stream by hand",
                    reason="StreamConfigConflict",
                ) from exc
            raise
        _log.warning("stream config drift corrected", extra={"stream": name, "fields": drift})
        return Declared.UPDATED
    except (nats.js.errors.Error, nats.errors.Error) as exc:
        raise _translate(f"declaring stream {name}", exc) from exc


async def declare_consumer(
    js: nats.js.JetStreamContext,
    spec: ConsumerSpec,
    *,
    stream: str,
    settings: settings_module.ConsumerSettings,
    create: bool = True,
) -> Declared:
    """Create the durable consumer ``spec`` on ``stream``, or correct its drift; with
    ``create`` False only check that it exists (a retryable error if not) and warn of drift."""
    config = consumer_config(spec, settings=settings)
    extra = {"stream": stream, "consumer": spec.durable}
    try:
        try:
            info = await js.consumer_info(stream, spec.durable)
        except nats.js.errors.APIError as exc:
            if exc.err_code != ERR_CONSUMER_NOT_FOUND:
                raise
            if not create:
                raise errors.RetryableError(
                    f"consumer {spec.durable} on {stream} does not exist: {_HOW_TO_DECLARE}"
                ) from exc
            # Create-or-update on the server: a concurrent identical create is a no-op.
            await js.add_consumer(stream, config)
            _log.info("consumer created", extra=extra)
            return Declared.CREATED
        drift = _drift(config, info.config, _CONSUMER_FIELDS)
        if not drift:
            return Declared.UNCHANGED
        if not create:
            _log.warning(
                "consumer config drift, not corrected (nats.declare_topology is off)",
                extra={**extra, "fields": drift},
            )
            return Declared.UNCHANGED
        try:
            await js.add_consumer(stream, config)
        except nats.js.errors.APIError as exc:
            if exc.err_code != ERR_CONSUMER_CREATE:
                raise
            await js.delete_consumer(stream, spec.durable)
            await js.add_consumer(stream, config)
            _log.warning("consumer re-created for config drift", extra={**extra, "fields": drift})
            return Declared.RECREATED
        _log.warning("consumer config drift corrected", extra={**extra, "fields": drift})
        return Declared.UPDATED
    except (nats.js.errors.Error, nats.errors.Error) as exc:
        raise _translate(f"declaring consumer {spec.durable} on {stream}", exc) from exc


async def stream_subjects(
    js: nats.js.JetStreamContext, stream: str, *, filter_subject: str
) -> list[str]:
    """Every subject of ``stream`` matching ``filter_subject`` that holds a message.

    The server lists at most 100,000 subjects per stream-info answer, with ``total`` and
    ``offset`` for the rest; nats-py's ``stream_info`` reads only the first page, so this
    asks page by page. Errors are nats-py's, as ``stream_info`` raises them.
    """
    found: list[str] = []
    while True:
        request = json.dumps({"subjects_filter": filter_subject, "offset": len(found)})
        # nats-py has no paged stream info; its request helper raises the API's errors.
        answer = await js._api_request(
            f"{js._prefix}.STREAM.INFO.{stream}",
            request.encode(),
            timeout=js._timeout,
        )
        page = list((answer.get("state") or {}).get("subjects") or {})
        found.extend(page)
        if not page or len(found) >= int(answer.get("total") or 0):
            return found


async def stream_max_age(js: nats.js.JetStreamContext, stream: str) -> float | None:
    """How long ``stream`` keeps a message, in seconds (None: for ever)."""
    try:
        info = await js.stream_info(stream)
    except (nats.js.errors.Error, nats.errors.Error) as exc:
        raise _translate(f"reading stream {stream}", exc) from exc
    return info.config.max_age or None


def _drift(desired: object, actual: object, fields: tuple[str, ...]) -> list[str]:
    """Managed fields whose values differ; a field we leave at None is not managed."""
    return [
        field
        for field in fields
        if getattr(desired, field) is not None
        and not _same(getattr(desired, field), getattr(actual, field))
    ]


def _same(desired: object, actual: object) -> bool:
    if isinstance(desired, list):
        others = actual if isinstance(actual, list | tuple) else []
        return sorted(map(str, desired)) == sorted(map(str, others))
    if isinstance(desired, float) and isinstance(actual, int | float):
        # Durations come back from nanoseconds; compare at microsecond precision.
        return math.isclose(desired, actual, abs_tol=1e-6)
    if isinstance(desired, bool):
        return desired == bool(actual)
    return desired == actual


def _storage(settings: settings_module.NatsSettings) -> api.StorageType:
    return api.StorageType.FILE if settings.file_storage else api.StorageType.MEMORY


def _translate(what: str, exc: Exception) -> errors.LssError:
    """A 400 from JetStream (bad config, overlapping subjects) needs a human; the rest
    (timeouts, 503 while JetStream starts, a dropped connection) is worth retrying."""
    if isinstance(exc, nats.js.errors.BadRequestError):
        return errors.PermanentError(f"{what}: {exc}", reason="JetStreamRejected")
    return errors.RetryableError(f"{what}: {exc}")
