"""Erasing a person from Redis: every key whose name or value holds one of their identifiers or
profile ids (profile cache entries of every generation, queued job payloads, failed-job records).

The keyspace is walked with SCAN, so it works on whatever keys other parts create. A key whose
name matches is deleted; in a collection only the matching members go (a list keeps its other
entries). Needles shorter than MIN_SUBSTRING (a user id like "42") match only a whole key segment
or a whole value, never a substring of unrelated keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MIN_SUBSTRING = 6
_SEGMENT_SEPARATORS = b":"


class Needles:
    def __init__(self, values: Iterable[str]) -> None:
        encoded = {v.encode() for v in values if v}
        self.long = [v for v in encoded if len(v) >= MIN_SUBSTRING]
        self.short = {v for v in encoded if len(v) < MIN_SUBSTRING}

    def found_in(self, data: bytes) -> bool:
        lowered = data.lower()
        if any(n.lower() in lowered for n in self.long):
            return True
        return data in self.short or any(s in self.short for s in data.split(_SEGMENT_SEPARATORS))


async def scrub(redis: Any, values: Iterable[str]) -> int:
    """Delete every key or member holding one of `values`; returns how many keys were touched."""
    needles = Needles(values)
    touched = 0
    async for key in redis.scan_iter(count=1000):
        touched += await _scrub_key(redis, key, needles)
    return touched


async def _scrub_key(redis: Any, key: bytes, needles: Needles) -> int:
    if needles.found_in(key):
        return int(await redis.delete(key))
    kind = (await redis.type(key)).decode()
    if kind == "string":
        value = await redis.get(key)
        return int(await redis.delete(key)) if value is not None and needles.found_in(value) else 0
    hits = await _hits(redis, key, kind, needles)
    if not hits:
        return 0
    if kind == "list":
        for hit in hits:
            await redis.lrem(key, 0, hit)
    else:
        remove = {"hash": redis.hdel, "set": redis.srem, "zset": redis.zrem}[kind]
        await remove(key, *hits)
    return 1


async def _hits(redis: Any, key: bytes, kind: str, needles: Needles) -> list[bytes]:
    """The members of a collection that hold a needle (hash fields by their name or value)."""
    if kind == "hash":
        fields = await redis.hgetall(key)
        return [f for f, v in fields.items() if needles.found_in(f) or needles.found_in(v)]
    if kind == "list":
        members = await redis.lrange(key, 0, -1)
    elif kind == "set":
        members = await redis.smembers(key)
    elif kind == "zset":
        members = await redis.zrange(key, 0, -1)
    else:  # streams and modules' types are not used by Magpie
        return []
    return sorted({m for m in members if needles.found_in(m)})
