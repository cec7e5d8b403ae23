"""Resync requests over core NATS: a consumer that has missed hints asks the watchers for them.

LSS_EVENTS has interest retention: a hint published while no consumer's filter matches it is
not stored at all. So a durable consumer that was just created (a first install), re-created
(drift the server cannot apply in place, or deleted under a running service) or updated in
place (a widened filter) has missed the hints of every object that already exists, and would
learn about them only at the watcher's next periodic resync. :func:`request_resync`
publishes a ``messages.ResyncRequest`` on ``<prefix>.ctl.resync``; every watcher replica
answers with a resync round (``lss_watcher.watcher``), whose hints the consumer now exists
to receive.

Core NATS, not JetStream: a request matters only to the watchers running at that moment (a
watcher that starts later publishes a start round of its own), so nothing needs to keep it.
Best effort: a failure is logged and counted and never fails the caller; the periodic resync
stays the backstop. This module does not decide when a round runs; the watcher does.
"""

from __future__ import annotations

import datetime
import logging
import math
import uuid
from collections.abc import Callable

import nats.aio.client
import nats.aio.msg
import nats.aio.subscription
import nats.errors

from lss_common import errors
from lss_common.bus import codec, topology
from lss_common.bus import metrics as bus_metrics
from lss_common.logic import subjects
from lss_common.models import messages

_log = logging.getLogger(__name__)


def is_needed(declared: topology.Declared) -> bool:
    """Whether a declaration may have left the consumer without hints other consumers got.

    Created and re-created consumers start empty. An in-place update is included too: a
    filter widened to a new kind has the same gap for that kind, and an update of another
    field costs one extra round, once per configuration change.
    """
    return declared is not topology.Declared.UNCHANGED


async def request_resync(
    client: nats.aio.client.Client,
    *,
    consumer: str,
    stream: str,
    prefix: str,
    timeout_seconds: float,
    metrics: bus_metrics.BusMetrics,
) -> bool:
    """Ask the watchers for a resync round on behalf of ``consumer``; True once the server
    has the request. Never raises for a NATS failure (logged and counted instead)."""
    request = messages.ResyncRequest(
        consumer=consumer,
        stream=stream,
        request_id=uuid.uuid4().hex,
        requested_at=datetime.datetime.now(datetime.UTC),
    )
    extra = {"consumer": consumer, "stream": stream, "request_id": request.request_id}
    try:
        await client.publish(subjects.resync_request_subject(prefix=prefix), codec.encode(request))
        # A publish only fills the client's buffer; the flush's answer says the server has
        # the request (and routed it to every watcher subscribed at that moment).
        await client.flush(timeout=max(1, math.ceil(timeout_seconds)))
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        metrics.resync_requests_total.labels(bus_metrics.ResyncRequestResult.ERROR).inc()
        _log.warning(
            "resync request not sent; the periodic resync will cover it",
            extra={**extra, "error": repr(exc)},
        )
        return False
    metrics.resync_requests_total.labels(bus_metrics.ResyncRequestResult.SENT).inc()
    _log.info("resync requested", extra=extra)
    return True


async def subscribe(
    client: nats.aio.client.Client,
    *,
    prefix: str,
    on_request: Callable[[messages.ResyncRequest], None],
    on_invalid: Callable[[errors.InvalidMessage], None],
) -> nats.aio.subscription.Subscription:
    """Receive every resync request of this installation (``prefix``).

    The callbacks run on the client's delivery task and must not block. Once this returns,
    the server has registered the subscription: a request it dropped for want of a
    subscriber was published before that moment. ``errors.RetryableError`` if the client
    cannot subscribe (closed, draining, or the server does not answer).
    """

    async def deliver(msg: nats.aio.msg.Msg) -> None:
        try:
            request = codec.decode(msg.data, message_type=messages.ResyncRequest)
        except errors.InvalidMessage as exc:
            on_invalid(exc)
            return
        on_request(request)

    subject = subjects.resync_request_subject(prefix=prefix)
    try:
        subscription = await client.subscribe(subject, cb=deliver)
        await client.flush()
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise errors.RetryableError(f"subscribing to {subject}: {exc!r}") from exc
    return subscription
