"""Issue 5's end-to-end path through the real `magpie serve`: events through the collector →
stitched profiles → an audience with an event-count and a trait condition → synced to all five
fake platforms, whose final state equals the computed membership; then members exit and are
removed. Throttling and a 401 token expiry are injected along the way."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.activation.sync.conftest import CUSTOMER, HS_LIST, MC_LIST, META_AUDIENCE, Fakes
from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.meta import FakeMeta
from tests.fakes.webhook import FakeWebhookReceiver
from tests.server import ServerProcess

KINDS = ("google_ads", "meta", "mailchimp", "hubspot", "webhook")
# person → (plan, orders): the audience is "2+ orders in 30 days and plan = pro"
PEOPLE = {1: ("pro", 2), 2: ("pro", 3), 3: ("pro", 1), 4: ("free", 4)}


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with (
        FakeGoogleAds() as google,
        FakeMeta() as meta,
        FakeMailchimp() as mailchimp,
        FakeHubSpot() as hubspot,
        FakeWebhookReceiver() as webhook,
    ):
        google.add_user_list(CUSTOMER, "987654")
        meta.add_audience(META_AUDIENCE)
        mailchimp.add_list(MC_LIST)
        hubspot.add_list(HS_LIST)
        yield Fakes(google, meta, mailchimp, hubspot, webhook)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Shop:
    """One test's people, their ids and how to send their events through the collector."""

    def __init__(self, server: ServerProcess, write_key: str) -> None:
        self.server, self.ns = server, uuid.uuid4().hex[:8]
        self.auth = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}

    def email(self, n: int) -> str:
        return f"buyer{n}.{self.ns}@example.com"

    def user(self, n: int) -> str:
        return f"user-{self.ns}-{n}"

    def send(self, batch: list[dict[str, Any]]) -> None:
        response = self.server.http.post("/v1/batch", json={"batch": batch}, headers=self.auth)
        assert response.status_code == 200 and response.json() == {"success": True}, response.text

    def shop(self, n: int, plan: str, orders: int) -> None:
        """An anonymous visitor orders, then identifies: stitching must give the orders to the user."""
        anon = f"anon-{self.ns}-{n}"
        batch = [{"type": "track", "event": "Order Completed", "anonymousId": anon, "properties": {"total": 10}}
                 for _ in range(orders)]  # fmt: skip
        batch.append({"type": "identify", "anonymousId": anon, "userId": self.user(n),
                      "traits": {"email": self.email(n), "plan": plan, "ns": self.ns}})  # fmt: skip
        self.send(batch)

    def held(self, fakes: Fakes, kind: str, key: str, pids: dict[int, str]) -> set[int]:
        numbers = list(PEOPLE)
        if kind == "google_ads":
            hashes = fakes.google.members(CUSTOMER, "987654")
            return {n for n in numbers if sha256_hex(self.email(n)) in hashes}
        if kind == "meta":
            return {n for n in numbers if sha256_hex(self.email(n)) in fakes.meta.members(META_AUDIENCE)}
        if kind == "webhook":
            return {n for n in numbers if pids.get(n) in fakes.webhook.members.get(key, set())}
        return {n for n in numbers if self.email(n) in fakes.emails(kind, key)}


