"""The destinations and syncs API over ASGI: CRUD, validation, paging, test action, SSRF refusals."""

from __future__ import annotations

from typing import Any

import httpx
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette

from activation.admin.auth import TokenStore
from activation.db import Database
from activation.net import parse_allow_list
from activation.sync.context import SyncContext
from activation.sync.engine import JOB_NAME
from activation.sync.routes import routes
from tests.activation.sync.conftest import SECRET_KEY, Api, Fakes, World

BASE = "/admin/v1/destinations"


def webhook_body(fakes: Fakes, **extra: Any) -> dict[str, Any]:
    config, credentials = fakes.setups()["webhook"]
    return {"type": "webhook", "name": "Hook", "config": config, "credentials": credentials, **extra}


async def test_create_read_update_delete(api: Api, fakes: Fakes, world: World) -> None:
    created = await api.call("POST", BASE, json=webhook_body(fakes, consent_category="marketing"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["credential_names"] == ["secret"] and "credentials" not in body
    assert (body["type"], body["consent_category"], body["enabled"]) == ("webhook", "marketing", True)
    dest_id = body["id"]
    read = (await api.call("GET", f"{BASE}/{dest_id}")).json()
    assert "freshness" in read and read["freshness"] is None  # nothing delivered yet
    assert {k: v for k, v in read.items() if k != "freshness"} == body

    patched = await api.call(
        "PATCH",
        f"{BASE}/{dest_id}",
        json={"name": "Renamed", "credentials": {"extra": "x"}, "enabled": False},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["credential_names"]) == ("Renamed", ["extra", "secret"])
    removed = await api.call("PATCH", f"{BASE}/{dest_id}", json={"credentials": {"extra": None}})
    assert removed.json()["credential_names"] == ["secret"]
    record = await world.store.get(dest_id)
    assert record is not None and dict(world.store.credentials(record)) == {"secret": fakes.webhook.secret}

    assert (await api.call("DELETE", f"{BASE}/{dest_id}")).status_code == 204
    assert (await api.call("GET", f"{BASE}/{dest_id}")).status_code == 404
    assert (await api.call("DELETE", f"{BASE}/{dest_id}")).status_code == 404


async def test_validation_names_every_bad_field(api: Api, fakes: Fakes) -> None:
    bad = await api.call("POST", BASE, json={"type": "fax", "config": [], "colour": 1})
    error = bad.json()["error"]
    assert bad.status_code == 400 and error["code"] == "invalid_destination"
    assert set(error["fields"]) == {"type", "config", "colour", "name"}
    typed = await api.call(
        "POST", BASE, json=webhook_body(fakes, config={"url": "ftp://x"}, credentials={"secret": "nope"})
    )
    assert set(typed.json()["error"]["fields"]) == {"config.url", "credentials.secret"}
    assert "nope" not in typed.text
    dest_id = (await api.call("POST", BASE, json=webhook_body(fakes))).json()["id"]
    retype = await api.call("PATCH", f"{BASE}/{dest_id}", json={"type": "meta", "config": {"batch_size": 0}})
    assert set(retype.json()["error"]["fields"]) == {"type"}
    resized = await api.call(
        "PATCH", f"{BASE}/{dest_id}", json={"config": {"url": fakes.webhook.url, "batch_size": 0}}
    )
    assert set(resized.json()["error"]["fields"]) == {"config.batch_size"}


async def test_list_walks_every_destination_once(api: Api, fakes: Fakes) -> None:
    mine = {(await api.call("POST", BASE, json=webhook_body(fakes))).json()["id"] for _ in range(3)}
    seen: list[str] = []
    cursor = ""
    while True:
        page = (await api.call("GET", f"{BASE}?limit=2" + (f"&cursor={cursor}" if cursor else ""))).json()
        seen += [d["id"] for d in page["data"]]
        assert len(page["data"]) <= 2
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) and mine <= set(seen)
    assert (await api.call("GET", f"{BASE}?limit=1001")).status_code == 400


async def test_the_test_action_reports_platform_answers(api: Api, fakes: Fakes) -> None:
    dest_id = (await api.call("POST", BASE, json=webhook_body(fakes))).json()["id"]
    ok = await api.call("POST", f"{BASE}/{dest_id}/test")
    assert ok.json() == {"ok": True, "tested": True}
    fakes.webhook.inject("gone")
    gone = (await api.call("POST", f"{BASE}/{dest_id}/test")).json()
    assert gone["ok"] is False and gone["error"] == {"kind": "PermanentError", "reason": "webhook HTTP 410"}


async def test_private_addresses_are_refused_at_create_update_and_test(
    api: Api, fakes: Fakes, ch: Client
) -> None:
    for url in (
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest",
        "http://localhost:9/x",
        "http://0x7f000001/",
    ):
        refused = await api.call("POST", BASE, json=webhook_body(fakes, config={"url": url}))
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsafe_destination", url
    dest_id = (await api.call("POST", BASE, json=webhook_body(fakes))).json()["id"]
    moved = await api.call("PATCH", f"{BASE}/{dest_id}", json={"config": {"url": "http://192.168.1.1/h"}})
    assert moved.status_code == 400 and moved.json()["error"]["fields"] == {"config": "private"}

    answers = iter([["93.184.216.34"], ["10.1.2.3"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    db = Database(ch)
    tokens = TokenStore(db)
    _, secret = await tokens.create("rebind", ["admin"])

    async def enqueue(name: str, *args: Any, job_id: str) -> bool:
        return True

    ctx = SyncContext(db, tokens, SECRET_KEY, parse_allow_list(""), enqueue, resolve=rebinding)
    transport = httpx.ASGITransport(app=Starlette(routes=routes(ctx)))
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as client:
        config = {"url": "https://hooks.example.com/in"}
        created = await client.post(BASE, json=webhook_body(fakes, config=config))
        assert created.status_code == 201, created.text
        tested = await client.post(f"{BASE}/{created.json()['id']}/test")
        assert tested.status_code == 400 and tested.json()["error"]["fields"] == {"config": "private"}


async def test_tokens_and_scopes_guard_every_route(api: Api, ch: Client) -> None:
    anonymous = await api.client.get(BASE)
    assert anonymous.status_code == 401
    _, reader = await TokenStore(Database(ch)).create("reader", ["read"])
    headers = {"Authorization": f"Bearer {reader}"}
    assert (await api.client.get(BASE, headers=headers)).status_code == 200
    assert (await api.client.post(BASE, json={}, headers=headers)).status_code == 403
    assert (await api.client.get("/admin/v1/syncs", headers=headers)).status_code == 200


async def test_manual_trigger_and_run_listing(api: Api, fakes: Fakes, world: World) -> None:
    dest_id = (await api.call("POST", BASE, json=webhook_body(fakes))).json()["id"]
    queued = await api.call(
        "POST", "/admin/v1/syncs", json={"destination_id": dest_id, "audience_id": "aud_x"}
    )
    assert queued.status_code == 202
    [(name, args, job_id)] = api.queued
    assert (name, args) == (JOB_NAME, (dest_id, "aud_x", "manual")) and job_id.startswith(f"sync:{dest_id}:")
    missing = await api.call(
        "POST", "/admin/v1/syncs", json={"destination_id": "dst_nope", "audience_id": "a"}
    )
    assert missing.status_code == 404
    assert (await api.call("POST", "/admin/v1/syncs", json={})).status_code == 400
    assert (await api.call("GET", "/admin/v1/syncs/run_nope")).status_code == 404
    listed = await api.call("GET", f"/admin/v1/syncs?destination_id={dest_id}")
    assert listed.json() == {"data": [], "next_cursor": None}


async def test_moving_where_credentials_go_requires_re_entering_them(api: Api, fakes: Fakes) -> None:
    config, credentials = fakes.setups()["google_ads"]
    body = {"type": "google_ads", "name": "Ads", "config": config, "credentials": credentials}
    dest_id = (await api.call("POST", BASE, json=body)).json()["id"]
    elsewhere = "http://127.0.0.1:9"  # allow-listed: only the credential rule can refuse it

    for key in ("base_url", "token_url"):
        moved = await api.call("PATCH", f"{BASE}/{dest_id}", json={"config": {**config, key: elsewhere}})
        error = moved.json()["error"]
        assert moved.status_code == 400 and error["code"] == "credentials_required", moved.text
        assert set(error["fields"]) == {f"config.{key}", "credentials"}
        assert "client_secret" in error["fields"]["credentials"]
    partly = await api.call(
        "PATCH",
        f"{BASE}/{dest_id}",
        json={"config": {**config, "base_url": elsewhere}, "credentials": {"access_token": "new"}},
    )
    assert partly.status_code == 400 and "refresh_token" in partly.json()["error"]["fields"]["credentials"]
    unchanged = await api.call("GET", f"{BASE}/{dest_id}")
    assert unchanged.json()["config"]["base_url"] == config["base_url"]

    renamed = await api.call("PATCH", f"{BASE}/{dest_id}", json={"config": {**config, "api_version": "v24"}})
    assert renamed.status_code == 200, renamed.text
    fresh = {**credentials, "access_token": "access-2", "client_secret": None}
    moved = await api.call(
        "PATCH", f"{BASE}/{dest_id}", json={"config": {**config, "base_url": elsewhere}, "credentials": fresh}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["config"]["base_url"] == elsewhere
    assert "client_secret" not in moved.json()["credential_names"]

    hook = (await api.call("POST", BASE, json=webhook_body(fakes))).json()["id"]
    other_hook = {"url": fakes.webhook.url + "/other"}
    assert (await api.call("PATCH", f"{BASE}/{hook}", json={"config": other_hook})).status_code == 400
    assert (await api.call("PATCH", f"{BASE}/{hook}", json={"name": "still fine"})).status_code == 200
