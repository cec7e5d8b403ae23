"""Publishing to JetStream: encode, stamp ``Nats-Msg-Id`` and trace context, await the PubAck.

Publish is request/reply: it returns only once the stream has stored the message (or
recognised it as a duplicate of one stored within the dedupe window). Failures become
``errors.RetryableError`` (timeouts, no stream reachable) or ``errors.PermanentError`` (the
server rejected the request), and every outcome is counted in
``llmsafespace_bus_published_total{stream,result}``.

This module does not build subjects (``logic/subjects.py`` does) and does not retry.
"""

from __future__ import annotations

import logging

import msgspec
import nats.errors
import nats.js
import nats.js.errors
from nats.js import api

from lss_common import errors
from lss_common.bus import codec
from lss_common.bus import metrics as bus_metrics
from lss_common.observability import metrics as shared_metrics
from lss_common.observability import tracing

_log = logging.getLogger(__name__)


class Publisher:
    """Publishes messages to one stream (the stream name is checked by the server)."""

    def __init__(
        self,
        js: nats.js.JetStreamContext,
        *,
        stream: str,
        metrics: bus_metrics.BusMetrics,
        timeout_seconds: float,
    ) -> None:
        self._js = js
        self._stream = stream
        self._metrics = metrics
        self._timeout_seconds = timeout_seconds

    async def publish(
        self,
        message: msgspec.Struct,
        *,
        subject: str,
        msg_id: str | None,
        ttl_seconds: float | None = None,
    ) -> api.PubAck:
        """Publish ``message`` on ``subject``; returns the PubAck (``duplicate`` set when
        JetStream already stored ``msg_id`` within its dedupe window).

        ``ttl_seconds`` sets a per-message TTL (streams with ``allow_msg_ttl``, e.g. a deleted
        object's last status record).
        """
        return await self.publish_bytes(
            codec.encode(message), subject=subject, msg_id=msg_id, ttl_seconds=ttl_seconds
        )

    async def publish_bytes(
        self,
        payload: bytes,
        *,
        subject: str,
        msg_id: str | None,
        headers: dict[str, str] | None = None,
        ttl_seconds: float | None = None,
    ) -> api.PubAck:
        """:meth:`publish` of an encoded payload, with ``headers`` besides ours (a copy of
        a message keeps its trace context and its own headers)."""
        with tracing.producer_span(subject, stream=self._stream, msg_id=msg_id):
            headers = tracing.inject_headers(dict(headers or {}))
            if msg_id is not None:
                headers[api.Header.MSG_ID.value] = msg_id
            try:
                ack = await self._js.publish(
                    subject,
                    payload,
                    timeout=self._timeout_seconds,
                    stream=self._stream,
                    headers=headers,
                    msg_ttl=ttl_seconds,
                )
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                self._count(shared_metrics.PublishResult.ERROR)
                _log.warning(
                    "publish failed",
                    extra={"subject": subject, "msg_id": msg_id, "error": repr(exc)},
                )
                raise _translate(subject, exc) from exc
        if ack.duplicate:
            self._count(shared_metrics.PublishResult.DUPLICATE)
            _log.debug("publish deduplicated", extra={"subject": subject, "msg_id": msg_id})
        else:
            self._count(shared_metrics.PublishResult.STORED)
        return ack

    def _count(self, result: shared_metrics.PublishResult) -> None:
        self._metrics.published_total.labels(self._stream, result).inc()


def _translate(subject: str, exc: Exception) -> errors.LssError:
    if isinstance(exc, nats.js.errors.BadRequestError):
        # e.g. the subject belongs to another stream than the one expected.
        return errors.PermanentError(
            f"publish to {subject} rejected: {exc}", reason="PublishRejected"
        )
    # Timeouts, no responders while JetStream restarts, a dropped connection: try again.
    return errors.RetryableError(f"publish to {subject} failed: {exc}")
