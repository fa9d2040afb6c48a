"""Catch-up of a connection the reader did not route with before, so that every event stored after a
connection was created reaches it once, even when a reader pass that loaded its routes earlier read
those events, routed them without it, marked them seen and moved the watermark past them.

The reader remembers, in a Redis hash, the connections it routed with. A connection it does not know
(new, or back in the routes after it left them: re-enabled, or its destination re-enabled) gets a
*live floor* — the watermark of the pass that first saw it, plus 1 µs — and, below that floor, a
catch-up: the events with `inserted_at` from its start (its `created_at`, or its newest change if
later: its own or its destination's `updated_at`, so a connection or destination that was disabled
gets nothing of that time) up to the floor are re-read in pages
(`catchup_pages` per pass, `page_events` each) and routed to THAT connection only. The live pass
routes the connection only events at or above its floor, the catch-up only those below: split by a
stored property of the row, each event reaches the connection once, and no other connection is
touched. Where several connections of the source lead to one destination, an event reaches it once:
a catch-up leaves what another of them took live (stored at or after its floor) and, where two
catch-ups overlap, what both would send goes to the lower connection id. The catch-up reads an
event only once it is `overlap_s` old in the store's clock (the live read's own assumption about
late-visible inserts), so it completes about `overlap_s` after it starts. Its events still reach
the destination queue before the connection's live ones: while the catch-up is pending, the live
pass puts the connection's events on a per-connection held list, which the catch-up appends to the
destination's queue as it ends. The connection's events keep their stored order (per person too),
at the cost of holding its first ~`overlap_s` of live events.

Its progress is a per-connection mark in Redis (the floor and the last row routed), so it resumes
across passes and reader jobs; the mark is removed when the catch-up is done or the connection leaves
the routes (disabled, deleted), and the connection is forgotten: if it returns, it is new again.

Decision: a changed filter or mapping of a routed connection takes effect from the pass that loads it,
without a catch-up. The in-flight pass can only have sent with the old filter; re-reading would send
again everything both filters let through (webhooks do not deduplicate), and which of the rest that
pass skipped is not knowable from stored rows. A replay covers that past on purpose.

An empty memory (a new installation, a flushed Redis) is filled with the first pass's routes and no
catch-up: like the watermark, the reader does not forward history it never promised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from activation.connections import queue
from activation.connections.routing import FanOut, Row
from activation.connections.rules import EVENT_COLUMNS, Route
from activation.connections.settings import ForwardSettings
from activation.connections.store import EPOCH
from activation.services import Services

MEMORY_KEY = "magpie:fwd:routed"  # hash: connection id → {"floor": iso} of each routed connection
SEEDED = "~"  # field of MEMORY_KEY once a pass has filled it
_US = timedelta(microseconds=1)
_PAGE = f"""
SELECT {EVENT_COLUMNS} FROM events
WHERE source_id = {{source:String}} AND inserted_at >= {{t:DateTime64(6, 'UTC')}}
  AND inserted_at < {{upto:DateTime64(6, 'UTC')}}
  AND (inserted_at, timestamp, source_id, message_id)
      > ({{t:DateTime64(6, 'UTC')}}, {{ts:DateTime64(3, 'UTC')}}, {{s:String}}, {{m:String}})
ORDER BY inserted_at, timestamp, source_id, message_id LIMIT 1 BY source_id, message_id LIMIT {{n:UInt32}}
"""
Key = tuple[datetime, datetime, str, str]  # (inserted_at, timestamp, source_id, message_id) of the last row
QueueOut = Callable[[FanOut], Awaitable[int]]
"""Queues a fan's events to their destinations and wakes them; returns how many were queued."""


def mark_key(connection_id: str) -> str:
    return f"magpie:fwd:catchup:{connection_id}"


def held_key(connection_id: str) -> str:
    """The connection's live events held while its catch-up is pending (oldest first)."""
    return f"magpie:fwd:held:{connection_id}"


async def hold(services: Services, routes: Sequence[Route], fan: FanOut) -> None:
    """Moves the live events of connections with a pending catch-up from `fan` to their held lists."""
    pending = {route.connection_id for route, _ in await _marks(services.redis, routes)}
    if not pending:
        return
    for destination_id, events in list(fan.out.items()):
        kept = [e for e in events if e.connection_id not in pending]
        for connection_id in sorted({e.connection_id for e in events} & pending):
            mine = [queue.encode(e) for e in events if e.connection_id == connection_id]
            await services.redis.rpush(held_key(connection_id), *mine)
        if kept:
            fan.out[destination_id] = kept
        else:
            del fan.out[destination_id]


async def admit(services: Services, routes: Sequence[Route], watermark: datetime) -> list[Route]:
    """The routes with each connection's live floor; starts the catch-ups of connections this reader
    did not route with before and ends those of connections that left the routes."""
    memory = await _memory(services.redis)
    seeded, updates = SEEDED in memory, {}
    for route in routes:
        if "floor" in memory.get(route.connection_id, {}):
            continue
        floor = watermark + _US if seeded else EPOCH
        start = max(route.since, route.changed_at)
        known = {"floor": floor.isoformat()}
        if seeded and start < floor:
            await _save_mark(services.redis, route.connection_id, floor, (start - _US, EPOCH, "", ""))
            known["from"] = (start - _US).isoformat()  # where its catch-up reads from
        memory[route.connection_id] = updates[route.connection_id] = known
    if not seeded:
        updates[SEEDED] = {}
    if updates:
        await services.redis.hset(MEMORY_KEY, mapping={k: orjson.dumps(v) for k, v in updates.items()})
    current = {r.connection_id for r in routes}
    await _leave(services.redis, [c for c, v in memory.items() if "floor" in v and c not in current])
    return [_floored(r, memory[r.connection_id]) for r in routes]


