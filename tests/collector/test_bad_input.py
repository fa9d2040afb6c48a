"""Bad input through the real server: the bad item is refused with its reason (in the 200 body and
in rejected_events), the good items of the same batch are stored, and nothing becomes a 500."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import orjson
import pytest

from tests.collector.test_tracking_api import basic, by_id
from tests.server import ServerProcess


def mid() -> str:
    return str(uuid.uuid4())


def good(message_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Good", "userId": "u", "messageId": message_id, **extra}


def nested(levels: int, leaf: bytes = b"1") -> bytes:
    return b'{"a":' * levels + leaf + b"}" * levels


def post_raw(server: ServerProcess, write_key: str, body: bytes, path: str = "/v1/batch") -> Any:
    response = server.http.post(path, content=body, headers=basic(write_key))
    assert response.status_code == 200, response.text
    return response.json()


def wait_rejected(server: ServerProcess, source_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        rejected = server.rejected(source_id)
        if len(rejected) >= count or time.monotonic() > deadline:
            return rejected
        time.sleep(0.1)


def assert_only_bad_refused(server: ServerProcess, body: bytes, bad_id: str, reason: str) -> dict[str, Any]:
    """POST `body` (a batch of two good items around `bad_id`) and check every outcome."""
    src = server.create_source(f"bad-{reason}-{bad_id[:8]}")
    answer = post_raw(server, src["write_key"], body)
    assert answer["rejected"] == [{"index": 1, "messageId": bad_id, "reason": reason}]
    stored = server.wait_for_events(src["id"], 2)
    assert sorted(e["event"] for e in stored) == ["Good", "Good"]
    [rejected] = wait_rejected(server, src["id"], 1)
    assert rejected["reason"] == reason and rejected["message_id"] == bad_id
    return rejected


def batch_around(bad: bytes, extra_top: bytes = b"") -> bytes:
    first, last = orjson.dumps(good(mid())), orjson.dumps(good(mid()))
    return b'{"batch":[' + first + b"," + bad + b"," + last + b"]" + extra_top + b"}"


def bad_item(message_id: str, properties: bytes) -> bytes:
    head = b'{"type":"track","event":"Bad","userId":"u","messageId":"' + message_id.encode() + b'"'
    return head + b',"properties":' + properties + b"}"


@pytest.mark.parametrize("levels", [30, 300])
def test_a_deeply_nested_item_is_refused_alone(server: ServerProcess, levels: int) -> None:
    bad_id = mid()
    rejected = assert_only_bad_refused(
        server, batch_around(bad_item(bad_id, nested(levels))), bad_id, "too_deep"
    )
    assert rejected["payload"].startswith('{"type":"track","event":"Bad"')  # a pruned copy is kept


def test_nine_hundred_levels_with_nan_take_the_lenient_path_without_recursion(server: ServerProcess) -> None:
    bad_id = mid()
    body = batch_around(bad_item(bad_id, nested(900, b"NaN")))
    assert_only_bad_refused(server, body, bad_id, "too_deep")


def test_a_huge_integer_next_to_nan_is_a_number_and_the_batch_is_stored(server: ServerProcess) -> None:
    src = server.create_source("big-int")
    ids = [mid(), mid()]
    body = (
        b'{"batch":['
        + bad_item(ids[0], b'{"big": 123456789012345678901234567890, "nan": NaN, "ok": 18446744073709551615}')
        + b","
        + bad_item(ids[1], b'{"name": "lone \\ud800 surrogate", "bytes": "\xff"}')
        + b"]}"
    )
    assert post_raw(server, src["write_key"], body) == {"success": True}
    events = server.wait_for_ids(src["id"], ids)
    assert by_id(events, ids[0])["properties"] == {
        "big": 1.2345678901234568e29,  # beyond 64 bits: the nearest double (README's rule)
        "nan": None,
        "ok": 18446744073709551615,  # inside 64 bits: exact
    }
    assert by_id(events, ids[1])["properties"] == {"name": "lone \ufffd surrogate", "bytes": "\ufffd"}


def test_beyond_1024_levels_the_request_is_a_400_not_a_500(server: ServerProcess) -> None:
    src = server.create_source("too-deep-request")
    response = server.http.post(
        "/v1/batch", content=batch_around(nested(1100, b"NaN")), headers=basic(src["write_key"])
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_deep"


def test_a_deep_batch_context_is_refused_per_item_and_an_overriding_item_is_stored(
    server: ServerProcess,
) -> None:
    src = server.create_source("deep-context")
    plain, overriding = mid(), mid()
    context = b',"context":{"page":{"url":"https://x.example/"},"deep":' + nested(300) + b"}"
    items = [good(plain), good(overriding, context={"deep": "mine"})]
    body = b'{"batch":' + orjson.dumps(items) + context + b"}"
    answer = post_raw(server, src["write_key"], body)
    assert answer["rejected"] == [{"index": 0, "messageId": plain, "reason": "too_deep"}]
    [stored] = server.wait_for_ids(src["id"], [overriding])
    assert stored["context"]["deep"] == "mine" and stored["context"]["page"]["url"] == "https://x.example/"
    assert [r["reason"] for r in wait_rejected(server, src["id"], 1)] == ["too_deep"]


def test_batch_defaults_count_towards_each_events_32_kb_and_key_limits(server: ServerProcess) -> None:
    src = server.create_source("merged-limits")
    big_context = {"page": {"title": "x" * 114_000}}
    ids = [mid() for _ in range(200)]
    body = orjson.dumps({"context": big_context, "batch": [good(i) for i in ids]})
    assert 114_000 < len(body) < 140_000
    answer = post_raw(server, src["write_key"], body)
    assert {r["reason"] for r in answer["rejected"]} == {"event_too_large"} and len(answer["rejected"]) == 200
    assert [r["messageId"] for r in answer["rejected"]] == ids

    keys_ok, keys_over = mid(), mid()
    many = {"integrations": {f"D{i}": True for i in range(1990)}}  # ~26 KB merged: under 32 KB
    items = [good(keys_ok), good(keys_over, properties={f"p{i}": i for i in range(20)})]
    answer = post_raw(server, src["write_key"], orjson.dumps({**many, "batch": items}))
    assert answer["rejected"] == [{"index": 1, "messageId": keys_over, "reason": "too_many_keys"}]
    [stored] = server.wait_for_ids(src["id"], [keys_ok])
    assert len(stored["integrations"]) == 1990
    assert len(wait_rejected(server, src["id"], 201)) == 201


def test_the_2501st_item_is_refused_with_its_message_id(server: ServerProcess) -> None:
    src = server.create_source("batch-limit")
    ids = [mid() for _ in range(2501)]
    body = orjson.dumps({"batch": [{"type": "t", "event": "e", "userId": "u", "messageId": i} for i in ids]})
    answer = post_raw(server, src["write_key"], body)
    assert answer["rejected"] == [{"index": 2500, "messageId": ids[-1], "reason": "batch_limit_exceeded"}]
    [rejected] = wait_rejected(server, src["id"], 1)
    assert rejected["message_id"] == ids[-1] and rejected["batch_index"] == 2500


def test_far_future_and_epoch_zero_timestamps_are_stored_and_flagged(server: ServerProcess) -> None:
    src = server.create_source("timestamps")
    year_9999, zero, huge_number = mid(), mid(), mid()
    for message_id, stamp in ((year_9999, "9999-12-31T23:59:59Z"), (zero, 0), (huge_number, 1e300)):
        body = orjson.dumps(good(message_id, timestamp=stamp))
        assert post_raw(server, src["write_key"], body, "/v1/track") == {"success": True}
    in_9999, far_skew = mid(), mid()
    batch = {
        "sentAt": "2299-12-31T00:00:00Z",  # so far ahead that correcting 2001 would land before 1970
        "batch": [
            good(in_9999, timestamp="9999-12-31T23:59:00Z", sentAt="9999-12-31T23:59:59Z"),
            good(far_skew, timestamp="2001-01-01T00:00:00Z"),
        ],
    }
    assert post_raw(server, src["write_key"], orjson.dumps(batch)) == {"success": True}
    events = server.wait_for_ids(src["id"], [year_9999, zero, huge_number, in_9999, far_skew])
    for message_id in (year_9999, zero, huge_number):
        event = by_id(events, message_id)
        assert event["enrichment"]["timestampClamped"] is True, event
        assert event["timestamp"] == event["receivedAt"] == event["originalTimestamp"], event
    corrected = by_id(events, in_9999)  # a device clock in 9999 is still corrected by its sentAt
    lag = _seconds(corrected["receivedAt"]) - _seconds(corrected["timestamp"])
    assert 58 <= lag <= 60 and corrected["enrichment"]["timestampClamped"] is True
    skewed = by_id(events, far_skew)
    assert skewed["timestamp"] == "2001-01-01T00:00:00.000Z" and skewed["enrichment"]["timestampClamped"]


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_bot_flag_is_about_the_end_user_not_the_http_client(server: ServerProcess) -> None:
    src = server.create_source("bots")
    server_call, browser_bot, claimed_bot = mid(), mid(), mid()
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    for agent in ("curl/8.5.0", "python-requests/2.32.3", "Python-urllib/3.12"):
        response = server.http.post(
            "/v1/track",
            json=good(server_call if agent.startswith("curl") else mid()),
            headers={**basic(src["write_key"]), "User-Agent": agent},
        )
        assert response.status_code == 200
    headers = {**basic(src["write_key"]), "User-Agent": googlebot, "Origin": "https://shop.example"}
    assert server.http.post("/v1/page", json=good(browser_bot), headers=headers).status_code == 200
    in_context = good(claimed_bot, context={"userAgent": googlebot})
    headers = {**basic(src["write_key"]), "User-Agent": "curl/8.5.0"}
    assert server.http.post("/v1/track", json=in_context, headers=headers).status_code == 200
    events = server.wait_for_events(src["id"], 5)
    assert [e["enrichment"]["isBot"] for e in events].count(True) == 2
    assert by_id(events, server_call)["enrichment"]["isBot"] is False
    assert by_id(events, server_call)["enrichment"]["userAgent"]["browser"] == ""
    assert by_id(events, browser_bot)["enrichment"]["isBot"] is True
    assert by_id(events, claimed_bot)["enrichment"]["isBot"] is True
