"""Sources as the collector sees them: a cache of the `sources` table keyed by write key.

The tracking hot path never waits on a query for a known key. Changes reach every collector
process through Redis: whoever writes a source publishes on CHANGES_CHANNEL (the composition root
wires that into the admin's source store), and each cache re-reads the (small) table when a message
arrives — rotation and disabling take effect everywhere within milliseconds. A periodic re-read every
REFRESH_S is the safety net for a missed message (Redis restart). An unknown key may be a source created
a moment ago by a writer that did not publish: it gets one direct lookup, negatively cached per key
and capped at LOOKUPS_PER_S for the whole process, so a flood of random keys cannot become a flood of
ClickHouse queries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from collector.store import EventStore, StoreUnavailable

log = logging.getLogger("magpie.sources")
CHANGES_CHANNEL = "magpie:sources:changed"
REFRESH_S = 30.0
NEGATIVE_TTL_S = 2.0
LOOKUPS_PER_S = 20
RESUBSCRIBE_S = 1.0
_COLUMNS = (
    "id, write_key, allowed_origins, ip_policy, rate_limit_per_s, retention_days, enabled,"
    " required_consent_category"
)
_LATEST = f"SELECT {_COLUMNS} FROM (SELECT * FROM sources FINAL) WHERE deleted = 0"


@dataclass(frozen=True)
class Source:
    id: str
    write_key: str
    allowed_origins: tuple[str, ...] = ()
    ip_policy: str = "keep"
    rate_limit_per_s: int = 0
    retention_days: int = 0
    enabled: bool = True
    required_consent_category: str = ""  # events without this category granted are dropped

    def allows_origin(self, origin: str) -> bool:
        return not self.allowed_origins or "*" in self.allowed_origins or origin in self.allowed_origins


def _source(row: tuple[object, ...]) -> Source:
    id_, key, origins, policy, rate, retention, enabled, consent = row
    kept: tuple[str, ...] = tuple(origins)  # type: ignore[arg-type]
    limits = int(rate), int(retention)  # type: ignore[call-overload]
    return Source(str(id_), str(key), kept, str(policy), *limits, bool(enabled), str(consent))


class SourceCache:
    def __init__(self, store: EventStore, redis: aioredis.Redis | None = None) -> None:
        self.store, self.redis = store, redis
        self.by_key: dict[str, Source] = {}
        self._missing: dict[str, float] = {}
        self._lookups_window = (0.0, 0)  # (second started, direct lookups in it)
        self.subscribed = asyncio.Event()

    async def refresh(self) -> None:
        rows = await self.store.query(_LATEST)
        self.by_key = {s.write_key: s for s in map(_source, rows)}

    async def run(self) -> None:
        """Periodic re-read (safety net) alongside the Redis change listener."""
        listener = asyncio.create_task(self._listen()) if self.redis is not None else None
        try:
            while True:
                await asyncio.sleep(REFRESH_S)
                await self._refresh_logged()
        finally:
            if listener is not None:
                listener.cancel()

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except StoreUnavailable as exc:  # keep serving the last known sources
            log.warning("source refresh failed: %s", exc)

    async def _listen(self) -> None:
        assert self.redis is not None
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANGES_CHANNEL)
                    await self._refresh_logged()  # whatever changed while unsubscribed
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._refresh_logged()
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("source change listener: %s; resubscribing", exc)
                await asyncio.sleep(RESUBSCRIBE_S)

    def _may_look_up(self, write_key: str) -> bool:
        now = time.monotonic()
        missed = self._missing.get(write_key)
        if missed is not None and now - missed < NEGATIVE_TTL_S:
            return False
        started, count = self._lookups_window
        if now - started >= 1.0:
            started, count = now, 0
        if count >= LOOKUPS_PER_S:
            return False
        self._lookups_window = (started, count + 1)
        return True

    async def lookup(self, write_key: str) -> Source | None:
        source = self.by_key.get(write_key)
        if source is not None:
            return source if source.enabled else None
        if not write_key or not self._may_look_up(write_key):
            return None
        # StoreUnavailable propagates: an unknown key while ClickHouse is down is a 503, never a 401.
        rows = await self.store.query(_LATEST + " AND write_key = {k:String}", {"k": write_key})
        if not rows:
            if len(self._missing) > 10_000:
                self._missing.clear()
            self._missing[write_key] = time.monotonic()
            return None
        source = _source(rows[0])
        self.by_key[write_key] = source
        return source if source.enabled else None
