"""Event forwarding through the real `magpie serve`: collector → ClickHouse → reader → per-destination
queue → delivery job → platform fakes; replays of a stored window; connection stats in the API."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from activation.destinations.events.mixpanel import insert_id
from tests.fakes.amplitude import FakeAmplitude
from tests.fakes.braze_events import FakeBrazeEvents
from tests.fakes.ga4 import FakeGA4
from tests.fakes.hubspot_events import FakeHubSpotEvents
from tests.fakes.mixpanel import FakeMixpanel
from tests.fakes.webhook import FakeWebhookReceiver
from tests.server import ServerProcess


async def admin(server: ServerProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return await asyncio.to_thread(server.admin, method, path, **kwargs)


async def created(server: ServerProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await admin(server, "POST", path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def send(server: ServerProcess, write_key: str, batch: list[dict[str, Any]]) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    response = await asyncio.to_thread(server.http.post, "/v1/batch", json={"batch": batch}, headers=auth)
    assert response.status_code == 200, response.text


async def until(check: Callable[[], bool], timeout_s: float = 40, state: Callable[[], Any] = str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out: {state()}"
        await asyncio.sleep(0.1)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def test_webhook_connection_gets_every_event_once_in_order_and_a_replay_resends_a_window(
    server: ServerProcess,
) -> None:
    ns = uuid.uuid4().hex[:8]
    source = server.create_source(f"fwd-{ns}")
    async with FakeWebhookReceiver() as hook:
        dest = await created(server, "/destinations", {"type": "webhook", "name": "events", "config":
                             {"url": hook.url, "batch_size": 10}, "credentials": {"secret": hook.secret}})  # fmt: skip
        connection = await created(
            server, "/connections", {"source_id": source["id"], "destination_id": dest["id"]}
        )
        try:
            hook.inject("throttle", times=2, retry_after_s=1)
            hook.inject("error500", times=2)
            base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
            people = [f"user-{ns}-{i}" for i in range(3)]
            batch = [{"type": "track", "event": "Step", "userId": people[n % 3], "messageId": f"{ns}-{n:03d}",
                      "timestamp": iso(base + timedelta(minutes=n)), "properties": {"n": n}}
                     for n in range(30)]  # fmt: skip
            await send(server, source["write_key"], batch)
            await until(lambda: len(hook.event_counts) >= 30)
            assert hook.event_counts == {e["messageId"]: 1 for e in batch}
            order: dict[str, list[int]] = defaultdict(list)
            for event in hook.events:
                order[event["userId"]].append(event["properties"]["n"])
            assert all(seq == sorted(seq) for seq in order.values()) and len(order) == 3
            view = (await admin(server, "GET", f"/connections/{connection['id']}")).json()
            assert view["stats"]["delivered"] == 30 and view["stats"]["failed"] >= 2
            assert view["stats"]["pending"] == 0 and view["stats"]["lag_ms"] is not None

            before = len(hook.events)
            window = {"from": iso(base + timedelta(minutes=5)), "to": iso(base + timedelta(minutes=12))}
            started = await admin(server, "POST", f"/destinations/{dest['id']}/replay", json=window)
            assert started.status_code == 202, started.text
            replay = started.json()
            assert replay["total"] == 7 and replay["status"] == "queued"
            path = f"/destinations/{dest['id']}/replays/{replay['id']}"

            async def finished() -> dict[str, Any]:
                for _ in range(300):
                    state = (await admin(server, "GET", path)).json()
                    if state["status"] in ("succeeded", "failed", "cancelled"):
                        return dict(state)
                    await asyncio.sleep(0.1)
                raise AssertionError("replay did not finish")

            state = await finished()
            assert (state["status"], state["sent"], state["done"]) == ("succeeded", 7, 7)
            replayed = [e["messageId"] for e in hook.events[before:]]
            assert replayed == [f"{ns}-{n:03d}" for n in range(5, 12)]
        finally:
            assert (await admin(server, "DELETE", f"/connections/{connection['id']}")).status_code == 204


async def test_each_platform_fake_ends_holding_what_was_sent(server: ServerProcess) -> None:
    ns = uuid.uuid4().hex[:8]
    source = server.create_source(f"fwd-platforms-{ns}")
    async with (
        FakeGA4() as ga4, FakeMixpanel() as mp, FakeAmplitude() as amp, FakeBrazeEvents() as braze,
        FakeHubSpotEvents() as hs,
    ):  # fmt: skip
        setups = {
            "ga4": ({"base_url": ga4.base_url, "measurement_id": ga4.measurement_id}, {"api_secret": ga4.api_secret}),
            "mixpanel": ({"base_url": mp.base_url, "project_id": mp.project_id},
                         {"service_account_user": mp.service_account[0], "service_account_secret": mp.service_account[1]}),
            "amplitude": ({"base_url": amp.base_url}, {"api_key": amp.api_key}),
            "braze_events": ({"base_url": braze.base_url}, {"api_key": braze.api_key}),
            "hubspot_events": ({"base_url": hs.base_url, "portal_id": hs.portal_id}, {"access_token": "access-1"}),
        }  # fmt: skip
        connections = []
        for kind, (config, credentials) in setups.items():
            dest = await created(server, "/destinations", {"type": kind, "name": kind, "config": config,
                                                           "credentials": credentials})  # fmt: skip
            body = {"source_id": source["id"], "destination_id": dest["id"]}
            connections.append((await created(server, "/connections", body))["id"])
        try:
            for fake in (ga4, mp, amp, braze, hs):
                fake.inject("throttle", times=1, retry_after_s=1)
            users = [f"user-{ns}-{i}" for i in range(2)]
            tracks = [{"type": "track", "event": "Order Completed", "userId": users[n % 2],
                       "anonymousId": f"anon-{ns}-{n % 2}", "messageId": f"{ns}-t{n}",
                       "context": {"traits": {"email": f"{users[n % 2]}@example.com"}},
                       "properties": {"total": n, "currency": "EUR"}} for n in range(8)]  # fmt: skip
            identify = {
                "type": "identify",
                "userId": users[0],
                "messageId": f"{ns}-id",
                "traits": {"plan": "pro"},
            }
            await send(server, source["write_key"], [*tracks, identify])
            track_ids = {e["messageId"] for e in tracks}
            await until(lambda: len(ga4.events) >= 8 and len(mp.events) >= 8 and len(amp.events) >= 9
                        and len(braze.events) >= 8 and len(hs.occurrences) >= 8,
                        state=lambda: (len(ga4.events), dict(ga4.dropped), len(mp.events), len(amp.events),
                                       len(braze.events), len(hs.occurrences)))  # fmt: skip
            await asyncio.sleep(1.0)  # nothing more arrives (no duplicates)
            assert sorted(e["params"]["total"] for e in ga4.events) == list(range(8))
            assert {e["name"] for e in ga4.events} == {"order_completed"}
            assert {e["client_id"] for e in ga4.events} == {f"anon-{ns}-0", f"anon-{ns}-1"}
            assert {e["properties"]["$insert_id"] for e in mp.events} == {insert_id(m) for m in track_ids}
            assert {e["properties"]["distinct_id"] for e in mp.events} == set(users)
            assert {e["insert_id"] for e in amp.events} == track_ids | {f"{ns}-id"}
            identified = [e for e in amp.events if e["event_type"] == "$identify"]
            assert len(identified) == 1 and identified[0]["user_properties"] == {"$set": {"plan": "pro"}}
            assert len(braze.events) == 8 and {e["external_id"] for e in braze.events} == set(users)
            assert braze.attributes[users[0]] == {"plan": "pro"}
            assert len(hs.occurrences) == 8 and {o["eventName"] for o in hs.occurrences} == {
                f"pe{hs.portal_id}_order_completed"
            }
            assert {o["email"] for o in hs.occurrences} == {f"{u}@example.com" for u in users}
            assert mp.duplicates == 0 and amp.duplicates == 0 and hs.duplicates == 0
        finally:
            for connection in connections:
                await admin(server, "DELETE", f"/connections/{connection}")
