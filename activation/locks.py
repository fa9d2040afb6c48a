"""Redis locks that outlive no process: a token-owned key with a short TTL, renewed while held.

A lock with a long TTL that its holder never renews is the wrong trade both ways: a run longer than
the TTL loses its lock mid-way, and a worker killed while holding it (kill -9, OOM, a lost machine)
stalls everyone behind it for the whole TTL (the stitch lock's old 900 s stalled stitching for a
quarter of an hour). Here the TTL is short (`ttl_s`, 30 s by default) and a keepalive task extends it
every third of that while the holder lives (blocking work runs in threads, so the event loop is free
to renew); release deletes the key only if this holder still owns it. A dead holder's lock is free
within `ttl_s`.

    async with RenewedLock(redis, "magpie:x:lock", wait_s=1):   # raises LockBusy after wait_s
        ...
    async with held(redis, "magpie:x:lock") as acquired:        # the same, as a bool
        if not acquired:
            return
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

TTL_S = 30.0
log = logging.getLogger(__name__)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2])"
    " end return 0"
)


class LockBusy(Exception):
    """Someone else holds the lock (and kept it past the wait)."""


class LockNotAcquired(RuntimeError):
    """A lock its caller must have stayed taken past the wait (the job is retried)."""


class RenewedLock:
    def __init__(self, redis: Any, key: str, *, ttl_s: float = TTL_S, wait_s: float = 0) -> None:
        self.redis, self.key, self.wait_s = redis, key, wait_s
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self.token = secrets.token_hex(16)
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RenewedLock:
        deadline = time.monotonic() + self.wait_s
        while not await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            if time.monotonic() >= deadline:
                raise LockBusy(f"{self.key} is held by another worker")
            await asyncio.sleep(min(0.2, self.wait_s / 10 or 0.01))
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            if not await self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
                log.error("lock %s was lost while held (not renewed within %d ms)", self.key, self.ttl_ms)
                return

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await asyncio.shield(self.redis.eval(_RELEASE, 1, self.key, self.token))


@contextlib.asynccontextmanager
async def held(redis: Any, key: str, *, wait_s: float = 0, ttl_s: float = TTL_S) -> AsyncIterator[bool]:
    """Hold `key` for the body, waiting up to `wait_s` for it (0: not at all); yields whether it was got."""
    lock = RenewedLock(redis, key, ttl_s=ttl_s, wait_s=wait_s)
    try:
        await lock.__aenter__()
    except LockBusy:
        yield False
        return
    try:
        yield True
    finally:
        await lock.__aexit__(None, None, None)
