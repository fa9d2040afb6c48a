"""The forwarding queue of one destination (a Redis list, oldest first) and the delivery counters.

One list per destination keeps every event in arrival order, so events of a person leave in the
order they were stored; only the destination's delivery job (holding its lock) removes from the head,
and only after the platform answered, so a crash re-sends (at least once) and never loses.
Counters per connection live in a hash: delivered, failed (events in failed attempts, later retried),
dead_lettered, skipped (not applicable to the platform), filtered (consent), and the newest lag.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from activation.destinations.events import OutboundEvent

PREFIX = "magpie:fwd:"
COUNTERS = ("delivered", "failed", "dead_lettered", "skipped", "filtered")


def queue_key(destination_id: str) -> str:
    return f"{PREFIX}q:{destination_id}"


def pause_key(destination_id: str) -> str:
    return f"{PREFIX}pause:{destination_id}"


def stats_key(connection_id: str) -> str:
    return f"{PREFIX}stats:{connection_id}"


def lock_name(destination_id: str) -> str:
    """The DestinationLock id of a destination's event delivery (separate from its audience syncs)."""
    return f"events:{destination_id}"


def encode(e: OutboundEvent) -> bytes:
    return orjson.dumps(
        {"m": e.message_id, "p": e.person, "c": e.connection_id, "t": e.inserted_at_ms, "e": e.event}
    )


def decode(raw: bytes | str) -> OutboundEvent:
    doc = orjson.loads(raw)
    return OutboundEvent(doc["m"], doc["p"], doc["e"], doc.get("c", ""), int(doc.get("t", 0)))


async def push(
    redis: Any, destination_id: str, events: Sequence[OutboundEvent], cap: int
) -> list[OutboundEvent]:
    """Append events; returns those refused because the queue is full (to be dead-lettered)."""
    room = max(0, cap - int(await redis.llen(queue_key(destination_id))))
    if room and events:
        await redis.rpush(queue_key(destination_id), *(encode(e) for e in events[:room]))
    return list(events[room:])


async def peek(redis: Any, destination_id: str, n: int) -> list[OutboundEvent]:
    return [decode(raw) for raw in await redis.lrange(queue_key(destination_id), 0, n - 1)]


async def drop_head(redis: Any, destination_id: str, n: int) -> None:
    if n > 0:
        await redis.ltrim(queue_key(destination_id), n, -1)


async def length(redis: Any, destination_id: str) -> int:
    return int(await redis.llen(queue_key(destination_id)))


async def paused_for_s(redis: Any, destination_id: str) -> float:
    ttl = int(await redis.pttl(pause_key(destination_id)))
    return ttl / 1000 if ttl > 0 else 0.0


async def pause(redis: Any, destination_id: str, seconds: float) -> None:
    await redis.set(pause_key(destination_id), "1", px=max(1, int(seconds * 1000)))


async def count(redis: Any, name: str, events: Sequence[OutboundEvent]) -> None:
    """Add each event to its connection's `name` counter; `delivered` also records the lag."""
    per = Counter(e.connection_id for e in events)
    if not per:
        return
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for connection_id, n in per.items():
            pipe.hincrby(stats_key(connection_id), name, n)
        if name == "delivered":
            newest = max(
                (e for e in events if e.inserted_at_ms), key=lambda e: e.inserted_at_ms, default=None
            )
            if newest is not None:
                lag = {"lag_ms": max(0, now_ms - newest.inserted_at_ms), "last_delivered_at_ms": now_ms}
                pipe.hset(stats_key(newest.connection_id), mapping=lag)
        await pipe.execute()


async def bump(redis: Any, name: str, per_connection: dict[str, int]) -> None:
    if per_connection:
        async with redis.pipeline(transaction=False) as pipe:
            for connection_id, n in per_connection.items():
                pipe.hincrby(stats_key(connection_id), name, n)
            await pipe.execute()


async def stats(redis: Any, connection_id: str, destination_id: str) -> dict[str, Any]:
    raw = await redis.hgetall(stats_key(connection_id))
    values = {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in raw.items()}
    out: dict[str, Any] = {name: values.get(name, 0) for name in COUNTERS}
    out["lag_ms"] = values.get("lag_ms")
    last = values.get("last_delivered_at_ms")
    out["last_delivered_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last / 1000)) if last else None
    out["pending"] = await length(redis, destination_id)
    out["paused_for_s"] = await paused_for_s(redis, destination_id)
    return out
