"""Reading LSS_STATUS, for the API service: the latest status of one object, or wait for a phase.

LSS_STATUS keeps the latest committed status record of every Sandbox and WarmPool, one per
subject ``<prefix>.status.<kind>.<ns>.<name>`` (published by the watcher). Two helpers:

* :func:`get_status`: one direct get of the last message on the subject (``allow_direct``
  lets any replica answer): the record, or None if the object has none.
* :func:`wait_for_phase`: an ordered consumer on the subject that starts with the *last*
  record (``DeliverPolicy.LAST_PER_SUBJECT``), so a caller that subscribes late still sees
  the current status first, then every newer one, until the phase is one of those wanted.

Records are decoded with ``bus/codec.py`` (an undecodable one raises ``errors.InvalidMessage``).
This module only reads; it never publishes or declares streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

import nats.errors
import nats.js
import nats.js.errors
from nats.js import api

from lss_common import errors
from lss_common.bus import codec
from lss_common.logic import subjects
from lss_common.models import messages

DEFAULT_STREAM = "LSS_STATUS"


async def get_status(
    js: nats.js.JetStreamContext,
    *,
    kind: str,
    namespace: str | None,
    name: str,
    stream: str = DEFAULT_STREAM,
    prefix: str = subjects.DEFAULT_PREFIX,
) -> messages.StatusRecord | None:
    """The latest status record of the object, or None when LSS_STATUS has none.

    A record with ``deleted=True`` is returned as is: the object existed and is gone.
    Transient NATS failures raise ``errors.RetryableError``.
    """
    subject = subjects.status_subject(kind, namespace=namespace, name=name, prefix=prefix)
    try:
        raw = await js.get_last_msg(stream, subject, direct=True)
    except nats.js.errors.NotFoundError:
        return None
    except (nats.errors.Error, nats.js.errors.Error) as error:
        raise errors.RetryableError(f"reading {subject}: {error}") from error
    return codec.decode(raw.data or b"", message_type=messages.StatusRecord)


async def wait_for_phase(
    js: nats.js.JetStreamContext,
    *,
    kind: str,
    namespace: str | None,
    name: str,
    phases: Collection[str],
    timeout_seconds: float,
    stream: str = DEFAULT_STREAM,
    prefix: str = subjects.DEFAULT_PREFIX,
) -> messages.StatusRecord:
    """The first record (the current one included) whose phase is in ``phases``.

    Raises ``TimeoutError`` when none arrives within ``timeout_seconds``, and
    ``errors.NotFoundError`` when the object's record says it was deleted before reaching
    one of ``phases``.
    """
    wanted = frozenset(phases)
    if not wanted:
        raise ValueError("wait_for_phase needs at least one phase")
    subject = subjects.status_subject(kind, namespace=namespace, name=name, prefix=prefix)
    async with asyncio.timeout(timeout_seconds):
        try:
            subscription = await js.subscribe(
                subject,
                stream=stream,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            )
        except (nats.errors.Error, nats.js.errors.Error) as error:
            raise errors.RetryableError(f"subscribing to {subject}: {error}") from error
        try:
            while True:
                # next_msg has its own timeout; the outer asyncio.timeout is the real bound.
                try:
                    msg = await subscription.next_msg(timeout=timeout_seconds)
                except nats.errors.TimeoutError:
                    continue
                record = codec.decode(msg.data, message_type=messages.StatusRecord)
                if record.phase in wanted:
                    return record
                if record.deleted:
                    raise errors.NotFoundError(
                        f"{kind} {namespace}/{name} was deleted in phase {record.phase!r}"
                    )
        finally:
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                await subscription.unsubscribe()
