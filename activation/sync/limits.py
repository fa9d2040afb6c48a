"""Per-destination concurrency and rate limits in Redis, shared by every worker process.

`DestinationLock` lets one sync of a destination run at a time (activation.locks: a token-owned key
with a TTL that is renewed while the run lives, so a crashed worker frees it within `ttl_s`).
`RateLimiter` caps a destination's batch sends per second with a one-second window counter.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from activation.locks import LockBusy, RenewedLock

__all__ = ["DestinationLock", "LockBusy", "RateLimiter"]


class DestinationLock(RenewedLock):
    """One sync (or pull, or delivery) of a destination at a time: activation.locks, keyed by it."""

    def __init__(self, redis: Any, destination_id: str, *, ttl_s: float, wait_s: float) -> None:
        super().__init__(redis, f"magpie:sync:lock:{destination_id}", ttl_s=ttl_s, wait_s=wait_s)


class RateLimiter:
    def __init__(self, redis: Any, destination_id: str, per_s: int) -> None:
        self.redis = redis
        self.prefix = f"magpie:sync:rate:{destination_id}:"
        self.per_s = per_s

    async def acquire(self) -> None:
        """Wait until this destination may send another batch."""
        if self.per_s <= 0:
            return
        while True:
            now = time.time()
            key = self.prefix + str(int(now))
            count = await self.redis.incr(key)
            if count == 1:
                await self.redis.expire(key, 2)
            if count <= self.per_s:
                return
            await asyncio.sleep(1.0 - (now % 1.0))
