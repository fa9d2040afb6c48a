"""The forwarding reader: new events from ClickHouse `events` (by `inserted_at` watermark) into the
queue of each destination a connection leads to, then a wake-up for each destination's delivery job.

Incremental like identity stitching (activation/identity/stitching.py): each pass reads rows
inserted after the watermark minus `overlap_s` (an insert can become visible after a later one), and
a Redis sorted set of recently forwarded (source, messageId) keys makes the overlap harmless. The
watermark starts at the store's current time: a new installation does not forward its history (use a
replay for that), and a connection forwards events stored after it was created — also those a pass
that loaded its routes before the connection existed read without it: the pass that first sees a
connection starts its catch-up below the watermark (activation/connections/catchup.py).

`forward_events` is one job that loops for `reader_run_s` (polling every `poll_s`), holding a short
Redis lock it renews (activation.locks), then queues its successor; a cron every few seconds
restarts the chain if a worker died. Only one reader runs at a time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from activation.connections import catchup, letters, queue
from activation.connections.routing import FanOut, Row, active_routes, routes_version
from activation.connections.rules import EVENT_COLUMNS, Route
from activation.connections.settings import FORWARD, ForwardSettings
from activation.connections.store import EPOCH
from activation.locks import held
from activation.services import Services
from activation.services import of as services_of
from activation.sync.limits import DestinationLock

READER_JOB, DELIVER_JOB = "forward_events", "deliver_events"
LOCK_KEY, WATERMARK_KEY, SEEN_KEY = "magpie:fwd:reader", "magpie:fwd:watermark", "magpie:fwd:seen"
LOCK_TTL_S = 5.0  # renewed while the reader runs (activation.locks)
_NEW_EVENTS = f"""
SELECT {EVENT_COLUMNS} FROM events
WHERE inserted_at > {{since:DateTime64(6, 'UTC')}} AND source_id IN {{sources:Array(String)}}
  AND (inserted_at, timestamp, source_id, message_id)
      > ({{t:DateTime64(6, 'UTC')}}, {{ts:DateTime64(3, 'UTC')}}, {{s:String}}, {{m:String}})
