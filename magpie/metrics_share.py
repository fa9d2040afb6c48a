"""One /metrics for the whole deployment: every process publishes a snapshot of its counters to Redis
each second (a hash field named after the process: `web-0`, `worker`, or host:pid in server mode), and
/metrics on any web process answers the sum over every process heard from within STALE_S.

Behind one shared port a scrape reaches a random web process; without this it would see only that
process's counters. A restarted process starts its counters from zero again, which Prometheus reads as
a counter reset, as it would for a single process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from collector.metrics import Metrics

log = logging.getLogger("magpie.metrics")
KEY = "magpie:metrics"
INTERVAL_S = 1.0
STALE_S = 60.0


def default_process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def snapshot(metrics: Metrics) -> dict[str, Any]:
    return {
        "at": time.time(),
        "counters": {n: [[list(k), v] for k, v in s.items()] for n, s in metrics.counters.items()},
        "gauges": {name: read() for name, read in metrics.gauges.items()},
        "flush": [metrics.flush_seconds_sum, metrics.flush_count],
    }


def merge(snapshots: list[dict[str, Any]]) -> Metrics:
    total = Metrics()
    gauges: dict[str, float] = {}
    for snap in snapshots:
        for name, series in snap["counters"].items():
            for labels, value in series:
                total.inc(name, amount=value, **dict(labels))
        for name, value in snap["gauges"].items():
            gauges[name] = gauges.get(name, 0.0) + float(value)
        total.flush_seconds_sum += snap["flush"][0]
        total.flush_count += int(snap["flush"][1])
    for name, value in gauges.items():
        total.gauge(name, _constant(value))
    return total


def _constant(value: float) -> Callable[[], float]:
    return lambda: value


class SharedMetrics:
    def __init__(self, metrics: Metrics, redis: aioredis.Redis, name: str) -> None:
        self.metrics, self.redis, self.name = metrics, redis, name

    async def run(self) -> None:
        while True:
            try:
                await self.publish()
            except (RedisError, OSError) as exc:
                log.debug("metrics snapshot not published: %s", exc)
            await asyncio.sleep(INTERVAL_S)

    async def publish(self) -> None:
        await self.redis.hset(KEY, self.name, orjson.dumps(snapshot(self.metrics)).decode())  # type: ignore[misc]

    async def render(self) -> str:
        """This process's live counters plus every other fresh process's last snapshot."""
        mine = snapshot(self.metrics)
        try:
            raw: dict[bytes, bytes] = await self.redis.hgetall(KEY)  # type: ignore[misc]
        except (RedisError, OSError):
            return self.metrics.render()
        now = time.time()
        others = [orjson.loads(v) for k, v in raw.items() if k.decode() != self.name]
        fresh = [s for s in others if now - float(s["at"]) < STALE_S]
        return merge([mine, *fresh]).render()
