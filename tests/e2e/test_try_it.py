"""The README's "Try it" sequence through the real server: a curl-style server-side track (the HTTP
client's user agent, no context.userAgent) becomes a profile that enters an audience."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx

from tests.server import ServerProcess


def _until(fetch: Any, done: Any, timeout_s: float = 45) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_the_readme_try_it_track_enters_an_audience(server: ServerProcess) -> None:
    source = server.create_source("try-it")
    key = base64.b64encode(f"{source['write_key']}:".encode()).decode()
    headers = {"Authorization": f"Basic {key}", "User-Agent": "curl/8.5.0"}
    body = {"userId": "u1", "event": "Order Completed", "properties": {"revenue": 42}}
    sent = server.http.post("/v1/track", json=body, headers=headers)
    assert (sent.status_code, sent.json()) == (200, {"success": True})

    stored = server.wait_for_events(source["id"], 1)
    assert [e["event"] for e in stored] == ["Order Completed"]
    assert stored[0]["enrichment"]["isBot"] is False, "a server-side call is not a bot"

    def profile() -> httpx.Response:
        return server.http.get("/v1/profiles/user_id:u1", headers=server.auth)

    found = _until(
        profile, lambda r: r.status_code == 200 and r.json()["computed_traits"]["event_count"] >= 1
    )
    assert found.status_code == 200, found.text
    assert found.json()["computed_traits"]["is_bot"] is False
    assert found.json()["computed_traits"]["lifetime_revenue"] >= 42

    query = "event('Order Completed').count() >= 1"
    created = server.admin(
        "POST", "/audiences", json={"name": "Buyers", "key": "try_it_buyers", "query": query}
    )
    assert created.status_code == 201, created.text
    audience = created.json()
    assert server.admin("POST", f"/audiences/{audience['id']}/run").status_code == 202

    def runs() -> list[Any]:
        return list(server.admin("GET", f"/audiences/{audience['id']}/runs").json()["data"])

    assert _until(runs, bool), "the audience never ran"
    why = server.admin("GET", f"/audiences/{audience['id']}/explain", params={"profile": "user_id:u1"})
    assert why.status_code == 200, why.text
    assert why.json()["member"] is True and why.json()["in_latest_run"] is True
    members = server.admin("GET", f"/audiences/{audience['id']}/members").json()["data"]
    assert found.json()["profile_id"] in [m["profile_id"] for m in members]
