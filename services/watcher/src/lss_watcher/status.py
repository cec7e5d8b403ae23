"""The watched object's committed status as its LSS_STATUS record (pure).

The watcher publishes what the API server has *committed*: the status of the object in a
watch event or a list, never a status some service is about to write. Building the record
from the raw ``status`` JSON of the trimmed view, and ordering records (``is_newer``,
``digest``, ``msg_id``, ``deleted_copy``), live in ``lss_common.logic.status_records``: the
sandbox reconciler builds the records of its own status writes with the same code, so the
same object version gives the same record whoever publishes it. This module only adapts the
watcher's view.

No I/O and no clock (``observed_at`` is an argument).
"""

from __future__ import annotations

import datetime

from lss_common.logic import status_records
from lss_common.models import messages
from lss_watcher import views


def record_of(
    kind: str,
    view: views.ObjectView,
    *,
    observed_at: datetime.datetime,
    deleted: bool = False,
) -> messages.StatusRecord:
    """The StatusRecord of ``view`` (a Sandbox or WarmPool); ``msgspec.DecodeError`` if its
    status is not JSON of the expected shape."""
    meta = view.metadata
    return status_records.record_of(
        kind,
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version,
        status=None if views.is_absent(view.status) else view.status,
        observed_at=observed_at,
        deleted=deleted,
    )