ORDER BY inserted_at, timestamp, source_id, message_id LIMIT {{n:UInt32}}
"""


async def forward_events(ctx: dict[str, Any]) -> dict[str, Any]:
    """Job: forward new events for `reader_run_s`, then hand over to the next reader job."""
    services = services_of(ctx)
    result = await run_reader(services, FORWARD)
    if result["status"] == "ok":
        await services.enqueue(READER_JOB, job_id=f"forward:{time.time_ns()}")
    return result


async def run_reader(services: Services, settings: ForwardSettings) -> dict[str, Any]:
    forwarded, passes = 0, 0
    async with held(services.redis, LOCK_KEY, ttl_s=LOCK_TTL_S) as acquired:
        if not acquired:
            return {"status": "busy"}
        deadline = time.monotonic() + settings.reader_run_s
        routes: list[Route] = []
        loaded, version = -1e9, None
        while True:
            now_version = await routes_version(services)
            if time.monotonic() - loaded >= settings.routes_ttl_s or now_version != version:
                version = now_version  # read before the routes: a change during the load reloads again
                routes, loaded = await active_routes(services), time.monotonic()
            forwarded += await forward_once(services, settings, routes)
            passes += 1
            if time.monotonic() >= deadline:
                break
            await services.sleep(settings.poll_s)
    return {"status": "ok", "forwarded": forwarded, "passes": passes}


async def forward_once(services: Services, settings: ForwardSettings, routes: Sequence[Route]) -> int:
    """One pass: read, deduplicate, route, queue, wake; then a step of the pending catch-ups
    (activation.connections.catchup). Returns the number of events queued."""
    mark = await _watermark(services) if routes else EPOCH
    routes = await catchup.admit(services, routes, mark)
    if not routes:
        return 0
    queued = await _forward_new(services, settings, routes, mark)
    return queued + await catchup.run(services, settings, routes, lambda fan: _queue(services, settings, fan))


async def _forward_new(
    services: Services, settings: ForwardSettings, routes: list[Route], mark: datetime
) -> int:
    rows = await _read(services, mark - timedelta(seconds=settings.overlap_s), routes, settings.page_events)
    if not rows:
        return 0
    fresh = await _unseen(services.redis, rows, settings.overlap_s)
    fan = FanOut(routes, live=True)
    await fan.add(services, fresh)
    await catchup.hold(services, routes, fan)  # queued after their catch-up's events, in stored order
    queued = await _queue(services, settings, fan)
    newest = max(_utc(r["inserted_at"]) for r in rows)
    await services.redis.set(WATERMARK_KEY, newest.isoformat())
    return queued


async def _queue(services: Services, settings: ForwardSettings, fan: FanOut) -> int:
    """The fan's events onto their destinations' queues (dead letters when full), then wake-ups."""
    queued = 0
    for destination_id, events in fan.out.items():
        full = await queue.push(services.redis, destination_id, events, settings.max_queue_events)
        await letters.add(services.db, destination_id, [(e, "forwarding queue full") for e in full])
        await queue.count(services.redis, "dead_lettered", full)
        queued += len(events) - len(full)
    await queue.bump(services.redis, "filtered", dict(fan.filtered))
    for destination_id in fan.out:
        await wake(services, destination_id)
    return queued


async def wake(services: Services, destination_id: str) -> bool:
    """Queue a delivery job unless one holds the destination (it drains what arrives) or it is paused."""
    lock = DestinationLock(services.redis, queue.lock_name(destination_id), ttl_s=1, wait_s=0)
    if await services.redis.exists(lock.key) or await queue.paused_for_s(services.redis, destination_id):
        return False
    return bool(
        await services.enqueue(
            DELIVER_JOB, destination_id, job_id=f"deliver:{destination_id}:{time.time_ns()}"
        )
    )


async def _watermark(services: Services) -> datetime:
    raw = await services.redis.get(WATERMARK_KEY)
    if raw:
        return datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else raw)
    now = _utc((await services.db.rows("SELECT now64(6, 'UTC')"))[0][0])
    await services.redis.set(WATERMARK_KEY, now.isoformat())
    return now


async def _read(services: Services, since: datetime, routes: Sequence[Route], page: int) -> list[Row]:
    sources = sorted({r.source_id for r in routes})
    rows: list[Row] = []
    key: tuple[datetime, datetime, str, str] = (since, datetime(1970, 1, 1, tzinfo=UTC), "", "")
    for _ in range(20):  # at most 20 pages per pass; the next pass continues from the watermark
        t, ts, s, m = key
        params = {"since": since, "sources": sources, "t": t, "ts": ts, "s": s, "m": m, "n": page}
        batch = await services.db.dicts(_NEW_EVENTS, params)
        rows += batch
        if len(batch) < page:
            break
        last = batch[-1]
        key = (last["inserted_at"], last["timestamp"], last["source_id"], last["message_id"])
    return rows


async def _unseen(redis: Any, rows: Sequence[Row], overlap_s: float) -> list[Row]:
    """Rows not forwarded by an earlier pass; remembers them for the overlap window."""
    members = [f"{r['source_id']}\x1f{r['message_id']}" for r in rows]
    scores = await redis.zmscore(SEEN_KEY, members)
    fresh, remember, batch_seen = [], {}, set()
    for row, member, score in zip(rows, members, scores, strict=True):
        if score is None and member not in batch_seen:
            batch_seen.add(member)
            fresh.append(row)
            remember[member] = _utc(row["inserted_at"]).timestamp()
    if remember:
        await redis.zadd(SEEN_KEY, remember)
    horizon = max(_utc(r["inserted_at"]).timestamp() for r in rows) - 3 * overlap_s
    await redis.zremrangebyscore(SEEN_KEY, "-inf", horizon)
    return fresh


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
