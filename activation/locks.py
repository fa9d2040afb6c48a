"""Redis locks that outlive no process: a short TTL, renewed while the holder is alive.

A lock with a long TTL (the old 900 s) that its holder never renews is the wrong trade both ways: a run
longer than the TTL loses its lock mid-way, and a worker killed while holding it (kill -9, OOM, a lost
machine) stalls everyone behind it for the whole TTL. Here the TTL is short (`ttl_s`, 30 s by default)
and a keepalive task extends it every third of it while the `async with` body runs (the body's blocking
work runs in a thread, so the event loop is free to renew). A dead holder's lock is free within `ttl_s`.

    async with held(redis, "magpie:x:lock", wait_s=0) as acquired:
        if not acquired:
            return  # someone else runs it
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import LockError

TTL_S = 30.0


class LockNotAcquired(RuntimeError):
    """A lock its caller must have stayed taken past the wait (the job is retried)."""


log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def held(redis: Any, key: str, *, wait_s: float = 0, ttl_s: float = TTL_S) -> AsyncIterator[bool]:
    """Hold `key` for the body, waiting up to `wait_s` for it (0: not at all); yields whether it was got."""
    lock = redis.lock(key, timeout=ttl_s, blocking=wait_s > 0, blocking_timeout=wait_s or None)
    if not await lock.acquire():
        yield False
        return
    keepalive = asyncio.create_task(_renew(lock, key, ttl_s))
    try:
        yield True
    finally:
        keepalive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keepalive
        with contextlib.suppress(LockError):  # expired (the loop was blocked past ttl_s) or taken over
            await lock.release()


async def _renew(lock: Any, key: str, ttl_s: float) -> None:
    while True:
        await asyncio.sleep(ttl_s / 3)
        try:
            await lock.reacquire()
        except LockError:
            log.error("lock %s was lost while held (not renewed within %s s)", key, ttl_s)
            return
