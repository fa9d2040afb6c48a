"""The event debugger's cursors over HTTP: real ones walk the events, forged ones are a 400."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.server import ServerProcess


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED = [
    "garbage",
    _b64(b"{garbage"),
    _b64(b'["garbage", "x"]'),
    _b64(b"[1, {}]"),
    _b64(b'["2026-13-45 99:99:99.000", "x"]'),
    _b64(b'["0001-01-01 00:00:00.000", "x"]'),
    _b64(orjson.dumps(["2026-01-01 00:00:00.000", ["not", "a", "string"]])),
    "%ff%fe",
]


@pytest.mark.parametrize("cursor", FORGED)
def test_a_forged_debugger_cursor_is_a_400(server: ServerProcess, cursor: str) -> None:
    source = server.create_source("debugger-forged")
    for listing in ("events", "rejected"):
        response = server.admin("GET", f"/sources/{source['id']}/{listing}", params={"cursor": cursor})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_cursor"


def test_real_debugger_cursors_still_walk_every_event(server: ServerProcess) -> None:
    source = server.create_source("debugger-walk")
    batch = [{"type": "track", "event": f"E{i}", "userId": "walker", "messageId": f"m{i}"} for i in range(5)]
    key = base64.b64encode(f"{source['write_key']}:".encode()).decode()
    sent = server.http.post("/v1/batch", json={"batch": batch}, headers={"Authorization": f"Basic {key}"})
    assert sent.status_code == 200, sent.text
    server.wait_for_events(source["id"], 5)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = server.admin("GET", f"/sources/{source['id']}/events", params=params).json()
        seen += [e["messageId"] for e in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"m{i}" for i in range(5)]
