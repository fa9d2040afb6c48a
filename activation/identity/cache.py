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


class ProfileCache:
    def __init__(self, redis: Any, ttl_s: int = 60) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def _generation(self) -> str:
        value = await self.redis.get(GENERATION_KEY)
        return value.decode() if isinstance(value, bytes) else str(value or "0")

    async def get(self, identifier: Identifier) -> bytes | None:
        """The cached document for an identifier, or None."""
        gen = await self._generation()
        profile_id = await self.redis.get(_id_key(gen, identifier))
        if profile_id is None:
            return None
        document: bytes | None = await self.redis.get(_doc_key(gen, _text(profile_id)))
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
