"""Which resync rounds the consumers' resync requests call for, and their ids (pure).

A service whose durable consumer was just created asks for a resync
(``lss_common.bus.resync_requests``): LSS_EVENTS has interest retention, so it missed the
hints of every object that already exists. A round covers a request if it *starts* (takes
its snapshot of the trackers) after the request arrived, because then each of its hints is
published after the consumer existed. Hence:

* until the start round has started (initial lists still running), every request is
  covered by the start round: nothing extra;
* when no round is due, a request queues one round; later requests join it (coalesce) for
  as long as it has not started, so a burst of new consumers costs one round, not one each;
* a request that arrives while a round runs needs one more round (that round started
  before the consumer existed);
* any round that starts (start, periodic, reconnect or requested) settles every request
  received before it; a queued round that another round overtook is not run.

A requested round is named after the request that queued it (:func:`request_round`), so
replicas answering the same request publish the same message ids and JetStream keeps one
copy. Requests naming another stream than the watcher's events stream are ignored: the
watcher's hints go there only. No I/O here (``watcher.py`` receives and runs).
"""

from __future__ import annotations

import dataclasses
import enum

from lss_common.models import messages

REQUEST_ROUND_PREFIX = "request-"


class Decision(enum.StrEnum):
    """What became of one resync request (the metric label)."""

    QUEUED = "queued"
    """No round was due: one is queued, named after this request."""
    COALESCED = "coalesced"
    """A round that has not started yet (the start round, or one queued) covers it."""
    IGNORED = "ignored"
    """It names another stream than the one the watcher publishes hints to."""
    INVALID = "invalid"
    """It could not be decoded (decided by the receiver, never by :class:`RequestedRounds`)."""


def request_round(request_id: str) -> str:
    """The id of the round answering request ``request_id`` (the same on every replica)."""
    return f"{REQUEST_ROUND_PREFIX}{request_id}"


@dataclasses.dataclass(slots=True)
class RequestedRounds:
    """The debounce state: is a round due that has not started, and must one be run?"""

    events_stream: str
    round_due: bool = True
    """A round is coming that has not started yet; a new watcher's start round is."""
    queued: str | None = None
    """The id of the requested round to run, until :meth:`take` hands it out."""

    def receive(self, request: messages.ResyncRequest) -> Decision:
        """Decide about one request as it arrives."""
        if request.stream != self.events_stream:
            return Decision.IGNORED
        if self.round_due:
            return Decision.COALESCED
        self.round_due = True
        self.queued = request_round(request.request_id)
        return Decision.QUEUED

    def take(self) -> str | None:
        """The id of the round to run now, if one is still needed (then at most once)."""
        queued, self.queued = self.queued, None
        return queued

    def round_started(self) -> None:
        """A round (of any trigger) has started: every request received so far is covered."""
        self.round_due = False
        self.queued = None
