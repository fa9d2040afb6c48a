"""Moves durable spool records into ClickHouse, exactly once.

Loop: read a chunk of committed records → record the intent (range + token) → claim the
messageIds in Redis (dropping duplicates) → insert events and rejected rows with deduplication
tokens derived from the intent → record the new position → delete consumed segments.
If ClickHouse or Redis is down the loop backs off and retries the same intent; the spool keeps
absorbing new events meanwhile (up to its byte limit).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from collector.checkpoint import Checkpoint, Intent, load_checkpoint, save_checkpoint
from collector.dedupe import claim
from collector.metrics import Metrics
from collector.records import EVENT, SpoolRecord, decode
from collector.spool import Record, Spool
from collector.store import EventStore, StoreUnavailable

log = logging.getLogger("magpie.writer")

CHUNK_MAX_RECORDS = 5_000  # bounded: the embedded chdb holds the GIL while it inserts
CHUNK_MAX_BYTES = 16 << 20
RETRY_MAX_S = 5.0


class Writer:
    def __init__(
        self, spool: Spool, store: EventStore, redis: aioredis.Redis, metrics: Metrics, interval_s: float
    ) -> None:
        self.spool, self.store, self.redis, self.metrics = spool, store, redis, metrics
        self.interval_s = interval_s
        self.path = spool.dir / "checkpoint.json"
        self.checkpoint = load_checkpoint(self.path, self.spool.consumed)
        self.spool.mark_consumed(self.checkpoint.position)
        self._stopping = False
        self.healthy = True

    async def run(self) -> None:
        """Drain forever; returns after `stop()` once everything committed is written."""
        backoff = 0.1
        while True:
            try:
                moved = await self.drain_once()
                backoff, self.healthy = 0.1, True
            except (StoreUnavailable, RedisError, OSError) as exc:
                self.healthy = False
                self.metrics.inc("magpie_store_write_failures_total")
                log.warning("writer: %s; retrying in %.1fs", exc, backoff)
                if self._stopping and backoff >= RETRY_MAX_S:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
                continue
            if moved == 0 and self._stopping and self.spool.committed <= self.checkpoint.position:
                return
            if moved < CHUNK_MAX_RECORDS:
                await self._wait_for_data()

    async def _wait_for_data(self) -> None:
        self.spool.new_data.clear()
        if self._stopping:
            await asyncio.sleep(0.01)
            return
        try:
            await asyncio.wait_for(self.spool.new_data.wait(), timeout=1.0)
        except TimeoutError:
            return
        await asyncio.sleep(self.interval_s)  # gather a chunk: about one INSERT per interval

    def stop(self) -> None:
        self._stopping = True
        self.spool.new_data.set()

    async def drain_once(self) -> int:
        if self.checkpoint.intent is not None:  # replay what a crash interrupted, exactly
            intent, records = self.checkpoint.intent, self._records(self.checkpoint.intent)
        else:
            records = self.spool.read(self.checkpoint.position, CHUNK_MAX_RECORDS, CHUNK_MAX_BYTES)
            if not records:
                return 0
            intent = self._intent(records)
            await self._save(Checkpoint(self.checkpoint.position, intent))
        started = time.perf_counter()
        await self._write(intent, [decode(r.payload) for r in records])
        self.metrics.observe_flush(time.perf_counter() - started)
        await self._save(Checkpoint(intent.end))
        self.spool.mark_consumed(intent.end)
        return len(records)

    def _intent(self, records: list[Record]) -> Intent:
        start, end = records[0].position, records[-1].end
        token = hashlib.sha256(f"{self.spool.dir}:{start}:{end}".encode()).hexdigest()[:32]
        return Intent(self.checkpoint.position, end, token)

    def _records(self, intent: Intent) -> list[Record]:
        # Committed records never change, so the same limits from the same start give the same chunk.
        records = self.spool.read(intent.start, CHUNK_MAX_RECORDS, CHUNK_MAX_BYTES)
        return [r for r in records if r.end <= intent.end]

    async def _write(self, intent: Intent, items: list[SpoolRecord]) -> None:
        events = [i for i in items if i.kind == EVENT]
        owned = await claim(self.redis, [(e.source_id, e.message_id, e.ingest_id) for e in events])
        fresh = [e for e, mine in zip(events, owned, strict=True) if mine]
        for event, mine in zip(events, owned, strict=True):
            if not mine:
                self.metrics.inc("magpie_events_deduplicated_total", event.source_id)
        rejected = [i for i in items if i.kind != EVENT]
        await self.store.insert_rows("events", [e.row for e in fresh], intent.token + ":e")
        await self.store.insert_rows("rejected_events", [r.row for r in rejected], intent.token + ":r")
        for event in fresh:
            self.metrics.inc("magpie_events_stored_total", event.source_id)

    async def _save(self, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(save_checkpoint, self.path, checkpoint)  # fsyncs stay off the event loop
        self.checkpoint = checkpoint
