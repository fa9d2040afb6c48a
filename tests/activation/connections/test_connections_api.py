"""The connections, replay and event dead-letter routes in a tiny app: validation, stats, lifecycle."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from activation.admin.auth import TokenStore
from activation.connections import letters, replay
from activation.connections.routes import routes
from activation.destinations.events import OutboundEvent
from tests.activation.connections.conftest import FAST, Forwarding
from tests.fakes.webhook import FakeWebhookReceiver


@pytest.fixture
async def api(fwd: Forwarding) -> AsyncIterator[httpx.AsyncClient]:
    tokens = TokenStore(fwd.db)
    _, secret = await tokens.create("fwd-tests", ["admin"])
    fwd.ch.insert("sources", [[fwd.source, "src", "wk", 1, 0, datetime.now(UTC), time.time_ns()]],
                  column_names=["id", "name", "write_key", "enabled", "deleted", "updated_at", "version"])  # fmt: skip
    app = Starlette(routes=routes(fwd.services, tokens))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://magpie.test", headers=headers
    ) as client:
        yield client


async def test_connection_lifecycle_with_stats(api: httpx.AsyncClient, fwd: Forwarding) -> None:
    dest = await fwd.destination("webhook", {"url": "http://127.0.0.1:9/h"}, {"secret": "whsec_" + "A" * 24})
    body: dict[str, Any] = {"source_id": fwd.source, "destination_id": dest, "filter": {"types": ["track"]}}
    made = await api.post("/admin/v1/connections", json=body)
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    assert made.json()["stats"] == {"delivered": 0, "failed": 0, "dead_lettered": 0, "skipped": 0, "filtered": 0,
                                    "lag_ms": None, "last_delivered_at": None, "pending": 0, "paused_for_s": 0.0}  # fmt: skip
    patched = await api.patch(
        f"/admin/v1/connections/{cid}", json={"mapping": {"events": {"A": "b"}}, "enabled": False}
    )
    assert patched.json()["mapping"] == {"events": {"A": "b"}} and patched.json()["filter"] == {
        "types": ["track"]
    }
    assert (await api.patch(f"/admin/v1/connections/{cid}", json={"source_id": "x"})).status_code == 400
    page = (await api.get("/admin/v1/connections", params={"limit": 1000})).json()
    assert cid in [c["id"] for c in page["data"]]
    assert (await api.delete(f"/admin/v1/connections/{cid}")).status_code == 204
    assert (await api.get(f"/admin/v1/connections/{cid}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"source_id", "destination_id"}),
        (
            {"filter": {"types": ["click"], "extra": 1}},
            {"source_id", "destination_id", "filter.types", "filter.extra"},
        ),
        (
            {"mapping": {"events": {"a": 3}}, "junk": 1},
            {"source_id", "destination_id", "mapping.events", "junk"},
        ),
        ({"source_id": "nope", "destination_id": "nope"}, {"source_id", "destination_id"}),
    ],
)
async def test_bad_connections_are_400s_naming_fields(
    api: httpx.AsyncClient, body: dict[str, Any], fields: set[str]
) -> None:
    response = await api.post("/admin/v1/connections", json=body)
    assert response.status_code == 400 and set(response.json()["error"]["fields"]) == fields


async def test_audience_only_destination_cannot_be_connected(api: httpx.AsyncClient, fwd: Forwarding) -> None:
    dest = await fwd.destination("mailchimp", {"list_id": "l1"}, {"api_key": "k-us1"})
    response = await api.post("/admin/v1/connections", json={"source_id": fwd.source, "destination_id": dest})
    assert (
        response.status_code == 400
        and "cannot receive events" in response.json()["error"]["fields"]["destination_id"]
    )


async def test_replay_validation_window_cancel_and_dead_letter_replay(
    api: httpx.AsyncClient, fwd: Forwarding
) -> None:
    async with FakeWebhookReceiver() as hook:
        dest = await fwd.destination("webhook", {"url": hook.url}, {"secret": hook.secret})
        path = f"/admin/v1/destinations/{dest}/replay"
        window = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
        assert (await api.post(path, json=window)).status_code == 409  # no connection yet
        await fwd.connect(dest)
        bad = await api.post(path, json={"from": "yesterday", "to": "2026-01-01T00:00:00Z", "x": 1})
        assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"from", "x"}
        backwards = await api.post(path, json={"from": window["to"], "to": window["from"]})
        assert backwards.json()["error"]["fields"] == {"to": "must be after from"}
        ids = fwd.events([{"at": fwd.base + timedelta(minutes=m), "user": f"u-{fwd.ns}"} for m in range(10)])
        span = {
            "from": (fwd.base + timedelta(minutes=3)).isoformat(),
            "to": (fwd.base + timedelta(minutes=6)).isoformat(),
        }
        started = (await api.post(path, json={**span, "filter": {"types": ["track"]}})).json()
        assert started["total"] == 3 and started["status"] == "queued"
        done = await replay.run_replay(fwd.services, started["id"], FAST)
        assert (done["status"], done["sent"]) == ("succeeded", 3)
        assert [e["messageId"] for e in hook.events] == ids[3:6]
        second = (await api.post(path, json=span)).json()
        cancelled = await api.delete(f"/admin/v1/destinations/{dest}/replays/{second['id']}")
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
        assert (await replay.run_replay(fwd.services, second["id"], FAST))["status"] == "skipped"
        assert len(hook.events) == 3
        assert (await api.get(f"/admin/v1/destinations/{dest}/replays/{second['id']}")).json()[
            "status"
        ] == "cancelled"
        refused = OutboundEvent("m-dead", "u:x", {"type": "track", "messageId": "m-dead"}, "c1")
        await letters.add(fwd.db, dest, [(refused, "HTTP 422")])
        listed = (await api.get(f"/admin/v1/destinations/{dest}/event-dead-letters")).json()["data"]
        assert [(d["message_id"], d["reason"], d["status"]) for d in listed] == [
            ("m-dead", "HTTP 422", "open")
        ]
        again = await api.post(f"/admin/v1/destinations/{dest}/event-dead-letters/replay")
        assert again.json()["replayed"] == 1
        listed = (await api.get(f"/admin/v1/destinations/{dest}/event-dead-letters?status=open")).json()[
            "data"
        ]
        assert listed == []
