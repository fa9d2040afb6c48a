"""Privacy through the real server: a browser-shaped and a server-SDK-shaped call stitch one person;
an export holds them; a deletion by email completes with a receipt and leaves no trace in any table
or the Redis keyspace; later events with the same identifiers are suppressed; the audit keeps hashes."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson
import redis.asyncio as aioredis
from clickhouse_connect import get_client

from magpie.embedded_redis import socket_path
from tests.activation.privacy.conftest import KNOWN_TABLES
from tests.activation.privacy.traces import redis_traces, table_traces
from tests.server import ServerProcess


def _until(check: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while (result := check()) is None or result is False:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)
    return result


def _document(server: ServerProcess, export_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = server.admin("GET", f"/privacy/exports/{export_id}").json()
    return body if body.get("status") == "completed" and "events" in body else None


def _done(server: ServerProcess, path: str) -> dict[str, Any] | None:
    body = server.admin("GET", path).json()
    return body if body.get("status") in ("completed", "failed") else None


async def test_delete_a_stitched_person_by_email_leaves_no_trace(server: ServerProcess) -> None:
    ns = uuid.uuid4().hex[:10]
    email, user, anon = f"ann.{ns}@example.com", f"user-{ns}", f"anon-{ns}"
    source = server.create_source(f"privacy-{ns}")
    browser = {"writeKey": source["write_key"], "type": "identify", "anonymousId": anon, "userId": user,
               "traits": {"email": email}, "context": {"page": {"url": "https://shop.example/"}}}  # fmt: skip
    r = server.http.post("/v1/i", content=orjson.dumps(browser), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    basic = {"Authorization": "Basic " + base64.b64encode(f"{source['write_key']}:".encode()).decode()}
    sdk = {
        "batch": [{"type": "track", "event": "Order Completed", "userId": user, "properties": {"total": 5}}]
    }
    assert server.http.post("/v1/batch", json=sdk, headers=basic).status_code == 200
    assert len(server.wait_for_events(source["id"], 2)) == 2
    profile = _until(
        lambda: server.http.get(f"/v1/profiles/email:{email}", headers=server.auth).status_code == 200
    )
    assert profile

    export = server.admin("POST", "/privacy/exports", json={"identifier": {"type": "email", "value": email}})
    assert export.status_code == 202, export.text
    document = _until(lambda: _document(server, export.json()["id"]))
    assert {e["message_id"] for e in document["events"]} and len(document["events"]) == 2
    assert {i["value"] for i in document["identities"]} >= {email, user, anon}

    bad = server.admin("POST", "/privacy/deletions", json={"identifiers": [{"type": "email", "value": "x"}]})
    assert bad.status_code == 400 and "identifiers[0]" in bad.json()["error"]["fields"]
    body = {"identifiers": [{"type": "email", "value": email.upper()}], "mode": "delete_and_suppress"}
    created = server.admin("POST", "/privacy/deletions", json=body)
    assert created.status_code == 202 and created.json()["status"] == "pending", created.text
    done = _until(lambda: _done(server, f"/privacy/deletions/{created.json()['id']}"))
    assert done["status"] == "completed", done
    receipt = done["receipt"]
    assert {c["type"] for c in receipt["identifiers_covered"]} >= {"email", "user_id", "anonymous_id"}
    assert receipt["rows_removed"]["events"] == 2 and receipt["rows_removed"]["identity_map"] >= 3
    assert done["requested_by"] == "tok_bootstrap" and email not in orjson.dumps(done).decode()

    ch = get_client(host="127.0.0.1", port=int(server.env["MAGPIE_CLICKHOUSE_PORT"]), database="magpie")
    values = [email, user, anon]
    left = table_traces(ch, values, KNOWN_TABLES)
    assert left == [], left
    redis = aioredis.Redis(unix_socket_path=str(socket_path(server.data_dir)))
    assert await redis_traces(redis, values) == []
    await redis.aclose()

    again = {"batch": [{"type": "track", "event": "Back", "userId": user, "messageId": f"again-{ns}"}]}
    assert server.http.post("/v1/batch", json=again, headers=basic).status_code == 200
    time.sleep(1.5)
    assert server.events(source["id"]) == []  # suppressed at the door
    audit = server.admin("GET", "/privacy/audit").json()["data"]
    mine = [a for a in audit if a["request_id"] == created.json()["id"]]
    assert {a["outcome"] for a in mine} == {"requested", "completed"}
    assert all(len(h) == 64 for a in mine for h in a["identifier_hashes"]) and email not in str(audit)
