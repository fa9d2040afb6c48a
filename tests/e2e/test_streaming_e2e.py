"""Issue 12's done-when through the real `magpie serve`: a streaming audience delivers an entering
profile to a webhook fake within seconds of the qualifying event — no audience run, no sync
trigger from the test — and its exit after a trait change; the API shows mode and freshness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.e2e.test_activation_e2e import Shop, admin, eventually
from tests.fakes.webhook import FakeWebhookReceiver
from tests.server import ServerProcess


@pytest.fixture
async def webhook() -> AsyncIterator[FakeWebhookReceiver]:
    async with FakeWebhookReceiver() as fake:
        yield fake


async def test_streaming_audience_delivers_entry_and_exit_within_seconds(
    server: ServerProcess, webhook: FakeWebhookReceiver
) -> None:
    config, credentials = {"url": webhook.url, "batch_size": 500}, {"secret": webhook.secret}
    created = await admin(server, "POST", "/destinations", json={"type": "webhook", "name": "stream",
                                                                   "config": config, "credentials": credentials})  # fmt: skip
    assert created.status_code == 201, created.text
    shop = Shop(server, server.create_source("stream-shop")["write_key"])
    key = f"streamers_{shop.ns}"
    query = f"event('Order Completed').within(7 days).count() >= 2 and trait('plan') = 'pro' and trait('ns') = '{shop.ns}'"
    body = {"name": key, "key": key, "query": query, "destinations": [created.json()["id"]]}
    made = await admin(server, "POST", "/audiences", json=body)
    assert made.status_code == 201, made.text
    audience = made.json()
    assert audience["mode"] == "streaming" and audience["batch_reason"] is None
    await eventually(lambda: _runs(server, audience["id"]), 30)  # the first full run (empty) is done

    token = server.admin("POST", "/tokens", json={"name": "reader", "scopes": ["profiles:read"]}).json()[
        "token"
    ]
    shop.shop(1, "pro", 1)  # one order: not yet a member
    profile = f"/v1/profiles/user_id:{shop.user(1)}"

    async def in_profile() -> list[str] | None:  # the Profile API's audiences of the person, None: no profile
        answer = await asyncio.to_thread(
            server.http.get, profile, headers={"Authorization": f"Bearer {token}"}
        )
        return [a["key"] for a in answer.json()["audiences"]] if answer.status_code == 200 else None

    assert await eventually(lambda: _is(in_profile, []), 30, 0.2)  # stitched, not a member; now cached
    shop.send([{"type": "track", "event": "Order Completed", "userId": shop.user(1)}])  # the qualifying one
    sent = time.monotonic()

    async def entered() -> bool:
        return bool(webhook.members.get(key))

    assert await eventually(entered, 30, 0.2), server.log()[-3000:]
    entry_s = time.monotonic() - sent
    assert entry_s < 15, entry_s
    # the entry rewrote the stored document and dropped the cached one (its TTL is 60 s)
    assert await eventually(lambda: _is(in_profile, [key]), 10, 0.2)
    shop.send([{"type": "identify", "userId": shop.user(1), "traits": {"plan": "free"}}])
    sent = time.monotonic()

    async def exited() -> bool:
        return webhook.members.get(key) == set()

    assert await eventually(exited, 30, 0.2), server.log()[-3000:]
    assert time.monotonic() - sent < 15
    assert await eventually(lambda: _is(in_profile, []), 10, 0.2)
    doc = (await admin(server, "GET", f"/audiences/{audience['id']}")).json()
    assert doc["mode"] == "streaming" and doc["freshness"]["measured_in"] == "streaming"
    assert 0 <= doc["freshness"]["lag_s"] < 15
    history = (await admin(server, "GET", f"/audiences/{audience['id']}/runs")).json()["data"]
    assert [r["entered"] for r in history][:2] == [0, 1] and history[0]["exited"] == 1


async def _runs(server: ServerProcess, audience_id: str) -> bool:
    return bool((await admin(server, "GET", f"/audiences/{audience_id}/runs")).json()["data"])


async def _is(read: Callable[[], Awaitable[object]], expected: object) -> bool:
    return await read() == expected
