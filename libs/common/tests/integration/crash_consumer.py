"""A consumer process for test_bus_crash.py: it signals (by creating a file) that it is inside
its handler, then never finishes, waiting to be killed with SIGKILL.

Usage: python crash_consumer.py <settings-json> <durable> <filter-subject> <marker-path>
"""

from __future__ import annotations

import asyncio
import pathlib
import sys

import prometheus_client

from lss_common import settings as settings_module
from lss_common.bus import connection, consuming, outcomes, topology
from lss_common.bus import metrics as bus_metrics
from lss_common.models import messages


def write_atomically(path: pathlib.Path, text: str) -> None:
    # The test polls for the file: it must never see it half written.
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


async def main(settings_json: str, durable: str, filter_subject: str, marker: str) -> None:
    settings = settings_module.CommonSettings.model_validate_json(settings_json)
    metrics = bus_metrics.BusMetrics.register(prometheus_client.CollectorRegistry())
    conn = await connection.connect(settings.nats, metrics=metrics, client_name="crash")

    async def handle(message: messages.ChangeEvent) -> outcomes.Outcome:
        delivered = consuming.current_delivery().num_delivered
        await asyncio.to_thread(
            write_atomically, pathlib.Path(marker), f"{message.name} {delivered}\n"
        )
        await asyncio.Event().wait()  # "working" until SIGKILL
        return outcomes.DONE

    consumer = consuming.Consumer(
        conn.jetstream,
        spec=topology.ConsumerSpec(durable, (filter_subject,)),
        stream=settings.nats.events_stream,
        message_type=messages.ChangeEvent,
        handler=handle,
        settings=settings.consumer,
        metrics=metrics,
    )
    await consumer.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
