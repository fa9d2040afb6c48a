"""Moves durable spool records into ClickHouse, exactly once.

Loop: read a chunk of committed records → record the intent (range + token) → move records that
cannot be decoded to the quarantine file → claim the messageIds in Redis (dropping duplicates) →
insert events and rejected rows with deduplication tokens derived from the intent → record the
new position → delete consumed segments. A token is derived from the spool's random id and the
chunk's range, so it is unique to this spool directory's lifetime.
If ClickHouse refuses some rows' data (`RowsRejected`: a parse, type, range or constraint error, the
same every time), the block is split in halves until each refused row stands alone; the others are
stored, each refused event becomes a `rejected_events` row (reason `store_rejected`, ClickHouse's
message) and its record is quarantined; the split is a function of the chunk, so a replay derives
the same blocks and tokens. (One chunk is one INSERT block, at most 20 k rows and 48 MiB, under
ClickHouse's squashing thresholds, so a refused insert wrote nothing.)
If ClickHouse or Redis is down the loop backs off and retries the same intent; the spool keeps
absorbing new events meanwhile (up to its byte limit). Any other error stops `Writer.run`;
`WriterSupervisor` logs it, reports not ready, and restarts a fresh writer from the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from collector.checkpoint import Checkpoint, Intent, load_checkpoint, save_checkpoint
from collector.dedupe import claim
from collector.ingest import MAX_REJECTED_PAYLOAD
from collector.metrics import Metrics
from collector.quarantine import quarantine
from collector.records import EVENT, REJECTED, CorruptRecord, SpoolRecord, decode
from collector.spool import Record, Spool
from collector.store import EventStore, RowsRejected, StoreUnavailable
from collector.timestamps import iso

log = logging.getLogger("magpie.writer")

# The store is its own process, so a chunk is bounded only by memory and the size of one INSERT.
# Only ever raise these: a replayed intent is re-read with the current limits (see `_records`).
CHUNK_MAX_RECORDS = 20_000
CHUNK_MAX_BYTES = 48 << 20
RETRY_MAX_S = 5.0
# Each INSERT has a fixed cost in the store (a new part, and one per materialized view) that dwarfs
# its per-row cost for small blocks. After a write that took d seconds the writer gathers for at
# least GATHER_PER_WRITE × d, so the store spends at most 1 / (1 + GATHER_PER_WRITE) of its time on
# inserts and blocks grow with the load instead of the insert rate (ClickHouse: about one INSERT per
# second per table). At low load a write is quick and the flush interval rules.
GATHER_PER_WRITE = 2.0
STORE_REJECTED = "store_rejected"  # rejected_events.reason of a row ClickHouse refused at insert
GATHER_MAX_S = 5.0  # however slow the store gets, a chunk is gathered for at most this long


class Writer:
    def __init__(
        self, spool: Spool, store: EventStore, redis: aioredis.Redis, metrics: Metrics, interval_s: float
    ) -> None:
        self.spool, self.store, self.redis, self.metrics = spool, store, redis, metrics
        self.interval_s = interval_s
        self.gather_s = interval_s  # how long to gather before the next chunk (see GATHER_PER_WRITE)
        self.path = spool.dir / "checkpoint.json"
        self.checkpoint = load_checkpoint(self.path, self.spool.consumed)
        self.spool.mark_consumed(self.checkpoint.position)
        self._stopping = False

    async def run(self) -> None:
        """Drain forever; returns after `stop()` once everything committed is written."""
        backoff = 0.1
        while True:
            try:
                moved = await self.drain_once()
                backoff = 0.1
            except (StoreUnavailable, RedisError, OSError) as exc:
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
        await asyncio.sleep(self.gather_s)  # gather a chunk: about one INSERT per interval

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
        await self._write(intent, await self._decode(records))
        took_s = time.perf_counter() - started
        self.metrics.observe_flush(took_s)
        self.gather_s = max(self.interval_s, min(GATHER_PER_WRITE * took_s, GATHER_MAX_S))
        await self._save(Checkpoint(intent.end))
        self.spool.mark_consumed(intent.end)
        return len(records)

    def _intent(self, records: list[Record]) -> Intent:
        start, end = records[0].position, records[-1].end
        key = f"{self.spool.id}:{start.segment}:{start.offset}:{end.segment}:{end.offset}"
        token = hashlib.sha256(key.encode()).hexdigest()[:32]
        return Intent(self.checkpoint.position, end, token)

    def _records(self, intent: Intent) -> list[Record]:
        # Committed records never change, so the same limits from the same start give the same chunk.
        records = self.spool.read(intent.start, CHUNK_MAX_RECORDS, CHUNK_MAX_BYTES)
        return [r for r in records if r.end <= intent.end]

    async def _decode(self, records: list[Record]) -> list[tuple[Record, SpoolRecord]]:
        """Decoded records; one that cannot be decoded is quarantined and skipped, never retried."""
        items = []
        for record in records:
            try:
                items.append((record, decode(record.payload)))
            except CorruptRecord as exc:
                await self._quarantine(record)
                log.error("writer: quarantined the undecodable spool record at %s: %s", record.position, exc)
        return items

    async def _quarantine(self, record: Record) -> None:
        await asyncio.to_thread(quarantine, self.spool.dir, record.position, record.payload)
        self.metrics.inc("magpie_spool_records_quarantined_total")

    async def _write(self, intent: Intent, items: list[tuple[Record, SpoolRecord]]) -> None:
        events = [i for i in items if i[1].kind == EVENT]
        owned = await claim(self.redis, [(e.source_id, e.message_id, e.ingest_id) for _, e in events])
        fresh = [e for e, mine in zip(events, owned, strict=True) if mine]
        repeated = Counter(e.source_id for (_, e), mine in zip(events, owned, strict=True) if not mine)
        for source_id, count in repeated.items():
            self.metrics.inc("magpie_events_deduplicated_total", source_id, count)
        rejected = [i for i in items if i[1].kind != EVENT]
        refused = await self._insert("events", fresh, intent.token + ":e")
        refusals = [(record, store_rejection(item, reason)) for (record, item), reason in refused]
        for (record, _), _reason in refused:
            await self._quarantine(record)
        refused_rows = await self._insert("rejected_events", rejected + refusals, intent.token + ":r")
        for (record, _), reason in refused_rows:
            await self._quarantine(record)
            log.error("writer: ClickHouse refused a rejected_events row (%s); quarantined", reason)
        taken = Counter(i.source_id for (_, i), _ in refused)
        for source_id, count in Counter(e.source_id for _, e in fresh).items():
            if count - taken[source_id]:
                self.metrics.inc("magpie_events_stored_total", source_id, count - taken[source_id])
        for source_id, count in taken.items():
            self.metrics.inc("magpie_events_store_rejected_total", source_id, count)

    async def _insert(
        self, table: str, items: list[tuple[Record, SpoolRecord]], token: str
    ) -> list[tuple[tuple[Record, SpoolRecord], str]]:
        """Insert the rows as one block; the items ClickHouse refuses (each isolated by halving the
        block, tokens derived per half), with ClickHouse's reason."""
        try:
            await self.store.insert_rows(table, [item.row for _, item in items], token)
            return []
        except RowsRejected as exc:
            if len(items) == 1:
                log.error("writer: ClickHouse refused one %s row: %s", table, exc)
                return [(items[0], exc.reason)]
        half = len(items) // 2
        first = await self._insert(table, items[:half], token + ".0")
        return first + await self._insert(table, items[half:], token + ".1")

    async def _save(self, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(save_checkpoint, self.path, checkpoint)  # fsyncs stay off the event loop
        self.checkpoint = checkpoint


def store_rejection(item: SpoolRecord, reason: str) -> SpoolRecord:
    """The rejected_events record of an event row ClickHouse refused: its raw row as the payload."""
    received_at = iso(datetime.now(UTC))  # the writer's clock: the refused row's own may be the fault
    row = {
        "source_id": item.source_id,
        "received_at": received_at,
        "reason": STORE_REJECTED,
        "detail": reason,
        "batch_index": -1,  # the request is long answered; its index is not in the row
        "message_id": item.message_id,
        "payload": item.row[:MAX_REJECTED_PAYLOAD].decode("utf-8", errors="replace"),
        "ingest_id": item.ingest_id,
    }
    return SpoolRecord(REJECTED, item.source_id, item.message_id, item.ingest_id, orjson.dumps(row))


RESTART_MIN_S = 0.1
RESTART_MAX_S = 30.0
STEADY_RUN_S = 60.0  # a writer that ran this long before failing restarts without waiting long


class WriterSupervisor:
    """Keeps one writer running: if `Writer.run` stops on any error, log it, report not ready, wait
    (doubling, up to RESTART_MAX_S) and start a fresh writer from the durable checkpoint."""

    def __init__(self, make: Callable[[], Writer], metrics: Metrics) -> None:
        self._make, self.metrics = make, metrics
        self.writer: Writer | None = make()  # a spool or checkpoint that cannot be opened fails start-up
        self.down = False  # True from a writer's failure until its replacement starts
        self._stopping = False
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Returns once a writer has drained after `stop()`; cancel to abandon."""
        backoff = RESTART_MIN_S
        while True:
            started = time.monotonic()
            try:
                await self._run_writer()
                return
            except Exception:  # any stop but a cancel: the writer must come back
                self.down, self.writer = True, None
                if time.monotonic() - started > STEADY_RUN_S:
                    backoff = RESTART_MIN_S
                self.metrics.inc("magpie_writer_restarts_total")
                log.exception("writer stopped on an unexpected error; restarting in %.1fs", backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
            backoff = min(backoff * 2, RESTART_MAX_S)

    async def _run_writer(self) -> None:
        if self.writer is None:
            self.writer = self._make()
        if self._stopping:
            self.writer.stop()
        self.down = False
        await self.writer.run()

    def stop(self) -> None:
        """Ask the writer to drain what is committed and return (a waiting restart happens now)."""
        self._stopping = True
        self._wake.set()
        if self.writer is not None:
            self.writer.stop()
