"""Durable acknowledgement: kill -9 mid-stream, ClickHouse outages, dedupe across restarts."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.server import ServerProcess


def _headers(write_key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def _sender(url: str, write_key: str, acked: list[str], stop: threading.Event, batch_size: int) -> None:
    """Send batches until stopped; record every messageId the server acknowledged with 200."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            ids = [str(uuid.uuid4()) for _ in range(batch_size)]
            body = {"batch": [{"type": "track", "event": "load", "userId": "u", "messageId": i} for i in ids]}
            try:
                response = client.post("/v1/batch", json=body, headers=_headers(write_key))
            except httpx.TransportError:
                continue  # the server is gone or restarting: nothing was acknowledged
            if response.status_code == 200:
                acked.extend(ids)


def _stored_ids(server: ServerProcess, source_id: str) -> list[str]:
    return [e["messageId"] for e in server.events(source_id)]


def test_kill_9_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    source = server.create_source("kill-9")
    acked: list[str] = []
    stop = threading.Event()
    senders = [
        threading.Thread(target=_sender, args=(server.url, source["write_key"], acked, stop, n))
        for n in (1, 5, 20, 50)
    ]
    for thread in senders:
        thread.start()
    time.sleep(3)
    redis_pid = _redis_pid(server)
    assert redis_pid is not None
    server.kill()
    stop.set()
    for thread in senders:
        thread.join()
    assert len(acked) > 100, "the senders should have been acknowledged before the kill"
    restarted = ServerProcess(server.data_dir).start()
    try:
        stored: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stored = _stored_ids(restarted, source["id"])
            if set(stored) >= set(acked):
                break
            time.sleep(0.5)
        missing = set(acked) - set(stored)
        assert not missing, f"{len(missing)} acknowledged events lost of {len(acked)}"
        assert len(stored) == len(set(stored)), "an event was stored twice"
    finally:
        restarted.stop()
    assert not _alive(redis_pid), "the embedded redis outlived a kill -9 of the server"


def _redis_pid(server: ServerProcess) -> int | None:
    """The embedded redis-server, as the supervisor recorded it."""
    return server.children().get("redis")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_embedded_redis_dies_with_a_killed_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    pid = _redis_pid(server)
    assert pid is not None and _alive(pid)
    server.kill()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_clickhouse_outage_spools_then_503_then_drains_exactly_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", MAGPIE_SPOOL_MAX_BYTES=str(256 * 1024)).start()
    try:
        source = server.create_source("outage")
        warm = {"event": "warm", "userId": "u", "messageId": str(uuid.uuid4())}
        assert (
            server.http.post("/v1/track", json=warm, headers=_headers(source["write_key"])).status_code == 200
        )
        server.set_clickhouse_down(True)
        # a key this collector has never seen (created sources are announced to it at once)
        cold = server.http.post("/v1/track", json=warm, headers=_headers("wk_unseen_" + uuid.uuid4().hex))
        assert cold.status_code == 503, "an unverifiable key during an outage must not be a 401"
        acked = [warm["messageId"]]
        statuses: list[int] = []
        for _ in range(200):
            ids = [str(uuid.uuid4()) for _ in range(10)]
            body = {"batch": [{"type": "track", "event": "o", "userId": "u", "messageId": i} for i in ids]}
            response = server.http.post("/v1/batch", json=body, headers=_headers(source["write_key"]))
            statuses.append(response.status_code)
            if response.status_code == 200:
                acked += ids
            else:
                assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
                assert response.json()["error"]["code"] == "spool_full"
        assert statuses[0] == 200 and 503 in statuses, "spool should fill and then refuse"
        assert server.metric("magpie_spool_depth_bytes") > 0
        retried = acked[:50]  # clients retry some acknowledged events during the outage
        body = {"batch": [{"type": "track", "event": "o", "userId": "u", "messageId": i} for i in retried]}
        server.set_clickhouse_down(False)
        deadline = time.monotonic() + 30  # the client retries until the drained spool has room again
        while (
            server.http.post("/v1/batch", json=body, headers=_headers(source["write_key"])).status_code != 200
        ):
            assert time.monotonic() < deadline, "the spool never drained after recovery"
            time.sleep(0.2)
        stored = server.wait_for_ids(source["id"], acked, timeout_s=60)
        ids = [e["messageId"] for e in stored]
        assert set(ids) == set(acked) and len(ids) == len(acked)
    finally:
        server.stop()


