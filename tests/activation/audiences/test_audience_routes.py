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
from activation.audiences.parser import parse
from activation.audiences.routes import routes
from activation.identity.computed import ComputedTrait
from activation.identity.store import write_definition
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
    # the admin toolkit's one limit rule, the same answer as every other admin list
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"
    assert bad.json()["error"]["fields"] == {"limit": "out of range"}
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
async def test_hostile_definitions_are_a_400_at_create(
    api: Any, ns: str, body: dict[str, Any], field: str
) -> None:
    client, _ = api
    for path in ("/admin/v1/audiences", "/admin/v1/audiences/preview"):
        extra = {"name": "x", "key": f"{ns}-hostile"} if path == "/admin/v1/audiences" else {}
        response = await client.post(path, json={**extra, **body}, headers=ADMIN)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_definition" and field in error["fields"]


async def _members_of(client: httpx.AsyncClient, ch: Client, audience: dict[str, Any]) -> list[str]:
    compute(ch, audience["id"], datetime.now(UTC))
    page = (await client.get(f"/admin/v1/audiences/{audience['id']}/members", headers=READ)).json()
    return [m["profile_id"] for m in page["data"]]


async def test_page_and_screen_views_and_enrichment_in_both_forms(api: Any, ch: Client, ns: str) -> None:
    client, _ = api
    gb, de, app, tablet = (person(ch, ns, name) for name in ("gb", "de", "app", "tablet"))
    landing = {"type": "page", "name": "Landing", "geo_country": "GB", "geo_city": "London"}
    insert_events(
        ch,
        [
            event_row(**landing, user_id=f"{ns}-u-gb", utm_source="newsletter", utm_campaign="spring"),
            event_row(**landing, anonymous_id=f"{ns}-a-gb", utm_medium="email", referrer_medium="email"),
            event_row(type="page", name="Pricing", user_id=f"{ns}-u-de", geo_country="DE"),
            event_row(type="page", name="Landing", user_id=f"{ns}-u-de", geo_country="DE", is_bot=1),
            event_row(type="screen", name="Home", user_id=f"{ns}-u-app", device_type="ios"),
            event_row(event="Landing", user_id=f"{ns}-u-tablet", ua_device_type="tablet"),
            event_row(event="Bought", user_id=f"{ns}-u-tablet", referrer_medium="search"),
        ],
    )
    scoped = f"trait('ns') = '{ns}' and "
    expectations = {
        "page('Landing')": [gb],
        "page('Landing').count() >= 2": [gb],
        "page('Landing').where(enrichment('geo_country') = 'GB' and enrichment('geo_city') = 'London')": [gb],
        "page('Pricing').where(enrichment('geo_country') in ('DE', 'FR'))": [de],
        "page('Landing').where(enrichment('utm_source') = 'newsletter' and enrichment('utm_campaign')"
        ".contains('spr'))": [gb],
        "page('Landing').where(enrichment('utm_medium') = 'email' and enrichment('referrer_medium') = 'email')": [
            gb
        ],
        "screen('Home').where(enrichment('device_type') = 'ios')": [app],
        "event('Landing').where(enrichment('device_type') = 'tablet')": [tablet],
        "event('Bought').where(enrichment('referrer_medium') != 'email')": [tablet],
        "not page('Landing') and not screen('Home')": [de, tablet],
    }
    for i, (query, expected) in enumerate(expectations.items()):
        created = await _create(client, f"{ns}-t{i}", query=scoped + query)
        assert parse(created["query"]) == parse(scoped + query)  # rendered back in the text form
        assert await _members_of(client, ch, created) == sorted(expected), query
    definition = {
        "and": [
            {"trait": "ns", "op": "=", "value": ns},
            {"screen": "Home", "where": [{"enrichment": "device_type", "op": "=", "value": "ios"}]},
        ]
    }
    from_json = await _create(client, f"{ns}-json", definition=definition)
    assert from_json["query"].endswith("screen('Home').where(enrichment('device_type') = 'ios').count() >= 1")
    assert await _members_of(client, ch, from_json) == [app]
    bad = {
        "name": "x",
        "key": f"{ns}-bad",
        "definition": {"page": "x", "where": [{"enrichment": "ip", "op": "exists"}]},
    }
    refused = await client.post("/admin/v1/audiences", json=bad, headers=ADMIN)
    assert refused.status_code == 400 and "$.where[0].enrichment" in refused.json()["error"]["fields"]
    number = await client.post(
        "/admin/v1/audiences",
        json={"name": "x", "key": f"{ns}-n", "query": "page('x').where(enrichment('geo_city') = 5)"},
        headers=ADMIN,
    )
    assert number.status_code == 400


async def test_user_defined_computed_traits_in_conditions(api: Any, ch: Client, ns: str) -> None:
    client, _ = api
    name = f"orders_{ns[:8]}"
    query = f"trait('ns') = '{ns}' and computed('{name}') >= 3"
    body = {"name": "x", "key": f"{ns}-orders", "query": query}
    undefined = await client.post("/admin/v1/audiences", json=body, headers=ADMIN)
    assert undefined.status_code == 400 and "no computed trait named" in undefined.text
    write_definition(ch, ComputedTrait(name, "count", "Order Completed", window_days=90), datetime.now(UTC))
    loyal, once, never = (person(ch, ns, n) for n in ("loyal", "once", "never"))
    rows = [[loyal, name, 4.0, datetime.now(UTC), 1, 0], [once, name, 1.0, datetime.now(UTC), 1, 0]]
    ch.insert(
        "profile_computed_traits",
        rows,
        column_names=["profile_id", "name", "value", "computed_at", "version", "deleted"],
    )
    created = await _create(client, f"{ns}-orders", query=query)
    assert await _members_of(client, ch, created) == [loyal]
    few = await _create(
        client,
        f"{ns}-few",
        definition={
            "and": [{"trait": "ns", "op": "=", "value": ns}, {"computed": name, "op": "<", "value": 2}]
        },
    )
    assert await _members_of(client, ch, few) == sorted([once, never])  # no value counts as 0
    why = (
        await client.get(
            f"/admin/v1/audiences/{created['id']}/explain", params={"profile": once}, headers=READ
        )
    ).json()
    assert why["member"] is False and why["conditions"][1]["observed"] == {name: "1"}


async def test_explain_accepts_type_value_identifiers(api: Any, ch: Client, ns: str) -> None:
    client, _ = api
    target = person(ch, ns, "who", plan="pro")
    created = await _create(client, f"{ns}-who", query=f"trait('ns') = '{ns}' and trait('plan') = 'pro'")
    url = f"/admin/v1/audiences/{created['id']}/explain"
    by_user = (await client.get(url, params={"profile": f"user_id:{ns}-u-who"}, headers=READ)).json()
    by_id = (await client.get(url, params={"profile": target}, headers=READ)).json()
    assert by_user["profile_id"] == target and by_user["member"] is True and by_user == by_id
    unknown = await client.get(url, params={"profile": f"user_id:{ns}-nobody"}, headers=READ)
    assert unknown.status_code == 404
    bad = await client.get(url, params={"profile": "shoe_size:42"}, headers=READ)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_identifier"
