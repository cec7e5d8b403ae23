"""Stream and consumer configurations derived from settings (pure), and the outcome types."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest
from nats.js import api

from lss_common import settings as settings_module
from lss_common.bus import outcomes, topology


def test_events_stream() -> None:
    nats = settings_module.NatsSettings(subject_prefix="x", duplicate_window_seconds=30.0)
    config = topology.events_stream_config(nats)
    assert config.name == "LSS_EVENTS"
    assert config.subjects == ["x.evt.>", "x.recycle.>"]
    assert config.retention == api.RetentionPolicy.INTEREST
    assert config.storage == api.StorageType.FILE
    assert config.duplicate_window == 30.0
    assert config.max_age == nats.events_max_age_seconds


def test_status_stream_keeps_the_last_message_per_subject() -> None:
    config = topology.status_stream_config(settings_module.NatsSettings(file_storage=False))
    assert config.subjects == ["lss.status.>"]
    assert config.retention == api.RetentionPolicy.LIMITS
    assert config.max_msgs_per_subject == 1
    assert config.storage == api.StorageType.MEMORY


def test_consumer_config() -> None:
    spec = topology.ConsumerSpec("sandbox-reconciler", ("lss.evt.sandbox.>",))
    settings = settings_module.ConsumerSettings(ack_wait_seconds=12.0, max_ack_pending=7)
    config = topology.consumer_config(spec, settings=settings)
    assert config.durable_name == "sandbox-reconciler"
    assert config.filter_subjects == ["lss.evt.sandbox.>"]
    assert config.ack_policy == api.AckPolicy.EXPLICIT
    assert config.ack_wait == 12.0
    assert config.max_ack_pending == 7
    assert config.max_deliver == -1


@pytest.mark.parametrize(
    ("durable", "filters"), [("a.b", ("x.>",)), ("", ("x.>",)), ("a*", ("x.>",)), ("ok", ())]
)
def test_consumer_spec_validation(durable: str, filters: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="consumer"):
        topology.ConsumerSpec(durable, filters)


def test_requeue_after_rejects_negative_and_nan() -> None:
    assert outcomes.RequeueAfter(0.0).seconds == 0.0
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="RequeueAfter"):
            outcomes.RequeueAfter(bad)


@pytest.mark.parametrize(
    ("error", "missing"),
    [
        (nats.js.errors.NoStreamResponseError(), True),  # a publish no stream takes
        (nats.errors.NoRespondersError(), True),  # a direct get nobody answers
        (nats.js.errors.NotFoundError(code=404, err_code=10059), True),  # stream not found
        (nats.js.errors.NotFoundError(code=404, err_code=10037), False),  # no such message
        (nats.js.errors.APIError(code=503, err_code=10008), False),
        (nats.errors.TimeoutError(), False),
        (None, False),
    ],
)
def test_a_missing_stream_is_told_apart(error: BaseException | None, missing: bool) -> None:
    assert topology.is_stream_missing(error) is missing
