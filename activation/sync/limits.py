"""Per-destination concurrency and rate limits in Redis, shared by every worker process.

`DestinationLock` lets one sync of a destination run at a time (a token-owned key with a TTL that
is renewed while the run lives, so a crashed worker frees it within `ttl_s`). `RateLimiter` caps a
destination's batch sends per second with a one-second window counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from types import TracebackType
from typing import Any

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2])"
    " end return 0"
)


class LockBusy(Exception):
    """Another worker is syncing this destination."""


class DestinationLock:
    def __init__(self, redis: Any, destination_id: str, *, ttl_s: float, wait_s: float) -> None:
        self.redis = redis
        self.key = f"magpie:sync:lock:{destination_id}"
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self.wait_s = wait_s
        self.token = secrets.token_hex(16)
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DestinationLock:
        deadline = time.monotonic() + self.wait_s
        while not await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            if time.monotonic() >= deadline:
                raise LockBusy(f"destination is being synced by another worker ({self.key})")
            await asyncio.sleep(min(0.2, self.wait_s / 10 or 0.01))
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            await self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await asyncio.shield(self.redis.eval(_RELEASE, 1, self.key, self.token))


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
