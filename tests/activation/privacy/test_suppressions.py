"""suppress / unsuppress: keyed hashes only, in ClickHouse (the truth) and the Redis set, with a notice
per change; idempotent; the Redis mirror can be rebuilt from ClickHouse."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.privacy.suppressions import (
    CHANGES_CHANNEL,
    SET_KEY,
    identifier_hash,
    is_suppressed,
    list_suppressions,
    mirror,
    suppress,
    unsuppress,
)
from activation.services import Services
from tests.services import job_ctx

SECRET = "suppression-tests-secret-0123456789"


def services(ch: Client, redis: aioredis.Redis) -> Services:
    ctx: dict[str, Any] = job_ctx(ch, redis, secret_key=SECRET)
    return ctx["services"]  # type: ignore[no-any-return]


async def messages(pubsub: Any, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for _ in range(20):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            found.append(message)
        if len(found) == count:
            return found
    raise AssertionError(f"only {len(found)} notices")


async def test_only_keyed_hashes_are_stored_and_every_change_is_announced(
    ch: Client, redis: aioredis.Redis
) -> None:
    s = services(ch, redis)
    email = Identifier("email", " Zoe.Suppressed@Example.com ")
    phone = Identifier("phone", "+44 7700 900999")
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(CHANGES_CHANNEL)
        assert await suppress(s, [email, phone], request_id="req-1") == 2
        assert await suppress(s, [email]) == 0  # idempotent
        notices = await messages(pubsub, 2)
    digest = identifier_hash(SECRET, Identifier("email", "zoe.suppressed@example.com"))
    assert digest == identifier_hash(SECRET, email)  # the stored form of the value is hashed
    assert f"+{digest}".encode() in notices[0]["data"]
    assert digest.encode() in await redis.smembers(SET_KEY)
    # the table holds hex hashes and labels only (a hex hash can contain "7700" by chance: check columns)
    table = ch.query("SELECT hash, identifier_type, request_id FROM suppressions FINAL").result_rows
    assert all(len(h) == 64 and set(h) <= set("0123456789abcdef") for h, _, _ in table)
    labels = str([(t, r) for _, t, r in table])
    assert "zoe.suppressed" not in labels.lower() and "7700900999" not in labels
    assert await is_suppressed(s, email) and await is_suppressed(s, Identifier("phone", "+447700900999"))
    listed = {row["hash"]: row for row in await list_suppressions(s, "", 1000)}
    assert listed[digest]["type"] == "email" and listed[digest]["created_at"].endswith("Z")

    assert await unsuppress(s, email) is True
    assert await unsuppress(s, email) is False
    assert not await is_suppressed(s, email) and digest.encode() not in await redis.smembers(SET_KEY)


async def test_the_redis_mirror_is_rebuilt_from_clickhouse(ch: Client, redis: aioredis.Redis) -> None:
    s = services(ch, redis)
    kept = Identifier("user_id", "mirror-user-1")
    await suppress(s, [kept])
    await redis.delete(SET_KEY)  # Redis lost its data
    assert await mirror(s) >= 1
    assert identifier_hash(SECRET, kept).encode() in await redis.smembers(SET_KEY)


def test_a_different_secret_gives_different_hashes() -> None:
    who = Identifier("email", "a@b.co")
    assert identifier_hash(SECRET, who) != identifier_hash(SECRET + "x", who)
    assert len(identifier_hash(SECRET, who)) == 64
