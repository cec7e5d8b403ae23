"""The error hierarchy every service shares.

Library exceptions (kubernetes_asyncio ApiException, nats errors) are translated into these at
the boundary (``kube/objects.py``, ``bus/*``), so handlers and the consume loop reason about
one vocabulary. Messages name the object and, where there is one, the field.
"""

from __future__ import annotations


class LssError(Exception):
    """Base of every error raised on purpose by LLMSafeSpace code."""


class RetryableError(LssError):
    """A transient failure: the message is nak'ed and retried after ``delay_seconds``.

    ``delay_seconds=None`` lets the consume loop pick the backoff for the delivery count.
    """

    def __init__(self, message: str, *, delay_seconds: float | None = None) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class PermanentError(LssError):
    """Retrying cannot help: the handler records a condition and an Event, then acks.

    ``reason`` is a CamelCase condition reason (e.g. ``RuntimeNotFound``).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConflictError(RetryableError):
    """HTTP 409: the object changed since it was read. Re-observe and re-plan, never blind-retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay_seconds=0.0)


class NotFoundError(LssError):
    """HTTP 404: the object does not exist (any more)."""


class AlreadyExistsError(LssError):
    """HTTP 409 AlreadyExists on create: for deterministic names this usually means success."""


class InvalidObjectError(LssError):
    """The API server rejected an object (HTTP 422), or our own validation did.

    ``field`` is the JSON path of the offending field, e.g. ``spec.resources.cpu``.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidMessage(LssError):
    """A bus message that cannot be decoded: it is termed and counted, never retried."""
