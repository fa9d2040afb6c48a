"""The `stream_audiences` job against real ClickHouse and Redis: a stitch tick's touched profiles
become one micro-batch per audience however many they are, and every micro-batch that changed
membership gets a sync of its own (none is swallowed by a sync already started)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from clickhouse_connect.driver.binding import format_query_value
from clickhouse_connect.driver.client import Client

from activation.audiences import store, stream_jobs, streaming
from activation.audiences.parser import parse
from activation.audiences.store import Audience
from activation.identity.identifiers import Identifier
from activation.identity.lookup import lookup
from activation.identity.stitching import stitch_incremental
from clickhouse.client import FIELD_BYTES, parts
from tests.activation.identity.conftest import World
from tests.services import job_ctx


class Queue:
    """Enqueue as arq does it: a job id seen before (queued, running or finished) is refused."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def __call__(self, name: str, *args: Any, job_id: str | None = None, **_: Any) -> bool:
        self.calls.append((name, args))
        if job_id is not None and job_id in self.ids:
            return False
        self.ids.append(job_id or f"auto-{len(self.ids)}")
        return True

    def syncs(self, audience_id: str) -> list[str]:
        """Accepted sync job ids of this audience."""
        return [i for i in self.ids if i.startswith("sync:") and f":{audience_id}:" in i]


def people(ch: Client, count: int) -> tuple[World, list[str]]:
    world = World(ch)
    for n in range(count):
        traits = {"plan": "pro", "ns": world.uid}
        world.insert(world.event("identify", n, anon=f"a{n}", user=f"u{n}", traits=traits))
    stitch_incremental(ch, datetime.now(UTC))
    return world, sorted(lookup(ch, Identifier("user_id", world.id(f"u{n}"))) for n in range(count))


def pro_audience(ch: Client, world: World) -> Audience:
    key = "pro_" + world.uid.rstrip("-")
    query = f"trait('plan') = 'pro' and trait('ns') = '{world.uid}'"
    audience = Audience(id=f"id-{key}", key=key, name=key, definition=parse(query), destinations=("d1", "d2"))
    return store.save(ch, audience, datetime.now(UTC))


def run_rows(ch: Client, audience_id: str) -> list[tuple[int, int]]:
    sql = "SELECT entered, exited FROM audience_runs WHERE audience_id = {aid:String} ORDER BY computed_at"
    return [(int(r[0]), int(r[1])) for r in ch.query(sql, parameters={"aid": audience_id}).result_rows]


async def push(redis: aioredis.Redis, profiles: list[str]) -> None:
    entry = {"profiles": profiles, "newest_event_at": datetime.now(UTC).timestamp()}
    await redis.rpush(stream_jobs.CHANGES_KEY, orjson.dumps(entry))  # type: ignore[misc]


async def test_a_tick_of_many_profiles_is_one_micro_batch_with_one_sync_per_destination(
    ch: Client, redis: aioredis.Redis
) -> None:
    world, entering = people(ch, 3)
    audience = pro_audience(ch, world)
    # 1,700 profiles nobody knows after each real one: the three sit far apart in the scope, which
    # takes more than one statement's part
    scope = sorted(entering + [f"{pid}-{n:04d}" for pid in entering for n in range(1700)])
    assert len(list(streaming.parts(scope))) == 2
    await push(redis, scope)
    queue = Queue()
    result = await stream_jobs.stream_audiences(job_ctx(ch, redis, enqueue=queue))
    assert result["profiles"] == len(scope) == 5103
    assert run_rows(ch, audience.id) == [(3, 0)]  # one run at one time, not one per part
    assert sorted(i.split(":")[1] for i in queue.syncs(audience.id)) == ["d1", "d2"]
    assert await redis.llen(stream_jobs.CHANGES_KEY) == 0  # type: ignore[misc]


async def test_every_micro_batch_that_changes_membership_gets_its_own_sync(
    ch: Client, redis: aioredis.Redis
) -> None:
    world, (first, second) = people(ch, 2)
    audience = pro_audience(ch, world)
    queue = Queue()
    ctx = job_ctx(ch, redis, enqueue=queue, clock=lambda: datetime.now(UTC))
    await push(redis, [first])
    await stream_jobs.stream_audiences(ctx)
    await push(redis, [second])  # within the same second: the first sync may already be running
    await stream_jobs.stream_audiences(ctx)
    assert run_rows(ch, audience.id) == [(1, 0), (1, 0)]
    syncs = queue.syncs(audience.id)
    assert len(syncs) == 4 and len(set(syncs)) == 4, queue.ids  # two runs × two destinations, none refused


def test_a_scope_is_cut_into_parts_that_fit_a_form_field_in_order() -> None:
    ids = [f"p_{n:024x}" for n in range(9000)] + ["p_it's", "p_back\\slash"]
    found = list(parts(ids))
    assert [pid for part in found for pid in part] == ids
    assert all(len(format_query_value(part).encode()) <= FIELD_BYTES for part in found)
    assert len(found) == 3 and len(found[0]) > 3900  # full parts, not a fixed small count
    assert list(parts([])) == []