def test_dedupe_holds_across_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    source = server.create_source("restart")
    message_id = str(uuid.uuid4())
    body: dict[str, Any] = {"event": "once", "userId": "u", "messageId": message_id}
    assert server.http.post("/v1/track", json=body, headers=_headers(source["write_key"])).status_code == 200
    server.wait_for_ids(source["id"], [message_id])
    assert server.stop() in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "Application shutdown complete" in server.log()
    restarted = ServerProcess(server.data_dir).start()
    try:
        assert (
            restarted.http.post("/v1/track", json=body, headers=_headers(source["write_key"])).status_code
            == 200
        )
        time.sleep(1.5)
        assert _stored_ids(restarted, source["id"]) == [message_id]
    finally:
        restarted.stop()


@pytest.mark.parametrize(
    "database", ["GeoIP2-City-Test-Broken-Double-Format.mmdb", "GeoIP2-City-Test-Invalid-Node-Count.mmdb"]
)
def test_a_corrupt_geoip_database_does_not_stop_the_server(tmp_path: Path, database: str) -> None:
    from tests.server import GEOIP_DIR

    server = ServerProcess(tmp_path / "data", MAGPIE_GEOIP_CITY_DB=str(GEOIP_DIR / database)).start()
    try:
        source = server.create_source("geo")
        message_id = str(uuid.uuid4())
        body = {"event": "x", "userId": "u", "messageId": message_id, "context": {"ip": "81.2.69.142"}}
        assert (
            server.http.post("/v1/track", json=body, headers=_headers(source["write_key"])).status_code == 200
        )
        stored = server.wait_for_ids(source["id"], [message_id])
        assert [e["messageId"] for e in stored] == [message_id]
        assert stored[0]["enrichment"]["geo"]["country"] == ""
    finally:
        server.stop()
    assert "GeoIP city database" in server.log() and "geo enrichment off" in server.log()


def test_sigterm_flushes_the_spool_into_clickhouse(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", MAGPIE_FLUSH_INTERVAL_MS="5000").start()
    source = server.create_source("sigterm")
    ids = [str(uuid.uuid4()) for _ in range(500)]
    body = {"batch": [{"type": "track", "event": "bye", "userId": "u", "messageId": i} for i in ids]}
    assert server.http.post("/v1/batch", json=body, headers=_headers(source["write_key"])).status_code == 200
    server.stop()  # well before the 5 s flush interval: only the shutdown flush can store them
    spool = server.data_dir / "spool" / "web-0"  # the one web process's own spool
    checkpoint = orjson.loads((spool / "checkpoint.json").read_bytes())
    segments = sorted(spool.glob("seg-*.log"))
    assert checkpoint["intent"] is None
    assert checkpoint["position"] == [int(segments[-1].name[4:16]), segments[-1].stat().st_size]
    restarted = ServerProcess(server.data_dir, MAGPIE_FAULT_FILE=str(tmp_path / "never")).start()
    try:
        assert len(restarted.wait_for_ids(source["id"], ids, timeout_s=5)) == 500
    finally:
        restarted.stop()


CONTROL = "".join(chr(c) for c in [*range(0x20), 0x7F])


def test_control_characters_in_a_message_id_are_stored_and_block_nothing(server: ServerProcess) -> None:
    """A NUL in a messageId used to break the spool record and stop all storage for good."""
    source = server.create_source("control-characters")
    tag = uuid.uuid4().hex
    ids = [f"a\0b-{tag}", f"all{CONTROL}-{tag}", *(f"{c}-{tag}" for c in CONTROL)]
    for message_id in ids:
        body = {
            "event": "e\0",
            "userId": f"u{CONTROL}",
            "messageId": message_id,
            "properties": {"k\0": "\x01"},
        }
        response = server.http.post("/v1/track", json=body, headers=_headers(source["write_key"]))
        assert response.status_code == 200, response.text
    pixel_id = f"p\0x-{tag}"
    params = {"writeKey": source["write_key"], "event": "px", "userId": "u", "messageId": pixel_id}
    assert server.http.get("/pixel/v1/track", params=params).status_code == 200
    normal = str(uuid.uuid4())
    body = {"event": "after", "userId": "u", "messageId": normal}
    assert server.http.post("/v1/track", json=body, headers=_headers(source["write_key"])).status_code == 200
    wanted = [*ids, pixel_id, normal]
    stored = server.wait_for_ids(source["id"], wanted, timeout_s=20)
    assert sorted(e["messageId"] for e in stored) == sorted(wanted)
    assert {e["userId"] for e in stored if e["messageId"] in ids} == {f"u{CONTROL}"}
    assert server.metric("magpie_spool_records_quarantined_total") == 0
    assert server.http.get("/readyz").status_code == 200