async def run(services: Services, settings: ForwardSettings, routes: Sequence[Route], out: QueueOut) -> int:
    """Up to `catchup_pages` pages of the pending catch-ups, queued through `out`."""
    marks = await _marks(services.redis, routes)
    if not marks:
        return 0
    now = _utc((await services.db.rows("SELECT now64(6, 'UTC')"))[0][0])
    settled = now - timedelta(seconds=settings.overlap_s)
    queued, pages = 0, settings.catchup_pages
    for route, (floor, key) in marks:
        while pages > 0:
            pages -= 1
            rows = await _page(services, route, min(floor, settled), key, settings.page_events)
            if rows:
                key = _key(rows[-1])
                queued += await out(await _fan(services, route, routes, rows))
                await _save_mark(services.redis, route.connection_id, floor, key)
            if len(rows) < settings.page_events:
                if settled >= floor:  # every event below the floor is visible and routed: done
                    queued += await out(await _released(services, route))
                    await services.redis.delete(mark_key(route.connection_id), held_key(route.connection_id))
                break
    return queued


async def _released(services: Services, route: Route) -> FanOut:
    """The connection's held live events, to be queued after its catch-up's last page."""
    fan = FanOut([], live=True)
    raw = await services.redis.lrange(held_key(route.connection_id), 0, -1)
    if raw:
        fan.out[route.destination_id] = [queue.decode(item) for item in raw]
    return fan


async def _page(services: Services, route: Route, upto: datetime, key: Key, n: int) -> list[Row]:
    t, ts, s, m = key
    params = {"source": route.source_id, "upto": upto, "t": t, "ts": ts, "s": s, "m": m, "n": n}
    return await services.db.dicts(_PAGE, params)


def _key(row: Row) -> Key:
    return _utc(row["inserted_at"]), _utc(row["timestamp"]), row["source_id"], row["message_id"]


async def _fan(services: Services, route: Route, routes: Sequence[Route], rows: list[Row]) -> FanOut:
    """The rows routed to `route` only. The other connections of its source to the same destination
    come first: an event one of them took is not sent there again. One took it live when it was
    stored at or after that one's floor; below, another catch-up takes it when its connection id is
    the lower (a fixed rule both catch-ups apply, so one of them sends it, whichever runs first)."""
    others = [
        r for r in routes
        if (r.destination_id, r.source_id) == (route.destination_id, route.source_id)
        and r.connection_id != route.connection_id
    ]  # fmt: skip

    def takes(other: Route, at: datetime) -> bool:
        if other.connection_id == route.connection_id:
            return True  # the page query bounds the rows
        if at >= other.since:
            return True
        span = other.catchup
        return span is not None and other.connection_id < route.connection_id and span[0] <= at < span[1]

    fan = FanOut([*others, route], live=True, takes=takes)
    await fan.add(services, rows)
    mine = [e for e in fan.out.get(route.destination_id, []) if e.connection_id == route.connection_id]
    fan.out.clear()
    if mine:
        fan.out[route.destination_id] = mine
    mine_filtered = fan.filtered[route.connection_id]
    fan.filtered = Counter({route.connection_id: mine_filtered} if mine_filtered else {})
    return fan


async def _leave(redis: Any, gone: list[str]) -> None:
    """Connections that left the routes: their catch-up ends (events held for them are dropped, as
    a disabled connection gets nothing of its disabled time) and they are forgotten."""
    if gone:
        await redis.delete(*(mark_key(c) for c in gone), *(held_key(c) for c in gone))
        await redis.hdel(MEMORY_KEY, *gone)


async def _memory(redis: Any) -> dict[str, dict[str, Any]]:
    raw = await redis.hgetall(MEMORY_KEY)
    return {_text(k): orjson.loads(v) for k, v in raw.items()}


async def _marks(redis: Any, routes: Sequence[Route]) -> list[tuple[Route, tuple[datetime, Key]]]:
    if not routes:
        return []
    raw = await redis.mget([mark_key(r.connection_id) for r in routes])
    out = []
    for route, value in zip(routes, raw, strict=True):
        if value:
            doc = orjson.loads(value)
            t, ts, s, m = doc["key"]
            out.append((route, (_time(doc["floor"]), (_time(t), _time(ts), s, m))))
    return out


async def _save_mark(redis: Any, connection_id: str, floor: datetime, key: Key) -> None:
    t, ts, s, m = key
    doc = {"floor": floor.isoformat(), "key": [t.isoformat(), ts.isoformat(), s, m]}
    await redis.set(mark_key(connection_id), orjson.dumps(doc))


def _floored(route: Route, known: dict[str, Any]) -> Route:
    floor = _time(known["floor"])
    catchup = (_time(known["from"]), floor) if "from" in known else None
    return replace(route, since=max(floor, route.since), catchup=catchup)


def _time(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
