"""activation.locks against a real Redis: a short TTL renewed while held, freed soon after a holder dies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import redis.asyncio as aioredis

from activation.locks import held

KEY = "magpie:test:lock"


async def test_a_held_lock_outlives_its_ttl_while_the_holder_lives(redis: aioredis.Redis) -> None:
    async with held(redis, KEY, ttl_s=1.0) as acquired:
        assert acquired
        await asyncio.sleep(2.5)  # 2.5 TTLs: only the renewals keep it
        assert 0 < await redis.pttl(KEY) <= 1000
        async with held(redis, KEY) as second:
            assert not second  # wait_s=0: taken, answer at once
    assert await redis.exists(KEY) == 0  # released on exit


async def test_a_waiter_gets_the_lock_once_it_is_released(redis: aioredis.Redis) -> None:
    async def hold_briefly() -> None:
        async with held(redis, KEY):
            await asyncio.sleep(0.3)

    holder = asyncio.create_task(hold_briefly())
    await asyncio.sleep(0.05)
    async with held(redis, KEY, wait_s=5) as acquired:
        assert acquired
    await holder


async def test_a_killed_holders_lock_is_free_within_the_ttl(redis_server: str, redis: aioredis.Redis) -> None:
    """The old 900 s TTL without renewal stalled every stitch for 15 min after a worker was kill -9ed."""
    holder = (
        "import asyncio, os, redis.asyncio as r\n"
        "from activation.locks import held\n"
        "async def main():\n"
        f"    async with held(r.Redis(unix_socket_path={redis_server!r}), {KEY!r}, ttl_s=1.0) as got:\n"
        "        assert got\n"
        "        print('held', flush=True)\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline().strip() == b"held"
    await asyncio.sleep(1.5)  # renewed past its TTL while alive
    assert await redis.exists(KEY) == 1
    process.kill()
    process.wait()
    killed = time.monotonic()
    async with held(redis, KEY, wait_s=10) as acquired:
        assert acquired
        assert time.monotonic() - killed < 2.0
