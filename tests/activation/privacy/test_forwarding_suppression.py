"""Event forwarding never sends a suppressed person's stored events (a backlog or a replay)."""

from __future__ import annotations

import uuid

import orjson
import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client

from activation.connections.gates import suppressed
from activation.identity.identifiers import Identifier
from activation.privacy.suppressions import suppress
from tests.activation.privacy.test_suppressions import services


async def test_rows_of_a_suppressed_person_are_dropped_by_any_identifier(
    ch: Client, redis: aioredis.Redis
) -> None:
    s = services(ch, redis)
    tag = uuid.uuid4().hex[:8]
    email, user = f"gone.{tag}@example.com", f"user-{tag}"
    rows = [
        {"message_id": "m1", "user_id": "", "anonymous_id": f"anon-{tag}", "traits": orjson.dumps({"email": email.upper()}).decode()},
        {"message_id": "m2", "user_id": user, "anonymous_id": "", "traits": "{}"},
        {"message_id": "m3", "user_id": f"other-{tag}", "anonymous_id": "", "traits": "{}"},
    ]  # fmt: skip
    assert await suppressed(s, rows) == set()
    await suppress(s, [Identifier("email", email), Identifier("user_id", user)])
    assert await suppressed(s, rows) == {"m1", "m2"}