async def admin(server: ServerProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return await asyncio.to_thread(server.admin, method, path, **kwargs)


async def eventually(check: Callable[[], Any], timeout_s: float = 60, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(every_s)


async def profile(server: ServerProcess, user_id: str) -> dict[str, Any] | None:
    response = await asyncio.to_thread(
        server.http.get, f"/v1/profiles/user_id:{user_id}", headers=server.auth
    )
    return response.json() if response.status_code == 200 else None


async def runs_of(server: ServerProcess, destination: str, audience_id: str) -> list[dict[str, Any]]:
    page = (await admin(server, "GET", f"/syncs?destination_id={destination}")).json()["data"]
    return [r for r in page if r["audience_id"] == audience_id]


async def sync_all(server: ServerProcess, destinations: list[str], audience_id: str) -> list[dict[str, Any]]:
    """Trigger a sync per destination and wait until each new run has finished."""
    seen = {r["id"] for d in destinations for r in await runs_of(server, d, audience_id)}
    for dest in destinations:
        trigger = await admin(
            server, "POST", "/syncs", json={"destination_id": dest, "audience_id": audience_id}
        )
        assert trigger.status_code == 202, trigger.text

    async def finished() -> list[dict[str, Any]] | None:
        runs = []
        for dest in destinations:
            new = [r for r in await runs_of(server, dest, audience_id) if r["id"] not in seen]
            if not new or new[0]["status"] == "running":
                return None
            runs.append(new[0])
        return runs

    runs = await eventually(finished, 90)
    if runs is None:
        pages = {d: await runs_of(server, d, audience_id) for d in destinations}
        failed = (await admin(server, "GET", "/jobs/failed")).json()["data"]
        raise AssertionError(f"syncs did not finish: {pages} failed jobs: {failed}\n{server.log()[-4000:]}")
    return list(runs)


async def test_events_to_five_platforms_through_the_server(server: ServerProcess, fakes: Fakes) -> None:
    source = server.create_source("e2e-shop")
    shop = Shop(server, source["write_key"])
    for n, (plan, orders) in PEOPLE.items():
        shop.shop(n, plan, orders)

    async def stitched() -> dict[int, str] | None:
        docs = {n: await profile(server, shop.user(n)) for n in PEOPLE}
        if not all(
            d and d["computed_traits"].get("event_count", 0) >= 1 + PEOPLE[n][1] for n, d in docs.items()
        ):
            return None
        return {n: d["profile_id"] for n, d in docs.items() if d}

    pids = await eventually(stitched, 30)
    assert pids, "identify did not reach the profiles"
    doc = await profile(server, shop.user(2))
    assert doc and doc["traits"]["plan"]["value"] == "pro"
    assert {"type": "anonymous_id", "value": f"anon-{shop.ns}-2"} in doc["identities"]

    destinations = []
    for kind in KINDS:
        config, credentials = fakes.setups()[kind]
        created = await admin(server, "POST", "/destinations", json={"type": kind, "name": kind, "config": config,
                                                                       "credentials": credentials})  # fmt: skip
        assert created.status_code == 201, created.text
        destinations.append(created.json()["id"])
    key = f"pro_buyers_{shop.ns}"
    query = f"event('Order Completed').within(30 days).count() >= 2 and trait('plan') = 'pro' and trait('ns') = '{shop.ns}'"
    body = {"name": key, "key": key, "query": query, "destinations": destinations, "emit_events": True}
    created = await admin(server, "POST", "/audiences", json=body)
    assert created.status_code == 201, created.text
    audience_id = created.json()["id"]

    fakes.meta.inject(
        "throttle", times=1, regain_minutes=0
    )  # Meta throttles with a 400 + code 80003, not a 429
    fakes.hubspot.inject("throttle", times=1)
    fakes.google.inject("auth_expired")  # the token expires: one refresh, then success
    await run_audience(server, audience_id, expected_members=2)
    runs = await sync_all(server, destinations, audience_id)
    assert [r["status"] for r in runs] == ["succeeded"] * 5, runs
    assert not fakes.meta.faults and not fakes.hubspot.faults, "the injected throttling was never hit"
    assert fakes.google.requests_to("/token"), "the expired Google token was never refreshed"
    entered = await audience_events(server, key)
    assert sorted(e["userId"] for e in entered if e["event"] == "Audience Entered") == sorted(
        shop.user(n) for n in (1, 2)
    )
    doc = await profile(server, shop.user(1))
    assert doc and key in [a["key"] for a in doc["audiences"]]
    for kind in KINDS:
        assert shop.held(fakes, kind, key, pids) == {1, 2}, kind

    shop.send([{"type": "identify", "userId": shop.user(2), "traits": {"plan": "free"}}])  # 2 downgrades

    async def downgraded() -> bool:
        doc = await profile(server, shop.user(2))
        return bool(doc and doc["traits"]["plan"]["value"] == "free")

    assert await eventually(downgraded, 30)
    await run_audience(server, audience_id, expected_members=1)
    runs = await sync_all(server, destinations, audience_id)
    assert all(r["status"] == "succeeded" for r in runs), runs
    for kind in KINDS:
        summary = [(r["status"], r["added"], r["removed"], r["errors"]) for r in runs]
        assert shop.held(fakes, kind, key, pids) == {1}, (kind, summary)


async def audience_events(server: ServerProcess, key: str) -> list[dict[str, Any]]:
    """Audience Entered/Exited events for `key`, from the system source they are tracked into."""
    sources = (await admin(server, "GET", "/sources", params={"limit": 1000})).json()["data"]
    system = [s for s in sources if s["name"] == "Magpie audiences"]
    assert system, "no system source: audience events were never emitted"
    events = await asyncio.to_thread(server.events, system[0]["id"])
    return [e for e in events if e["properties"].get("audience_key") == key]


async def run_audience(server: ServerProcess, audience_id: str, expected_members: int) -> None:
    before = len((await admin(server, "GET", f"/audiences/{audience_id}/runs")).json()["data"])
    assert (await admin(server, "POST", f"/audiences/{audience_id}/run")).status_code in (200, 202)

    async def ran() -> list[dict[str, Any]] | None:
        runs = (await admin(server, "GET", f"/audiences/{audience_id}/runs")).json()["data"]
        return runs if len(runs) > before else None

    runs = await eventually(ran, 60)
    assert runs and runs[0]["members"] == expected_members, runs
