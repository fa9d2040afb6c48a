"""The admin routes, driven over HTTP (ASGI) against the real embedded ClickHouse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from activation.audiences.computation import compute
from activation.audiences.routes import routes
from tests.activation.audiences.audience_rows import event_row, insert_events, person

ADMIN = {"Authorization": "Bearer admin"}
READ = {"Authorization": "Bearer read"}


def require(request: Request, scope: str) -> Response | None:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    if token not in ("admin", "read"):
        return JSONResponse({"error": {"code": "unauthorized", "message": "no token", "fields": {}}}, 401)
    if scope == "admin" and token != "admin":
        return JSONResponse({"error": {"code": "forbidden", "message": "scope", "fields": {}}}, 403)
    return None


@pytest.fixture
async def api(ch: Client) -> AsyncIterator[tuple[httpx.AsyncClient, list[tuple[str, str]]]]:
    queued: list[tuple[str, str]] = []

    async def enqueue(job: str, audience_id: str) -> None:
        queued.append((job, audience_id))

    app = Starlette(routes=routes(lambda: ch, enqueue, require))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://magpie.test") as client:
        yield client, queued


async def _create(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/admin/v1/audiences", json={"name": key, "key": key, **body}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_create_read_update_delete(api: Any, ns: str) -> None:
    client, queued = api
    created = await _create(
        client,
        f"{ns}-pro",
        query="trait('plan') = 'pro'",
        destinations=["d1", "d1", "d2"],
        schedule={"every_s": 600},
    )
    assert created["definition"] == {"trait": "plan", "op": "=", "value": "pro"}
    assert (created["destinations"], created["schedule"], created["emit_events"]) == (
        ["d1", "d2"],
        {"every_s": 600},
        False,
    )
    url = f"/admin/v1/audiences/{created['id']}"
    got = (await client.get(url, headers=READ)).json()
    assert got["query"] == "trait('plan') = 'pro'" and got["last_run"] is None
    patched = await client.patch(
        url,
        json={"name": "Pro", "definition": {"trait": "plan", "op": "exists"}, "emit_events": True},
        headers=ADMIN,
    )
    assert patched.status_code == 200 and patched.json()["query"] == "trait('plan').exists()"
    assert (await client.get(url, headers=READ)).json()["name"] == "Pro"
    deleted = await client.delete(url, headers=ADMIN)
    assert deleted.json() == {"id": created["id"], "deleted": True}
    assert queued == [("compute_audience", created["id"])]
    missing = await client.get(url, headers=READ)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_errors_point_at_the_bad_field(api: Any, ns: str) -> None:
    client, _ = api
    post = lambda body: client.post("/admin/v1/audiences", json=body, headers=ADMIN)  # noqa: E731
    bad_text = (await post({"name": "x", "key": f"{ns}-x", "query": "trait('plan') = "})).json()["error"]
    assert bad_text["code"] == "invalid_definition"
    assert bad_text["fields"] == {
        "query": "offset 16: expected a string, a number, true or false, found the end"
    }
    definition = {"and": [{"trait": "a", "op": "exists"}, {"trait": "b", "op": "=", "value": {"x": 1}}]}
    bad_json = (await post({"name": "x", "key": f"{ns}-x", "definition": definition})).json()["error"]
    assert bad_json["fields"] == {"$.and[1].value": "must be a string, a number or a boolean"}
    bad_fields = await post(
        {"key": "Not A Key", "query": "trait('a').exists()", "schedule": {"every_s": 5}, "x": 1}
    )
    assert bad_fields.status_code == 400
    assert set(bad_fields.json()["error"]["fields"]) == {"name", "key", "schedule", "x"}
    unknown = (await post({"name": "x", "key": f"{ns}-x", "query": "audience('nope-never')"})).json()["error"]
    assert unknown["fields"] == {"$.audience": "no audience with key 'nope-never'"}
    not_json = await client.post("/admin/v1/audiences", content=b"{", headers=ADMIN)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    await _create(client, f"{ns}-dup", query="trait('a').exists()")
    duplicate = await post({"name": "x", "key": f"{ns}-dup", "query": "trait('a').exists()"})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["fields"] == {"key": "already used"}


async def test_references_cycles_and_deleting_a_referenced_audience(api: Any, ns: str) -> None:
    client, _ = api
    base = await _create(client, f"{ns}-base", query="trait('a').exists()")
    user = await _create(client, f"{ns}-user", query=f"audience('{ns}-base') and trait('b').exists()")
    cycle = await client.patch(
        f"/admin/v1/audiences/{base['id']}", json={"query": f"not audience('{ns}-user')"}, headers=ADMIN
    )
    assert cycle.status_code == 400
    assert cycle.json()["error"]["fields"] == {
        "$.not.audience": f"creates a cycle: {ns}-base → {ns}-user → {ns}-base"
    }
    refused = await client.delete(f"/admin/v1/audiences/{base['id']}", headers=ADMIN)
    assert refused.status_code == 409 and refused.json()["error"]["fields"] == {"key": f"used by {ns}-user"}
    assert (await client.delete(f"/admin/v1/audiences/{user['id']}", headers=ADMIN)).status_code == 200
    assert (await client.delete(f"/admin/v1/audiences/{base['id']}", headers=ADMIN)).status_code == 200


async def test_list_walks_every_audience_once(api: Any, ns: str) -> None:
    client, _ = api
    mine = {(await _create(client, f"{ns}-l{i}", query="trait('a').exists()"))["id"] for i in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/admin/v1/audiences", params=params, headers=READ)).json()
        seen.extend(a["id"] for a in page["data"])
        if not (cursor := page["next_cursor"]):
            break
    assert len(seen) == len(set(seen)) and mine <= set(seen)
    bad = await client.get("/admin/v1/audiences", params={"limit": "1001"}, headers=READ)
    assert bad.status_code == 400 and bad.json()["error"]["fields"] == {"limit": "an integer from 1 to 1000"}
    assert (
        await client.get("/admin/v1/audiences", params={"cursor": "%%%"}, headers=READ)
    ).status_code == 400


async def test_run_preview_members_explain_history(api: Any, ch: Client, ns: str) -> None:
    client, queued = api
    people = [person(ch, ns, f"p{i}", plan="pro") for i in range(3)]
    insert_events(ch, [event_row(event="Signed Up", user_id=f"{ns}-u-p0")])
    created = await _create(client, f"{ns}-pros", query=f"trait('ns') = '{ns}' and trait('plan') = 'pro'")
    url = f"/admin/v1/audiences/{created['id']}"
    run = await client.post(f"{url}/run", headers=ADMIN)
    assert run.status_code == 202 and queued == [("compute_audience", created["id"])]
    preview = (await client.get(f"{url}/preview", headers=READ)).json()
    assert (preview["size"], preview["sample"]) == (3, people)
    assert ns not in preview["sql"] and ns in preview["params"].values()
    ad_hoc = await client.post(
        "/admin/v1/audiences/preview",
        json={"query": f"trait('ns') = '{ns}' and event('Signed Up')"},
        headers=READ,
    )
    assert ad_hoc.json()["size"] == 1
    before = datetime.now(UTC) - timedelta(seconds=1)
    compute(ch, created["id"], datetime.now(UTC))
    first = (await client.get(f"{url}/members", params={"limit": "2"}, headers=READ)).json()
    assert [m["profile_id"] for m in first["data"]] == people[:2]
    rest = (
        await client.get(
            f"{url}/members", params={"limit": "2", "cursor": first["next_cursor"]}, headers=READ
        )
    ).json()
    assert (rest["data"], rest["next_cursor"]) == ([{"profile_id": people[2]}], None)
    past = (await client.get(f"{url}/history", params={"at": before.isoformat()}, headers=READ)).json()
    assert past["data"] == [] and past["next_cursor"] is None
    assert (await client.get(f"{url}/history", params={"at": "yesterday"}, headers=READ)).status_code == 400
    why = (await client.get(f"{url}/explain", params={"profile": people[1]}, headers=READ)).json()
    assert why["member"] and why["in_latest_run"] and [c["result"] for c in why["conditions"]] == [True, True]
    assert (await client.get(f"{url}/explain", headers=READ)).status_code == 400
    assert (await client.get(f"{url}/runs", headers=READ)).json()["data"][0]["members"] == 3


async def test_routes_require_their_scope(api: Any) -> None:
    client, _ = api
    assert (await client.get("/admin/v1/audiences")).status_code == 401
    assert (await client.post("/admin/v1/audiences", json={}, headers=READ)).status_code == 403
    assert (await client.get("/admin/v1/audiences", headers=READ)).status_code == 200


HOSTILE_DEFINITIONS = [
    ({"query": "trait('a') = " + "9" * 5000}, "query"),
    ({"query": "computed('event_count') > 1" + "0" * 4400}, "query"),
    ({"query": "not " * 4000 + "trait('a').exists()"}, "query"),
    ({"query": "event('x').between('0999-01-01', '2026-01-01')"}, "query"),
    ({"query": "computed('first_seen') > '0500-06-01'"}, "query"),
    ({"definition": {"event": "x", "between": ["0999-01-01", "2026-01-01"]}}, "$.between[0]"),
    ({"definition": {"event": "x", "between": ["2026-01-01", "2300-01-02"]}}, "$.between[1]"),
    ({"definition": {"computed": "last_seen", "op": "<", "value": "0001-01-01T00:00:00"}}, "$.value"),
]


@pytest.mark.parametrize(("body", "field"), HOSTILE_DEFINITIONS)
async def test_hostile_definitions_are_a_400_at_create(api: Any, ns: str, body: dict[str, Any], field: str) -> None:
    client, _ = api
    for path in ("/admin/v1/audiences", "/admin/v1/audiences/preview"):
        extra = {"name": "x", "key": f"{ns}-hostile"} if path == "/admin/v1/audiences" else {}
        response = await client.post(path, json={**extra, **body}, headers=ADMIN)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_definition" and field in error["fields"]
