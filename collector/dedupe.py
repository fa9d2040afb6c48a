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
    key = f"{source_id}\0{message_id}".encode("utf-8", "surrogatepass")  # any str: see records.py
    return _PREFIX + hashlib.blake2b(key, digest_size=16).digest()


# One round trip per chunk: for each key, SET NX EX; when taken, the claim still counts as ours if
# it holds our ingest id (a replay of the same spool record).
_CLAIM_SCRIPT = """
local ttl = ARGV[1]
local result = {}
for i, key in ipairs(KEYS) do
  local mine = ARGV[i + 1]
  if redis.call('SET', key, mine, 'NX', 'EX', ttl) then
    result[i] = 1
  elseif redis.call('GET', key) == mine then
    result[i] = 1
  else
    result[i] = 0
  end
end
return result
"""
_CHUNK = 5000


async def claim(redis: aioredis.Redis, items: Sequence[tuple[str, str, str]]) -> list[bool]:
    """For each (source_id, message_id, ingest_id): True if this copy owns the messageId."""
    script = redis.register_script(_CLAIM_SCRIPT)
    owned: list[bool] = []
    for start in range(0, len(items), _CHUNK):
        part = items[start : start + _CHUNK]
        keys = [claim_key(source, message) for source, message, _ in part]
        result = await script(keys=keys, args=[WINDOW_S, *(ingest for _, _, ingest in part)])
        owned += [bool(flag) for flag in result]
    return owned
