"""Exactly-once claims on (source, messageId) in Redis, kept for seven days.

The writer claims each event just before inserting it. A claim's value is the event's ingest id
(unique per accepted copy), so a replay of the same spool record finds its own claim and is
inserted again (ClickHouse drops the repeated block by its token), while a second copy of the
same messageId — a client retry, another collector — finds someone else's claim and is dropped.
Claims are made only for events already durable in the spool, so a crash can never leave a
claim without the event that made it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import redis.asyncio as aioredis

WINDOW_S = 7 * 24 * 3600
_PREFIX = b"magpie:dd:"


def claim_key(source_id: str, message_id: str) -> bytes:
    """A compact key: a 16-byte digest keeps memory per claim small at high volume."""
    return _PREFIX + hashlib.blake2b(f"{source_id}\0{message_id}".encode(), digest_size=16).digest()


async def claim(redis: aioredis.Redis, items: Sequence[tuple[str, str, str]]) -> list[bool]:
    """For each (source_id, message_id, ingest_id): True if this copy owns the messageId."""
    if not items:
        return []
    keys = [claim_key(source, message) for source, message, _ in items]
    async with redis.pipeline(transaction=False) as pipe:
        for key, (_, _, ingest_id) in zip(keys, items, strict=True):
            pipe.set(key, ingest_id, nx=True, ex=WINDOW_S)
        created = await pipe.execute()
    lost = [i for i, ok in enumerate(created) if not ok]
    owners = await redis.mget([keys[i] for i in lost]) if lost else []
    result = [bool(ok) for ok in created]
    for i, owner in zip(lost, owners, strict=True):
        result[i] = owner is not None and owner.decode() == items[i][2]
    return result
