"""One sync per destination at a time across workers, and the per-destination batch rate."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from activation.retry import RetryLater
from activation.sync.engine import sync_destination
from activation.sync.limits import DestinationLock, LockBusy, RateLimiter
from tests.activation.sync.conftest import FAST, Fakes, World
from tests.services import changed


async def test_lock_is_exclusive_and_released(redis: aioredis.Redis) -> None:
    async with DestinationLock(redis, "d1", ttl_s=5, wait_s=0):
        with pytest.raises(LockBusy):
            async with DestinationLock(redis, "d1", ttl_s=5, wait_s=0.1):
                pass
        async with DestinationLock(redis, "d2", ttl_s=5, wait_s=0):
            pass
    async with DestinationLock(redis, "d1", ttl_s=5, wait_s=0):
        pass
    assert await redis.keys("magpie:sync:lock:*") == []


async def test_a_lock_is_renewed_while_held(redis: aioredis.Redis) -> None:
    async with DestinationLock(redis, "d3", ttl_s=1, wait_s=0):
        await asyncio.sleep(1.5)
        assert await redis.exists("magpie:sync:lock:d3")


async def test_rate_limiter_spreads_batches_over_seconds(redis: aioredis.Redis) -> None:
    limiter = RateLimiter(redis, "d4", per_s=2)
    started = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - started >= 1.0


async def test_a_destination_syncs_one_run_at_a_time(ctx: dict[str, Any], world: World, fakes: Fakes) -> None:
    world.people(range(1, 4))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    dest = await world.destination("webhook", fakes.setups()["webhook"])
    async with DestinationLock(ctx["services"].redis, dest, ttl_s=5, wait_s=0):
        with pytest.raises(RetryLater) as busy:  # the queue runs it again once the lock can be free
            await sync_destination(changed(ctx, sync=replace(FAST, lock_wait_s=0.1)), dest, audience_id)
    assert busy.value.defer_s == FAST.lock_ttl_s and fakes.webhook.requests == []
    fakes.webhook.latency_s = 0.2
    both = await asyncio.gather(*(sync_destination(ctx, dest, audience_id) for _ in range(2)))
    assert sorted(r["added"] for r in both) == [0, 3] and fakes.webhook.max_in_flight == 1
