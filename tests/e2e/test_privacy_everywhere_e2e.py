"""Issue 10's "done when", through the real `magpie serve`: the tag in real Chromium (a customer page
on its own origin) and Segment's analytics-python SDK send events of one person → one stitched
profile (two profiles merged) → an audience synced to every audience destination type of the
REGISTRY (each a faithful fake) → an export holding everything held about them → a deletion by
email → receipt `completed`; no trace in any String/JSON column of any table of the database, in
any mutation text, or in Redis; off every platform's list, the platform's erasure API called where
it has one; later events from the tag and the SDK with the same identifiers suppressed and counted.
A second person, synced alike, stays everywhere."""

# ruff: noqa: F811  (browser fixtures are imported by name and requested as parameters)
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from clickhouse_connect import get_client
from playwright.async_api import Browser, Page
from segment.analytics.client import Client as SegmentClient

from activation.destinations import REGISTRY
from activation.destinations.events import EVENT_ONLY
from magpie.embedded_redis import socket_path
from tests.activation.privacy.traces import redis_traces, table_traces
from tests.e2e.platforms import ERASING, Person, Platforms, platforms
from tests.e2e.test_activation_e2e import admin, eventually, run_audience, sync_all
from tests.server import ServerProcess
from tests.tag._helpers import open_site_page
from tests.tag._site import Site
from tests.tag.conftest import browser, site, visitor_user_agent  # noqa: F401

AUDIENCE_TYPES = sorted(set(REGISTRY) - set(EVENT_ONLY))
CONSENT = {"consent": {"categoryPreferences": {"marketing": True, "analytics": True}}}


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[Platforms]:
    async with platforms() as running:
        yield running


async def profile_of(server: ServerProcess, kind: str, value: str) -> dict[str, Any] | None:
    response = await asyncio.to_thread(server.http.get, f"/v1/profiles/{kind}:{value}", headers=server.auth)
    return response.json() if response.status_code == 200 else None


async def until(check: Any, what: str, timeout_s: float = 60) -> Any:
    found = await eventually(check, timeout_s, 0.3)
    assert found, f"timed out waiting for {what}"
    return found


def sdk(server: ServerProcess, write_key: str) -> SegmentClient:
    return SegmentClient(
        write_key, host=server.url, sync_mode=True, on_error=lambda e, b: pytest.fail(str(e))
    )


async def tagged_page(
    page: Page, site: Site, server: ServerProcess, source: dict[str, Any], path: str
) -> None:
    snippet = server.admin("GET", f"/sources/{source['id']}/snippet").text
    await open_site_page(page, site, server.url, {"flushInterval": 100}, path=path, write_key=source["write_key"],
                         snippet_html=snippet)  # fmt: skip


class Shop:
    """One test's sources, people and the way their events are sent."""

    def __init__(self, server: ServerProcess) -> None:
        self.server, self.ns = server, uuid.uuid4().hex[:10]
        self.web = server.create_source(f"web-{self.ns}")
        self.backend = server.create_source(f"backend-{self.ns}")
        self.ann = Person(f"ann.{self.ns}@example.com", f"user-ann-{self.ns}")
        self.bob = Person(f"bob.{self.ns}@example.com", f"user-bob-{self.ns}")
        self.orders = f"orders_{self.ns}"

    def server_side(self, person: Person, plan: str) -> None:
        """The shop's backend: identify with traits and an order, with consent, through analytics-python."""
        client = sdk(self.server, self.backend["write_key"])
        traits = {"email": person.email, "plan": plan, "ns": self.ns}
        client.identify(person.user_id, traits, context=CONSENT)
        client.track(person.user_id, "Order Completed", {"total": 25.0}, context=CONSENT)
        client.flush()


async def stitch_ann(shop: Shop, page: Page, site: Site) -> tuple[str, list[str]]:
    """Anonymous browsing (profile A), then the backend's events (profile B), then the tag identifies
    the visitor: A and B merge. Returns the anonymous id and both profile ids."""
    server = shop.server
    await tagged_page(page, site, server, shop.web, "/pricing")
    anon = await page.evaluate("analytics.user().anonymousId()")
    first = await until(lambda: profile_of(server, "anonymous_id", anon), "the anonymous profile")
    shop.server_side(shop.ann, "pro")
    second = await until(lambda: profile_of(server, "user_id", shop.ann.user_id), "the user's profile")
    assert first["profile_id"] != second["profile_id"]
    await page.evaluate(f"analytics.identify('{shop.ann.user_id}'); analytics.track('Checkout Viewed')")

    async def merged() -> dict[str, Any] | None:
        doc = await profile_of(server, "email", shop.ann.email)
        ids = {(i["type"], i["value"]) for i in doc["identities"]} if doc else set()
        return doc if ("anonymous_id", anon) in ids and ("user_id", shop.ann.user_id) in ids else None

    doc = await until(merged, "the merge of the browser's and the backend's profiles")
    return anon, sorted({first["profile_id"], second["profile_id"], doc["profile_id"]})


