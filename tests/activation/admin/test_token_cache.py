"""The admin token cache against real ClickHouse: no request waits on a refresh, and invented tokens
(a flood of them) share reloads instead of each costing a query."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from activation.admin import auth
from activation.admin.auth import TokenStore
from activation.db import Database


class CountingDatabase(Database):
    """The real Database, counting the token-table reads and holding them while `gate` is clear."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if "FROM tokens" in sql:
            self.reads += 1
            await self.gate.wait()
        return await super().rows(sql, parameters)


async def test_a_flood_of_invented_tokens_shares_one_reload(ch: Client) -> None:
    db = CountingDatabase(ch)
    tokens = TokenStore(db)
    _, secret = await tokens.create(f"t-{uuid.uuid4().hex[:6]}", ["read"])
    assert await tokens.authenticate(secret) is not None
    before = db.reads
    made_up = [await tokens.authenticate(f"mgp_{uuid.uuid4().hex}") for _ in range(50)]
    assert made_up == [None] * 50
    assert db.reads - before <= 1  # before: one ClickHouse query per invented token
    together = await asyncio.gather(*(tokens.authenticate(f"mgp_{i}") for i in range(50)))
    assert together == [None] * 50 and db.reads - before <= 2


async def test_a_stale_cache_is_refreshed_behind_the_requests(
    ch: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = CountingDatabase(ch)
    tokens = TokenStore(db)
    _, secret = await tokens.create(f"t-{uuid.uuid4().hex[:6]}", ["read"])
    assert await tokens.authenticate(secret) is not None
    monkeypatch.setattr(auth, "CACHE_S", 0.05)
    await asyncio.sleep(0.1)
    db.gate.clear()  # ClickHouse stops answering the token read
    before = db.reads
    started = time.monotonic()
    assert await asyncio.wait_for(tokens.authenticate(secret), 1) is not None  # served from the cache
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(0.05)
    assert db.reads == before + 1  # the refresh began, in the background
    db.gate.set()
    await asyncio.sleep(0.2)


async def test_a_revocation_reaches_another_process_within_seconds(ch: Client) -> None:
    here, there = TokenStore(Database(ch)), TokenStore(Database(ch))
    token_id, secret = await here.create(f"t-{uuid.uuid4().hex[:6]}", ["read"])
    assert await there.authenticate(secret) is not None
    assert await here.revoke(token_id)
    deadline = time.monotonic() + auth.CACHE_S + 3
    while time.monotonic() < deadline:
        token = await there.authenticate(secret)
        if token is not None and token.revoked:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the other process still accepts the revoked token")
