"""Cache fills for the Profile API: how a document missing from the cache is read from ClickHouse
without letting misses hurt hits.

- Single flight: concurrent requests for the same identifier share one read (per web process).
- Bounded: at most `concurrency` reads run at once, in this module's own threads, so a backlog of
  misses never occupies the default executor that token checks and other routes use; a hit (one
  Redis round trip on the event loop) never waits for them.
- Shed, not queued forever: with `max_pending` fills already started or waiting, a new miss is
  refused at once (Busy → 503 with Retry-After), and a request gives up after `wait_s`. A read
  already running still completes and fills the cache for the next request; a fill still queued
  when all its requests gave up is dropped without reading (under overload, no work for nobody).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from activation.identity.identifiers import Identifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filled:
    profile_id: str
    body: bytes  # the rendered document, as served and cached


@dataclass(frozen=True)
class FillLimits:
    # reads in ClickHouse at once (per web process), each on one thread there (documents.py: max_threads
    # 1). A miss is now one primary-key read (~10 ms); with 1 at a time, a read held up by the store's
    # background work delayed every miss queued behind it. Profile bench, 500 req/s with 10 % misses,
    # one session on this 2-core machine: p99 of all requests 27.8-73.4 ms at 1 (5 runs) and
    # 17.8-45.8 ms at 4 (4 runs), hits' p99 ≤ 13 ms either way.
    concurrency: int = 4
    # fills started or waiting; a new miss beyond them is refused at once: the queue stays short
    # (16 reads of ~20 ms on an idle store wait well under a second; a saturated store sheds instead)
    max_pending: int = 16
    wait_s: float = 2.0  # how long one request waits for its fill


DEFAULT_LIMITS = FillLimits()
# blocking, runs in the fill threads: (identifier, cache generation) -> the document or None
Read = Callable[[Identifier, int], Filled | None]
Store = Callable[[Identifier, Filled], Awaitable[None]]  # e.g. the Redis cache's put
Generation = Callable[[], Awaitable[int]]  # the cache's generation, read before each fill


class Busy(Exception):
    """Too many fills pending, or this one did not finish within wait_s: answer 503, try later."""


class Fills:
    def __init__(
        self,
        read: Read,
        store: Store | None,
        limits: FillLimits = DEFAULT_LIMITS,
        generation: Generation | None = None,
    ) -> None:
        self.read, self.store, self.limits, self.generation = read, store, limits, generation
        self._gate = asyncio.Semaphore(limits.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=limits.concurrency, thread_name_prefix="profile-fill")
        self._pending: dict[Identifier, asyncio.Task[Filled | None]] = {}
        self._waiting: dict[Identifier, int] = {}  # requests waiting for each pending fill

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def get(self, identifier: Identifier) -> Filled | None:
        """The document read now (None: no such profile), shared with concurrent requests for it."""
        task = self._pending.get(identifier)
        if task is None or task.done():  # done: abandoned before it read, or its callback is due
            if len(self._pending) >= self.limits.max_pending:
                raise Busy(f"{len(self._pending)} profile reads pending")
            task = asyncio.create_task(self._fill(identifier))
            self._pending[identifier] = task
            task.add_done_callback(lambda done: self._done(identifier, done))
        self._waiting[identifier] = self._waiting.get(identifier, 0) + 1
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.limits.wait_s)
        except TimeoutError as exc:
            raise Busy(f"profile read not done within {self.limits.wait_s} s") from exc
        finally:
            self._waiting[identifier] -= 1
            if not self._waiting[identifier]:
                del self._waiting[identifier]

    def _done(self, identifier: Identifier, task: asyncio.Task[Filled | None]) -> None:
        if self._pending.get(identifier) is task:
            del self._pending[identifier]
        if not task.cancelled() and task.exception() is not None:  # retrieved here: waiters may be gone
            log.warning("profile read for %s failed: %r", identifier.type, task.exception())

    async def _fill(self, identifier: Identifier) -> Filled | None:
        async with self._gate:
            if identifier not in self._waiting:  # every request gave up while it queued: skip the read
                return None
            generation = await self.generation() if self.generation is not None else 0
            filled = await asyncio.get_running_loop().run_in_executor(
                self._pool, self.read, identifier, generation
            )
        if filled is not None and self.store is not None:
            await self.store(identifier, filled)
        return filled

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