async def synced_everywhere(shop: Shop, fakes: Platforms) -> tuple[str, dict[str, str]]:
    server = shop.server
    destinations = {}
    for kind in AUDIENCE_TYPES:
        config, credentials = fakes.setup(kind)
        body = {"type": kind, "name": f"{kind}-{shop.ns}", "config": config, "credentials": credentials}
        created = await admin(server, "POST", "/destinations", json=body)
        assert created.status_code == 201, created.text
        destinations[kind] = created.json()["id"]
    key = f"privacy_{shop.ns}"
    body = {
        "name": key,
        "key": key,
        "query": f"trait('ns') = '{shop.ns}'",
        "destinations": list(destinations.values()),
    }
    created = await admin(server, "POST", "/audiences", json=body)
    assert created.status_code == 201, created.text
    audience_id = created.json()["id"]
    await run_audience(server, audience_id, expected_members=2)
    runs = await sync_all(server, list(destinations.values()), audience_id)
    assert [r["status"] for r in runs] == ["succeeded"] * len(AUDIENCE_TYPES), runs
    for kind in AUDIENCE_TYPES:
        assert fakes.holds(kind, shop.ann, key) and fakes.holds(kind, shop.bob, key), kind
    return key, destinations


async def export_of(server: ServerProcess, email: str) -> dict[str, Any]:
    created = await admin(
        server, "POST", "/privacy/exports", json={"identifier": {"type": "email", "value": email}}
    )
    assert created.status_code == 202, created.text

    async def document() -> dict[str, Any] | None:
        body: dict[str, Any] = (await admin(server, "GET", f"/privacy/exports/{created.json()['id']}")).json()
        return body if body.get("status") == "completed" and "events" in body else None

    found: dict[str, Any] = await until(document, "the export document")
    return found


def assert_export_holds_everything(doc: dict[str, Any], shop: Shop, anon: str, key: str) -> None:
    """SPEC §9 / issue 10 item 6: profile, traits, computed traits, identities, merge ledger,
    consent, every event with its enrichment, membership history, which destinations received them."""
    pid = shop.ann.profile_id
    assert [(p["profile_id"], p["event_count"] >= 4) for p in doc["profiles"]] == [(pid, True)]  # built-ins
    traits = {t["trait"]: t["value"] for t in doc["traits"] if t["profile_id"] == pid}
    assert shop.ann.email in traits["email"] and "pro" in traits["plan"], traits
    computed = {c["name"]: c["value"] for c in doc["computed_traits"] if c["profile_id"] == pid}
    assert computed == {shop.orders: 1.0}, doc["computed_traits"]  # user-defined
    assert {(i["type"], i["value"]) for i in doc["identities"]} >= {
        ("email", shop.ann.email), ("user_id", shop.ann.user_id), ("anonymous_id", anon)
    }  # fmt: skip
    assert [m["profile_id"] for m in doc["merge_ledger"]] and doc["merge_ledger"][0]["merged_profile_ids"]
    assert doc["consent"][pid]["categoryPreferences"]["marketing"] is True, doc["consent"]
    sources = {e["source_id"] for e in doc["events"]}
    assert sources == {shop.web["id"], shop.backend["id"]}, sources
    names = {e["event"] for e in doc["events"] if e["type"] == "track"}
    assert names == {"Order Completed", "Checkout Viewed"}, names
    browser_events = [e for e in doc["events"] if e["source_id"] == shop.web["id"]]
    enriched = {
        (e["ua_browser"], e["ua_os"], e["is_bot"]) for e in browser_events
    }  # the typed enrichment columns
    assert enriched <= {("Chrome", "Linux", 0), ("Chromium", "Linux", 0)} and enriched, enriched
    assert all(e["raw"] for e in doc["events"])  # and each event as it was received
    assert [(m["change"], m["profile_id"]) for m in doc["audience_membership"]] == [("entered", pid)]
    received = {
        d["destination_type"] for d in doc["destinations"] if d["status"] == "present" and d["updated_at"]
    }
    assert received == set(AUDIENCE_TYPES), received


