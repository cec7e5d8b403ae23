"""rounds: when consumers' resync requests call for a round, and its id (pure).

Matrix: before the start round has started every request is covered by it; after it, a
request queues one round named after it and later ones coalesce while it has not started; a
request during a running round queues one more; a round of any trigger that starts first
settles what is queued (nothing is run twice); another stream's request is ignored; two
replicas given the same requests name the same round and publish the same message ids.
Property (hypothesis, any interleaving): every request is covered by a round that starts
after it, and no more requested rounds run than requests that found no round due.
"""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from lss_common.models import messages
from lss_watcher import hints, rounds

STREAM = "LSS_EVENTS"
NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def request(request_id: str, *, stream: str = STREAM) -> messages.ResyncRequest:
    return messages.ResyncRequest(
        consumer="pool-manager", stream=stream, request_id=request_id, requested_at=NOW
    )


def test_requests_before_the_start_round_are_covered_by_it() -> None:
    state = rounds.RequestedRounds(events_stream=STREAM)
    assert state.receive(request("a")) is rounds.Decision.COALESCED
    assert state.receive(request("b")) is rounds.Decision.COALESCED
    assert state.take() is None
    state.round_started()  # the start round
    assert state.take() is None


def test_one_round_for_a_burst_named_after_its_first_request() -> None:
    state = rounds.RequestedRounds(events_stream=STREAM)
    state.round_started()  # the start round
    assert state.receive(request("a")) is rounds.Decision.QUEUED
    assert state.receive(request("b")) is rounds.Decision.COALESCED
    assert state.take() == "request-a"
    # Handed out but not started yet: still covers new requests.
    assert state.receive(request("c")) is rounds.Decision.COALESCED
    assert state.take() is None
    state.round_started()
    assert state.receive(request("d")) is rounds.Decision.QUEUED
    assert state.take() == "request-d"


def test_a_request_during_a_running_round_queues_one_more() -> None:
    state = rounds.RequestedRounds(events_stream=STREAM)
    state.round_started()  # the start round ...
    # ... is running: it took its snapshot before this consumer existed.
    assert state.receive(request("a")) is rounds.Decision.QUEUED
    assert state.take() == "request-a"


def test_a_round_that_starts_first_settles_the_queued_one() -> None:
    state = rounds.RequestedRounds(events_stream=STREAM)
    state.round_started()
    assert state.receive(request("a")) is rounds.Decision.QUEUED
    state.round_started()  # a periodic round got there first
    assert state.take() is None
    assert state.receive(request("b")) is rounds.Decision.QUEUED


def test_requests_for_another_stream_are_ignored() -> None:
    state = rounds.RequestedRounds(events_stream=STREAM)
    state.round_started()
    assert state.receive(request("a", stream="OTHER")) is rounds.Decision.IGNORED
    assert state.take() is None
    assert state.receive(request("b")) is rounds.Decision.QUEUED


def test_replicas_answering_the_same_request_publish_the_same_ids() -> None:
    replicas = [rounds.RequestedRounds(events_stream=STREAM) for _ in range(2)]
    ids = set()
    for state in replicas:
        state.round_started()
        state.receive(request("0123abcd"))
        round_id = state.take()
        assert round_id == rounds.request_round("0123abcd") == "request-0123abcd"
        key = hints.ObjectKey("sandbox", "ns", "box.1")
        ids.add(hints.resync(key, uid="u", resource_version="7", round_id=round_id).msg_id)
    assert ids == {"sandbox/ns/box_1/7/request-0123abcd"}


def test_request_round_ids_stay_apart_from_other_rounds() -> None:
    assert rounds.request_round("1700000000") != hints.resync_round(1700000000)


# Steps of an interleaving: a request arrives; a round of another trigger starts; the
# answering task takes the round it is handed; later, that round starts.
steps = st.lists(st.sampled_from(["request", "other_round", "take", "start_taken"]), max_size=40)


@given(steps)
def test_every_request_is_covered_by_a_round_that_starts_after_it(plan: list[str]) -> None:
    state = rounds.RequestedRounds(events_stream=STREAM)
    uncovered = 0
    queued_decisions = 0
    requested_rounds = 0
    start_round_started = False
    handed_out: str | None = None
    for index, step in enumerate(plan):
        if step == "request":
            if state.receive(request(f"r{index}")) is rounds.Decision.QUEUED:
                queued_decisions += 1
            uncovered += 1
        elif step == "take":
            if handed_out is None:  # the answering task runs one round at a time
                handed_out = state.take()
        else:
            if step == "start_taken":
                if handed_out is None:
                    continue
                handed_out = None
                requested_rounds += 1
            state.round_started()
            start_round_started = True
            uncovered = 0
        # What is not covered yet is owed by a round still to start: the start round, one
        # queued for the answering task, or the one it holds.
        if uncovered:
            assert state.round_due
            assert not start_round_started or state.queued is not None or handed_out is not None
    assert requested_rounds <= queued_decisions
