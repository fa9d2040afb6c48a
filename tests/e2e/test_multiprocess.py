"""Server mode as separate processes: two `magpie collector`, one `magpie api` and one `magpie worker`
against one `magpie clickhouse` and one redis-server.

- events to both collectors, one collector kill -9'd under load and restarted: every acknowledged
  event is stored exactly once;
- a source disabled through the API stops working on both collectors within a second (each caches
  write keys and is told through Redis);
- stitching and an audience computed by the worker give the same answers as `magpie serve`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest

from magpie.embedded_redis import EmbeddedRedis
from tests.processes import MagpieProcess, StoreProcess, server_mode_env
from tests.server import ADMIN_TOKEN, ServerProcess

pytestmark = pytest.mark.timeout(300)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Deployment:
    store: StoreProcess
    api: MagpieProcess
    collectors: list[MagpieProcess]
    worker: MagpieProcess

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.api.url + "/admin/v1" + path, headers=AUTH, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("split")
    store = StoreProcess(root / "store").start()
    redis = EmbeddedRedis(root / "redis")
    redis.start()
    env = server_mode_env(store, redis.url)  # type: ignore[arg-type]
    api = MagpieProcess("api", root / "api", env).start()  # migrates and bootstraps first
    collectors = [MagpieProcess("collector", root / f"collector-{i}", env).start() for i in range(2)]
    worker = MagpieProcess("worker", root / "worker", env).start()
    yield Deployment(store, api, collectors, worker)  # type: ignore[arg-type]
    for process in [*collectors, worker, api]:
        process.stop()
    redis.stop()
    store.stop()


def _source(deployment: Deployment, name: str) -> dict[str, Any]:
    response = deployment.admin("POST", "/sources", json={"name": name, "rate_limit_per_s": 0})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _send_until(url: str, key: str, stop: threading.Event, acked: list[str]) -> None:
    with httpx.Client(base_url=url, auth=(key, ""), timeout=10) as client:
        while not stop.is_set():
            ids = [str(uuid.uuid4()) for _ in range(20)]
            batch = {
                "batch": [{"type": "track", "event": "load", "userId": "u", "messageId": i} for i in ids]
            }
            try:
                if client.post("/v1/batch", json=batch).status_code == 200:
                    acked.extend(ids)
            except httpx.TransportError:
                time.sleep(0.05)  # the killed collector: nothing acknowledged, try again later


def _stored_counts(store: StoreProcess, source_id: str) -> dict[str, int]:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=store.port, database="magpie")
    rows = client.query(
        "SELECT message_id, count() FROM events WHERE source_id = {s:String} GROUP BY message_id",
        parameters={"s": source_id},
    ).result_rows
    return {str(m): int(c) for m, c in rows}


def test_kill_9_of_one_collector_under_load_loses_and_doubles_nothing(deployment: Deployment) -> None:
    source = _source(deployment, "split-load")
    stop, acked = threading.Event(), [[], []]  # type: ignore[var-annotated]
    threads = [
        threading.Thread(target=_send_until, args=(c.url, source["write_key"], stop, acked[i]))
        for i, c in enumerate(deployment.collectors)
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)
    victim = deployment.collectors[0]
    victim.kill()
    time.sleep(1)
    victim.start()  # same data dir: its spool replays what it acknowledged
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    every = acked[0] + acked[1]
    assert len(acked[0]) > 0 and len(acked[1]) > 0
    deadline = time.monotonic() + 30
    while True:
        counts = _stored_counts(deployment.store, source["id"])
        if set(counts) >= set(every) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    missing = set(every) - set(counts)
    doubled = {m for m, c in counts.items() if c > 1}
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert not doubled, f"{len(doubled)} events stored twice"


def test_disabling_a_source_takes_effect_on_every_collector_within_a_second(deployment: Deployment) -> None:
    source = _source(deployment, "split-disable")
    key = source["write_key"]
    body = {"event": "x", "userId": "u"}
    for collector in deployment.collectors:
        assert httpx.post(collector.url + "/v1/track", json=body, auth=(key, "")).status_code == 200
    assert deployment.admin("PATCH", f"/sources/{source['id']}", json={"enabled": False}).status_code == 200
    time.sleep(1.0)
    for collector in deployment.collectors:
        assert httpx.post(collector.url + "/v1/track", json=body, auth=(key, "")).status_code == 401
    rotated = deployment.admin("PATCH", f"/sources/{source['id']}", json={"enabled": True})
    assert rotated.status_code == 200
    new_key = deployment.admin("POST", f"/sources/{source['id']}/rotate-key").json()["write_key"]
    time.sleep(1.0)
    for collector in deployment.collectors:
        assert httpx.post(collector.url + "/v1/track", json=body, auth=(key, "")).status_code == 401
        assert httpx.post(collector.url + "/v1/track", json=body, auth=(new_key, "")).status_code == 200


def _scenario(send: list[str], write_key: str, ns: str) -> None:
    """An anonymous visitor on one collector, identified on the other, then two orders."""
    anon, user = f"anon-{ns}", f"user-{ns}"
    steps: list[dict[str, Any]] = [
        {"type": "page", "name": "Home", "anonymousId": anon},
        {"type": "identify", "anonymousId": anon, "userId": user, "traits": {"email": f"{ns}@example.com"}},
        {"type": "track", "event": "Order Completed", "userId": user, "properties": {"revenue": 10}},
        {"type": "track", "event": "Order Completed", "anonymousId": anon, "properties": {"revenue": 5}},
    ]
    for index, step in enumerate(steps):
        url = send[index % len(send)]
        response = httpx.post(url + "/v1/batch", json={"batch": [step]}, auth=(write_key, ""))
        assert response.status_code == 200, response.text


def _profile_answer(api_url: str, ns: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{api_url}/v1/profiles/user_id:user-{ns}", headers=AUTH)
        if response.status_code == 200:
            body = response.json()
            ids = {(i["type"], i["value"]) for i in body.get("identities", [])}
            computed = body.get("computed_traits", {})
            if ("anonymous_id", f"anon-{ns}") in ids and computed.get("event_count") == 4:
                return {
                    "identity_types": sorted(t for t, _ in ids),
                    "event_count": computed.get("event_count"),
                    "lifetime_revenue": computed.get("lifetime_revenue"),
                    "email_domain": body["traits"]["email"]["value"].split("@")[-1],
                }
        assert time.monotonic() < deadline, f"profile not stitched: {response.text}"
        time.sleep(0.5)


def test_stitching_matches_the_all_in_one_server(deployment: Deployment, tmp_path: Path) -> None:
    source = _source(deployment, "split-stitch")
    ns = uuid.uuid4().hex[:8]
    _scenario([c.url for c in deployment.collectors], source["write_key"], ns)
    split = _profile_answer(deployment.api.url, ns)
    server = ServerProcess(tmp_path / "serve").start()
    try:
        other = server.create_source("serve-stitch")
        _scenario([server.url], other["write_key"], ns)
        together = _profile_answer(server.url, ns)
    finally:
        server.stop()
    assert split == together
    assert split["event_count"] == 4 and split["lifetime_revenue"] == 15