async def delete_by_email(server: ServerProcess, email: str) -> dict[str, Any]:
    body = {"identifiers": [{"type": "email", "value": email}], "mode": "delete_and_suppress"}
    created = await admin(server, "POST", "/privacy/deletions", json=body)
    assert created.status_code == 202 and created.json()["status"] == "pending", created.text

    async def done() -> dict[str, Any] | None:
        got: dict[str, Any] = (
            await admin(server, "GET", f"/privacy/deletions/{created.json()['id']}")
        ).json()
        return got if got["status"] in ("completed", "failed") else None

    result: dict[str, Any] = await until(done, "the deletion", 120)
    return result


async def no_trace_anywhere(server: ServerProcess, values: list[str]) -> None:
    ch = get_client(host="127.0.0.1", port=int(server.env["MAGPIE_CLICKHOUSE_PORT"]), database="magpie")
    try:
        assert await asyncio.to_thread(table_traces, ch, values) == []  # every table, every text column
        mutations = ch.query(
            "SELECT table, command FROM system.mutations WHERE database = 'magpie'"
            " AND multiSearchAnyCaseInsensitive(command, {v:Array(String)})",
            parameters={"v": values},
        ).result_rows
        assert mutations == [], mutations
    finally:
        ch.close()
    redis = aioredis.Redis(unix_socket_path=str(socket_path(server.data_dir)))
    try:
        assert await redis_traces(redis, values) == []
    finally:
        await redis.aclose()


async def test_tag_and_sdk_person_synced_everywhere_is_exported_then_deleted_and_suppressed(
    server: ServerProcess, fakes: Platforms, browser: Browser, site: Site
) -> None:
    assert sorted(f for f in Platforms.__dataclass_fields__) == AUDIENCE_TYPES, "a fake per audience type"
    shop = Shop(server)
    computed = {"aggregate": "count", "event": "Order Completed"}
    path = f"/identity/computed-traits/{shop.orders}"
    assert (await admin(server, "PUT", path, json=computed)).status_code == 200
    try:
        await _the_whole_path(server, fakes, browser, site, shop)
    finally:
        await admin(server, "DELETE", path)


async def _the_whole_path(
    server: ServerProcess, fakes: Platforms, browser: Browser, site: Site, shop: Shop
) -> None:
    context = await browser.new_context(user_agent=visitor_user_agent(browser))
    page = await context.new_page()
    anon, profile_ids = await stitch_ann(shop, page, site)
    shop.server_side(shop.bob, "free")
    for person in (shop.ann, shop.bob):
        doc = await until(lambda p=person: profile_of(server, "user_id", p.user_id), "a profile")  # type: ignore[misc]
        person.profile_id = doc["profile_id"]
    key, destinations = await synced_everywhere(shop, fakes)

    document = await export_of(server, shop.ann.email)
    assert_export_holds_everything(document, shop, anon, key)

    done = await delete_by_email(server, shop.ann.email)
    assert done["status"] == "completed", done
    outcomes = {
        o["type"]: o for o in done["receipt"]["destinations"] if o["destination_id"] in destinations.values()
    }
    assert {k: o["status"] for k, o in outcomes.items()} == {
        k: ("notified" if k == "webhook" else "erased" if k in ERASING else "removed") for k in AUDIENCE_TYPES
    }, outcomes
    for kind in AUDIENCE_TYPES:
        assert not fakes.holds(kind, shop.ann, key), f"{kind} still holds the deleted person"
        assert fakes.holds(kind, shop.bob, key), f"{kind} lost the other person"
        if kind in ERASING:
            assert fakes.erased(kind, shop.ann), f"{kind}'s erasure API was not called"
    values = [shop.ann.email, shop.ann.user_id, anon, *profile_ids]
    await no_trace_anywhere(server, values)

    before = {
        s: server.metric("magpie_events_suppressed_total", source=s)
        for s in (shop.web["id"], shop.backend["id"])
    }
    await page.evaluate("analytics.track('Came Back')")  # the same browser: same anonymous id and user id
    client = sdk(server, shop.backend["write_key"])
    client.track(shop.ann.user_id, "Order Completed", {"total": 1.0})
    client.identify("someone-new", {"email": shop.ann.email})  # a new user id, the same email
    client.flush()

    async def counted() -> bool:
        web = server.metric("magpie_events_suppressed_total", source=shop.web["id"])
        backend = server.metric("magpie_events_suppressed_total", source=shop.backend["id"])
        return web >= before[shop.web["id"]] + 1 and backend >= before[shop.backend["id"]] + 2

    assert await eventually(counted, 15, 0.3), server.log()[-2000:]
    time.sleep(0.5)  # what a writer would have flushed by now (flush interval 50 ms)
    assert server.events(shop.web["id"]) == []  # the tag's events were all the deleted person's
    assert {e.get("userId") for e in server.events(shop.backend["id"])} == {shop.bob.user_id}
    await no_trace_anywhere(server, values)
    await context.close()
