"""Status conditions with Kubernetes semantics, as pure functions over ``meta.Condition`` lists.

``lastTransitionTime`` changes only when ``status`` changes; a new reason, message or
observedGeneration alone is not a transition. Functions return new lists and never mutate
their input (conditions are msgspec structs, replaced rather than edited), so a handler can
compare the old and new lists with ``==`` to skip a no-op status write.

Pure: no I/O, no clock (``now`` is an argument), no client imports.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Final

import msgspec

from lss_common.models import meta

TRUE: Final = meta.ConditionStatus.TRUE
FALSE: Final = meta.ConditionStatus.FALSE
UNKNOWN: Final = meta.ConditionStatus.UNKNOWN
_STATUSES: Final = frozenset(str(status) for status in meta.ConditionStatus)

# metav1.Condition validation (apimachinery ValidateConditions): the API server would reject
# anything else, so failing here points at the code that built the condition instead.
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?\Z")
_TYPE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z"
)
_MAX_TYPE_LENGTH: Final = 316
_MAX_REASON_LENGTH: Final = 1024
_MAX_MESSAGE_BYTES: Final = 32768


def find_condition(
    conditions: Sequence[meta.Condition] | None, *, condition_type: str
) -> meta.Condition | None:
    """The condition of ``condition_type``, or ``None``."""
    for condition in conditions or ():
        if condition.type == condition_type:
            return condition
    return None


def is_condition_true(conditions: Sequence[meta.Condition] | None, *, condition_type: str) -> bool:
    """Whether the condition exists and its status is ``True``."""
    condition = find_condition(conditions, condition_type=condition_type)
    return condition is not None and condition.status == TRUE


def set_condition(
    conditions: Sequence[meta.Condition] | None,
    *,
    condition_type: str,
    status: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    observed_generation: int | None = None,
) -> list[meta.Condition]:
    """A new list with the condition of ``condition_type`` set; the others are kept as they are.

    An existing condition keeps its position, and its ``lastTransitionTime`` unless ``status``
    changes; a new condition is appended with ``lastTransitionTime = now``. ``message`` is cut
    to the API server's limit rather than failing the write.
    """
    _validate(condition_type=condition_type, status=status, reason=reason)
    if observed_generation is not None and observed_generation < 0:
        raise ValueError("observedGeneration must not be negative")
    message = truncate_message(message)
    result: list[meta.Condition] = []
    found = False
    for condition in conditions or ():
        if condition.type != condition_type:
            result.append(condition)
            continue
        found = True
        transitioned = condition.status != status or not condition.last_transition_time
        result.append(
            msgspec.structs.replace(
                condition,
                status=str(status),
                reason=reason,
                message=message,
                observed_generation=observed_generation,
                last_transition_time=(
                    meta.format_timestamp(now) if transitioned else condition.last_transition_time
                ),
            )
        )
    if not found:
        result.append(
            meta.Condition(
                type=condition_type,
                status=str(status),
                reason=reason,
                message=message,
                observed_generation=observed_generation,
                last_transition_time=meta.format_timestamp(now),
            )
        )
    return result


def remove_condition(
    conditions: Sequence[meta.Condition] | None, *, condition_type: str
) -> list[meta.Condition]:
    """A new list without the condition of ``condition_type``."""
    return [c for c in conditions or () if c.type != condition_type]


def truncate_message(message: str) -> str:
    """``message`` cut to the API server's limit, so a long error text cannot fail a write.

    The limit is in UTF-8 bytes (the server measures a Go string's length).
    """
    encoded = message.encode()
    if len(encoded) <= _MAX_MESSAGE_BYTES:
        return message
    ellipsis = "\u2026"
    room = _MAX_MESSAGE_BYTES - len(ellipsis.encode())
    return encoded[:room].decode(errors="ignore") + ellipsis


def _validate(*, condition_type: str, status: str, reason: str) -> None:
    if len(condition_type) > _MAX_TYPE_LENGTH or not _TYPE.match(condition_type):
        raise ValueError(f"invalid condition type {condition_type!r}")
    if status not in _STATUSES:
        raise ValueError(f"condition {condition_type}: status must be True, False or Unknown")
    if len(reason) > _MAX_REASON_LENGTH or not _REASON.match(reason):
        raise ValueError(f"condition {condition_type}: reason {reason!r} must be CamelCase")
