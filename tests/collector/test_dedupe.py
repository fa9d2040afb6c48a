"""Claims in a real Redis (the embedded redis-server): first copy wins, replays keep their claim."""

from __future__ import annotations

import redis.asyncio as aioredis

from collector.dedupe import WINDOW_S, claim, claim_key


async def test_first_copy_wins_and_replays_keep_their_claim(redis: aioredis.Redis) -> None:
    first = await claim(redis, [("s1", "m1", "ingest-a"), ("s1", "m2", "ingest-b"), ("s1", "m1", "ingest-c")])
    assert first == [True, True, False]  # the same messageId twice in one chunk: only the first
    replay = await claim(redis, [("s1", "m1", "ingest-a"), ("s1", "m2", "ingest-b")])
    assert replay == [True, True]  # a crashed writer replaying its intent still owns its events
    retry = await claim(redis, [("s1", "m1", "ingest-z"), ("s2", "m1", "ingest-y")])
    assert retry == [False, True]  # a client retry is a duplicate; another source is another event
    ttl = await redis.ttl(claim_key("s1", "m1"))
    assert WINDOW_S - 60 < ttl <= WINDOW_S


async def test_large_chunks_are_split_into_several_round_trips(redis: aioredis.Redis) -> None:
    items = [("s", f"m{i}", f"i{i}") for i in range(12_000)]
    assert await claim(redis, items) == [True] * 12_000
    assert await claim(redis, [*items[:10], ("s", "m0", "other")]) == [True] * 10 + [False]
