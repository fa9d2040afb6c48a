"""Destination freshness (issue 12 item 6) for audience syncs: a run that delivered reports the lag from
the newest event the audience's membership reflects to the run's end, in the API and on /metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis.asyncio as aioredis
from starlette.applications import Starlette

from activation.admin.auth import TokenStore
from activation.net import parse_allow_list
from activation.sync.context import SyncContext
from activation.sync.engine import sync_destination
from activation.sync.routes import routes
from collector.metrics import Metrics
from tests.activation.sync.conftest import SECRET_KEY, Fakes, World
from tests.services import changed


def gauge(metrics: Metrics, destination_id: str) -> float | None:
    prefix = f'magpie_destination_lag_seconds{{destination="{destination_id}"}} '
    lines = [line for line in metrics.render().splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else None


async def read_destination(world: World, redis: aioredis.Redis, destination_id: str) -> dict[str, Any]:
    tokens = TokenStore(world.db)
    _, secret = await tokens.create("freshness", ["read"])

    async def enqueue(name: str, *args: Any, job_id: str) -> bool:
        return True

    ctx = SyncContext(world.db, tokens, SECRET_KEY, parse_allow_list("127.0.0.1"), enqueue, redis=redis)
    transport = httpx.ASGITransport(app=Starlette(routes=routes(ctx)))
    async with httpx.AsyncClient(transport=transport, base_url="http://magpie.test") as client:
        response = await client.get(
            f"/admin/v1/destinations/{destination_id}", headers={"Authorization": f"Bearer {secret}"}
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


def newest_event(world: World, audience_id: str, seconds_ago: float) -> datetime:
    at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    columns = ["audience_id", "mode", "newest_event_at", "updated_at", "lag_ms", "version"]
    world.ch.insert(
        "audience_freshness", [[audience_id, "batch", at, at, 0, time.time_ns()]], column_names=columns
    )
    return at


async def test_an_audience_sync_reports_its_lag_in_the_api_and_on_metrics(
    ctx: dict[str, Any], world: World, fakes: Fakes, redis: aioredis.Redis
) -> None:
    metrics = Metrics()
    ctx = changed(ctx, metrics=metrics)
    world.people(range(1, 4))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    dest = await world.destination("webhook", fakes.setups()["webhook"])
    assert (await read_destination(world, redis, dest))["freshness"] is None  # nothing delivered yet
    assert gauge(metrics, dest) is None

    newest = newest_event(world, audience_id, seconds_ago=5)
    started = time.time()
    assert (await sync_destination(ctx, dest, audience_id))["status"] == "succeeded"
    spent = time.time() - started

    fresh = (await read_destination(world, redis, dest))["freshness"]
    assert fresh["measured_in"] == "audience_sync"
    assert 5 <= fresh["lag_s"] <= 5 + spent + 0.5
    assert abs(datetime.fromisoformat(fresh["newest_event_at"]) - newest) < timedelta(milliseconds=1)
    assert gauge(metrics, dest) == fresh["lag_s"]

    newest_event(world, audience_id, seconds_ago=1)  # the membership caught up: the next run is fresher
    await sync_destination(ctx, dest, audience_id)
    again = (await read_destination(world, redis, dest))["freshness"]
    assert 1 <= again["lag_s"] < fresh["lag_s"] and gauge(metrics, dest) == again["lag_s"]


async def test_a_failed_run_is_not_a_delivery(
    ctx: dict[str, Any], world: World, fakes: Fakes, redis: aioredis.Redis
) -> None:
    world.people(range(1, 3))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 3)], "entered")
    dest = await world.destination("webhook", fakes.setups()["webhook"])
    fakes.webhook.inject("error500", times=None)  # every attempt fails: retries run out
    newest_event(world, audience_id, seconds_ago=2)
    result = await sync_destination(ctx, dest, audience_id)
    assert result["status"] == "failed", result
    assert (await read_destination(world, redis, dest))["freshness"] is None
