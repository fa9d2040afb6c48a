"""Profile read cache in Redis, so the profile API answers page requests in about a millisecond.

Two kinds of keys under a generation number: identifier -> profile id, and profile id -> the
rendered profile document. A stitch run deletes the keys of the identifiers and profiles it
changed; a full restitch moves to a new generation (old keys expire by TTL). Entries also
expire after `ttl_s`, which bounds staleness if an invalidation is ever lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from activation.identity.identifiers import Identifier

PREFIX = "magpie:profile"
GENERATION_KEY = f"{PREFIX}:generation"
# KEYS[1] the generation key; ARGV: the prefix and the identifier key's suffix (layout of _id_key/_doc_key)
_GET = """
local gen = redis.call('GET', KEYS[1]) or '0'
local base = ARGV[1] .. ':' .. gen .. ':'
local pid = redis.call('GET', base .. ARGV[2])
if not pid then return false end
return redis.call('GET', base .. 'doc:' .. pid)
"""


class ProfileCache:
    def __init__(self, redis: Any, ttl_s: int = 60) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def _generation(self) -> str:
        value = await self.redis.get(GENERATION_KEY)
        return value.decode() if isinstance(value, bytes) else str(value or "0")

    async def generation(self) -> int:
        """The current generation (documents stored in ClickHouse carry the one they were built in)."""
        return int(await self._generation())

    async def get(self, identifier: Identifier) -> bytes | None:
        """The cached document for an identifier, or None: one round trip (generation, identifier's
        profile id, then its document, looked up inside Redis by a script)."""
        suffix = f"id:{identifier.type}:{identifier.value}"
        document: bytes | None = await self.redis.eval(_GET, 1, GENERATION_KEY, PREFIX, suffix)
        return document

    async def put(self, identifier: Identifier, profile_id: str, document: bytes) -> None:
        gen = await self._generation()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(_id_key(gen, identifier), profile_id, ex=self.ttl_s)
            pipe.set(_doc_key(gen, profile_id), document, ex=self.ttl_s)
            await pipe.execute()

    async def invalidate(self, profile_ids: Iterable[str], identifiers: Iterable[Identifier]) -> None:
        gen = await self._generation()
        keys = [_doc_key(gen, p) for p in profile_ids] + [_id_key(gen, i) for i in identifiers]
        for start in range(0, len(keys), 1000):
            await self.redis.delete(*keys[start : start + 1000])

    async def invalidate_all(self) -> None:
        await self.redis.incr(GENERATION_KEY)


def _id_key(gen: str, identifier: Identifier) -> str:
    return f"{PREFIX}:{gen}:id:{identifier.type}:{identifier.value}"


def _doc_key(gen: str, profile_id: str) -> str:
    return f"{PREFIX}:{gen}:doc:{profile_id}"
