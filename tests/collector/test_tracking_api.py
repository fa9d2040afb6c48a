"""The tracking API end to end: the real server process over HTTP."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from tests.server import ServerProcess

CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def basic(write_key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


@pytest.fixture(scope="module")
def source(server: ServerProcess) -> dict[str, Any]:
    return server.create_source("tracking-api")


def post(server: ServerProcess, path: str, body: Any, write_key: str = "", **kwargs: Any) -> httpx.Response:
    headers = {**(basic(write_key) if write_key else {}), **kwargs.pop("headers", {})}
    return server.http.post(path, json=body, headers=headers, **kwargs)


def by_id(events: list[dict[str, Any]], message_id: str) -> dict[str, Any]:
    matches = [e for e in events if e["messageId"] == message_id]
    assert len(matches) == 1, f"{message_id}: {len(matches)} copies"
    return matches[0]


def mid() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize(
    ("path", "kind", "extra"),
    [
        ("identify", "identify", {"traits": {"plan": "pro"}}),
        ("track", "track", {"event": "Signed Up", "properties": {"n": 1}}),
        ("page", "page", {"name": "Home"}),
        ("screen", "screen", {"name": "Main"}),
        ("group", "group", {"groupId": "g1"}),
        ("alias", "alias", {"previousId": "old-id"}),
        ("i", "identify", {}),
        ("t", "track", {"event": "Clicked"}),
        ("p", "page", {}),
        ("s", "screen", {}),
        ("g", "group", {"groupId": "g2"}),
        ("a", "alias", {"previousId": "older"}),
    ],
)
def test_every_call_type_on_long_and_short_paths(server, source, path, kind, extra) -> None:
    message_id = mid()
    response = post(
        server, f"/v1/{path}", {"userId": "u-path", "messageId": message_id, **extra}, source["write_key"]
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    stored = by_id(server.wait_for_ids(source["id"], [message_id]), message_id)
    assert stored["type"] == kind and stored["userId"] == "u-path"


def test_batch_rejects_bad_items_alone_and_stores_the_rest(server) -> None:
    src = server.create_source("batch")
    good = [{"type": "track", "event": f"E{i}", "anonymousId": "a", "messageId": mid()} for i in range(3)]
    bad = [
        {"type": "track", "anonymousId": "a", "messageId": "no-event"},
        {"type": "track", "event": "x", "messageId": "no-ids"},
        {"type": "shout", "userId": "u", "messageId": "bad-type"},
        {"type": "track", "event": "x", "userId": "u", "messageId": "m" * 101},
        "not an object",
    ]
    batch = [good[0], bad[0], good[1], bad[1], bad[2], bad[3], good[2], bad[4]]
    response = post(server, "/v1/batch", {"batch": batch}, src["write_key"])
    assert response.status_code == 200
    rejected = response.json()["rejected"]
    assert [(r["index"], r["reason"]) for r in rejected] == [
        (1, "missing_event"),
        (3, "no_user_anon_id"),
        (4, "invalid_type"),
        (5, "message_id_too_long"),
        (7, "not_an_object"),
    ]
    events = server.wait_for_events(src["id"], 3)
    assert sorted(e["messageId"] for e in events) == sorted(g["messageId"] for g in good)
    deadline = time.monotonic() + 10
    while len(server.rejected(src["id"])) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    reasons = sorted(r["reason"] for r in server.rejected(src["id"]))
    assert reasons == sorted(
        ["missing_event", "no_user_anon_id", "invalid_type", "message_id_too_long", "not_an_object"]
    )


def test_write_key_from_basic_body_or_query_and_401_otherwise(server, source) -> None:
    ids = [mid(), mid(), mid()]
    assert (
        post(
            server, "/v1/track", {"event": "a", "userId": "u", "messageId": ids[0]}, source["write_key"]
        ).status_code
        == 200
    )
    body = {"event": "b", "userId": "u", "messageId": ids[1], "writeKey": source["write_key"]}
    assert server.http.post("/v1/track", content=httpx_json(body)).status_code == 200
    beacon = {"batch": [{"type": "track", "event": "c", "userId": "u", "messageId": ids[2]}]}
    assert (
        server.http.post(
            f"/beacon/v1/batch?writeKey={source['write_key']}", content=httpx_json(beacon)
        ).status_code
        == 200
    )
    for key in ("nope", ""):
        response = post(server, "/v1/track", {"event": "x", "userId": "u"}, key)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_write_key"
    events = server.wait_for_ids(source["id"], ids)
    for message_id in ids:
        by_id(events, message_id)


def httpx_json(body: Any) -> bytes:
    return orjson.dumps(body)


def test_disabled_source_and_rotated_key_are_refused(server) -> None:
    src = server.create_source("to-disable")
    assert post(server, "/v1/track", {"event": "x", "userId": "u"}, src["write_key"]).status_code == 200
    rotated = server.admin("POST", f"/sources/{src['id']}/rotate-key").json()
    assert rotated["write_key"] != src["write_key"]
    assert post(server, "/v1/track", {"event": "x", "userId": "u"}, rotated["write_key"]).status_code == 200
    server.admin("PATCH", f"/sources/{src['id']}", json={"enabled": False})
    deadline = time.monotonic() + 10
    statuses = set()
    while time.monotonic() < deadline:
        statuses = {
            post(server, "/v1/track", {"event": "x", "userId": "u"}, k).status_code
            for k in (src["write_key"], rotated["write_key"])
        }
        if statuses == {401}:
            break
        time.sleep(0.3)
    assert statuses == {401}


def test_text_plain_and_gzip_bodies_parse_the_same(server, source) -> None:
    ids = [mid(), mid()]
    plain = httpx_json({"event": "plain", "userId": "u", "messageId": ids[0]})
    response = server.http.post(
        "/v1/t", content=plain, headers={**basic(source["write_key"]), "Content-Type": "text/plain"}
    )
    assert response.status_code == 200
    zipped = gzip.compress(
        httpx_json({"batch": [{"type": "track", "event": "gz", "userId": "u", "messageId": ids[1]}]})
    )
    response = server.http.post(
        "/v1/batch", content=zipped, headers={**basic(source["write_key"]), "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    events = server.wait_for_ids(source["id"], ids)
    assert by_id(events, ids[0])["event"] == "plain"
    assert by_id(events, ids[1])["event"] == "gz"


def test_gzip_bomb_is_refused_with_413(server, source) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * (20 << 20) + b"]}")
    assert len(bomb) < 100_000
    response = server.http.post(
        "/v1/batch", content=bomb, headers={**basic(source["write_key"]), "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_size_limits_at_and_over_the_edge(server, source) -> None:
    def event_of(size: int) -> bytes:
        head = httpx_json({"event": "big", "userId": "u", "messageId": mid(), "properties": {"p": ""}})
        return head.replace(b'"p":""', b'"p":"' + b"x" * (size - len(head)) + b'"')

    assert len(event_of(32 * 1024)) == 32 * 1024
    ok = server.http.post("/v1/track", content=event_of(32 * 1024), headers=basic(source["write_key"]))
    assert ok.status_code == 200, ok.text
    over = server.http.post("/v1/track", content=event_of(32 * 1024 + 1), headers=basic(source["write_key"]))
    assert over.status_code == 400 and over.json()["error"]["code"] == "event_too_large"
    huge = server.http.post(
        "/v1/batch", content=b'{"batch":[' + b" " * (500 * 1024) + b"]}", headers=basic(source["write_key"])
    )
    assert huge.status_code == 413


def test_invalid_json_is_400_with_json_error(server, source) -> None:
    response = server.http.post("/v1/batch", content=b"{not json", headers=basic(source["write_key"]))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_lone_surrogates_and_nan_do_not_cost_the_event(server, source) -> None:
    message_id = mid()
    body = (
        b'{"event":"odd \\ud800 name","userId":"u","messageId":"'
        + message_id.encode()
        + b'","properties":{"v":NaN}}'
    )
    assert server.http.post("/v1/track", content=body, headers=basic(source["write_key"])).status_code == 200
    stored = by_id(server.wait_for_ids(source["id"], [message_id]), message_id)
    assert stored["event"].startswith("odd ") and stored["properties"] == {"v": None}


def test_cors_preflight_and_allowed_origins(server) -> None:
    src = server.create_source("cors", allowed_origins=["https://shop.example"])
    pre = server.http.options(
        "/v1/t", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    )
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "https://shop.example"
    good = post(
        server,
        "/v1/t",
        {"event": "x", "userId": "u"},
        src["write_key"],
        headers={"Origin": "https://shop.example"},
    )
    assert good.status_code == 200 and good.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-credentials" not in good.headers
    assert good.headers["access-control-expose-headers"] == "Retry-After"
    bad = post(
        server,
        "/v1/t",
        {"event": "x", "userId": "u"},
        src["write_key"],
        headers={"Origin": "https://evil.example"},
    )
    assert bad.status_code == 403


def test_settings_document_points_analytics_js_here(server, source) -> None:
    response = server.http.get(f"/v1/projects/{source['write_key']}/settings")
    assert response.status_code == 200
    segment = response.json()["integrations"]["Segment.io"]
    assert segment["apiKey"] == source["write_key"]
    assert segment["apiHost"] == f"127.0.0.1:{server.port}/v1" and segment["protocol"] == "http"
    assert server.http.get("/v1/projects/unknown/settings").status_code == 404


def test_pixel_returns_a_gif_and_stores_the_event(server, source) -> None:
    message_id = mid()
    response = server.http.get(
        "/pixel/v1/track",
        params={
            "writeKey": source["write_key"],
            "event": "Email Opened",
            "userId": "px",
            "messageId": message_id,
            "properties.campaign": "nov",
        },
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    stored = by_id(server.wait_for_ids(source["id"], [message_id]), message_id)
    assert stored["event"] == "Email Opened" and stored["properties"] == {"campaign": "nov"}
    assert server.http.get("/pixel/v1/track", params={"writeKey": "bad"}).status_code == 401


def test_clock_skew_correction_and_future_clamp(server, source) -> None:
    skewed, future, old = mid(), mid(), mid()
    # The device clock runs 1 hour ahead: sentAt and timestamp both carry the skew.
    batch = {
        "sentAt": "2030-01-01T01:00:00.000Z",
        "batch": [
            {
                "type": "track",
                "event": "skew",
                "userId": "u",
                "messageId": skewed,
                "timestamp": "2030-01-01T00:59:00.000Z",
            },
        ],
    }
    assert post(server, "/v1/batch", batch, source["write_key"]).status_code == 200
    far = {"event": "future", "userId": "u", "messageId": future, "timestamp": "2099-01-01T00:00:00Z"}
    assert post(server, "/v1/track", far, source["write_key"]).status_code == 200
    history = {
        "batch": [
            {
                "type": "track",
                "event": "old",
                "userId": "u",
                "messageId": old,
                "timestamp": "2001-02-03T04:05:06Z",
            }
        ]
    }
    assert post(server, "/v1/import", history, source["write_key"]).status_code == 200
    events = server.wait_for_ids(source["id"], [skewed, future, old])
    corrected = by_id(events, skewed)
    lag = _seconds(corrected["receivedAt"]) - _seconds(corrected["timestamp"])
    assert 59 <= lag <= 61, lag  # one minute before it was sent, on the server's clock
    assert corrected["originalTimestamp"] == "2030-01-01T00:59:00.000Z"
    clamped = by_id(events, future)
    assert clamped["timestamp"] == clamped["receivedAt"] and clamped["enrichment"]["timestampClamped"]
    assert by_id(events, old)["timestamp"] == "2001-02-03T04:05:06.000Z"


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_enrichment_user_agent_geo_campaign_referrer(server, source) -> None:
    message_id = mid()
    event = {
        "event": "Viewed",
        "userId": "u",
        "messageId": message_id,
        "context": {
            "ip": "81.2.69.142",
            "userAgent": CHROME_UA,
            "page": {
                "url": "https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=bf&gclid=G1",
                "referrer": "https://www.google.com/search?q=x",
            },
        },
    }
    assert post(server, "/v1/track", event, source["write_key"]).status_code == 200
    enrichment = by_id(server.wait_for_ids(source["id"], [message_id]), message_id)["enrichment"]
    assert (
        enrichment["userAgent"]["browser"] == "Chrome" and enrichment["userAgent"]["device_type"] == "desktop"
    )
    assert enrichment["geo"]["country"] == "GB" and enrichment["geo"]["city"] == "London"
    assert enrichment["campaign"]["source"] == "news" and enrichment["campaign"]["campaign"] == "bf"
    assert enrichment["campaign"]["id"] == "G1" and enrichment["campaign"]["id_type"] == "gclid"
    assert enrichment["referrer"] == {"domain": "google.com", "medium": "email"}
    assert enrichment["isBot"] is False


def test_bots_are_stored_and_flagged(server, source) -> None:
    message_id = mid()
    # a browser transport (Origin header): the User-Agent header is the end user's
    headers = {
        "User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Origin": "https://shop.example",
    }
    assert (
        post(
            server,
            "/v1/page",
            {"anonymousId": "crawler", "messageId": message_id},
            source["write_key"],
            headers=headers,
        ).status_code
        == 200
    )
    assert by_id(server.wait_for_ids(source["id"], [message_id]), message_id)["enrichment"]["isBot"] is True


@pytest.mark.parametrize(
    ("policy", "expected"), [("keep", "2001:db8:1234:5678::1"), ("truncate", "2001:db8:1234::"), ("drop", "")]
)
def test_ip_policy_applies_before_storage(server, policy, expected) -> None:
    src = server.create_source(f"ip-{policy}", ip_policy=policy)
    message_id = mid()
    body = {"event": "x", "userId": "u", "messageId": message_id, "context": {"ip": "2001:db8:1234:5678::1"}}
    assert post(server, "/v1/track", body, src["write_key"]).status_code == 200
    stored = by_id(server.wait_for_ids(src["id"], [message_id]), message_id)
    assert stored["enrichment"]["ip"] == expected
    assert stored["context"].get("ip", "") == expected
    if policy != "keep":
        assert "5678" not in str(stored)


def test_spoofed_forwarded_for_is_ignored_without_trusted_proxies(server, source) -> None:
    message_id = mid()
    response = post(
        server,
        "/v1/track",
        {"event": "x", "anonymousId": "a", "messageId": message_id},
        source["write_key"],
        headers={"X-Forwarded-For": "81.2.69.142"},
    )
    assert response.status_code == 200
    stored = by_id(server.wait_for_ids(source["id"], [message_id]), message_id)
    assert stored["enrichment"]["ip"] == "127.0.0.1" and stored["enrichment"]["geo"]["country"] == ""


def test_rate_limit_answers_429_with_retry_after(server) -> None:
    src = server.create_source("limited", rate_limit_per_s=5)
    responses = [post(server, "/v1/t", {"event": "x", "userId": "u"}, src["write_key"]) for _ in range(30)]
    assert responses[0].status_code == 200
    limited = [r for r in responses if r.status_code == 429]
    assert limited, "30 requests in a burst should exceed 5 per second"
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert limited[0].json()["error"]["code"] == "rate_limited"


def test_same_message_id_is_stored_once(server) -> None:
    src = server.create_source("dedupe")
    message_id = mid()
    for _ in range(3):
        assert (
            post(
                server, "/v1/track", {"event": "x", "userId": "u", "messageId": message_id}, src["write_key"]
            ).status_code
            == 200
        )
    other = server.create_source("dedupe-other")
    assert (
        post(
            server, "/v1/track", {"event": "x", "userId": "u", "messageId": message_id}, other["write_key"]
        ).status_code
        == 200
    )
    time.sleep(1.5)
    assert [e["messageId"] for e in server.events(src["id"])] == [message_id]
    assert [e["messageId"] for e in server.events(other["id"])] == [message_id]  # per source, not global


def test_debugger_cursor_walks_every_event_once(server) -> None:
    src = server.create_source("paging")
    ids = [mid() for _ in range(57)]
    batch = {"batch": [{"type": "track", "event": "p", "userId": "u", "messageId": i} for i in ids]}
    assert post(server, "/v1/batch", batch, src["write_key"]).status_code == 200
    server.wait_for_events(src["id"], 57)
    seen = [e["messageId"] for e in server.events(src["id"], limit=10)]
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    first = server.admin("GET", f"/sources/{src['id']}/events", params={"limit": 10}).json()
    assert first["next_cursor"] and len(first["data"]) == 10
    assert server.admin("GET", f"/sources/{src['id']}/events", params={"limit": 5000}).status_code == 400
    assert server.admin("GET", f"/sources/{src['id']}/events", params={"cursor": "!!"}).status_code == 400
