"""Destination freshness (issue 12 item 6) for event connections: a live delivery reports the lag from
the newest stored event it carried (inserted_at) to its delivery, readable and on /metrics."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from activation.connections.delivery import run_delivery
from activation.sync import freshness
from collector.metrics import Metrics
from tests.activation.connections.conftest import FAST, Forwarding
from tests.activation.connections.test_forwarding_engine import forward, webhook
from tests.fakes.webhook import FakeWebhookReceiver


async def test_a_connection_delivery_reports_inserted_to_delivered_lag(fwd: Forwarding) -> None:
    metrics = Metrics()
    services = replace(fwd.services, metrics=metrics)
    async with FakeWebhookReceiver() as hook:
        dest = await webhook(fwd, hook)
        await fwd.connect(dest)
        assert await freshness.read(fwd.redis, dest) is None
        inserted = time.time()
        fwd.events([{"user": f"user-{fwd.ns}"} for _ in range(5)])
        assert await forward(fwd) == 5
        await asyncio.sleep(1.0)  # the events wait a second in the queue before the delivery job runs
        assert (await run_delivery(services, dest, FAST))["delivered"] == 5
        delivered = time.time()

    fresh = await freshness.read(fwd.redis, dest)
    assert fresh is not None and fresh["measured_in"] == "connection"
    assert 1.0 <= fresh["lag_s"] <= delivered - inserted + 0.1
    line = f'magpie_destination_lag_seconds{{destination="{dest}"}} {fresh["lag_s"]:g}'
    assert line in metrics.render().splitlines()
