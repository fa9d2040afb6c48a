"""Export: the whole person in one document, streamed in bounded memory. Retention: a source's
retention_days expires its events; rejected events go after MAGPIE_REJECTED_RETENTION_DAYS."""

from __future__ import annotations

import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.db import Database
from activation.identity.identifiers import Identifier
from activation.privacy import requests
from activation.privacy.export import document_path, privacy_export
from activation.privacy.person import Person
from activation.privacy.requests import PrivacyRequest
from activation.privacy.retention import expire_rejected_events, materialize_events_ttl
from tests.activation.privacy.conftest import person_values, seed

BULK = 100_000


async def _export(ch: Client, ctx: dict[str, Any], identifier: Identifier) -> dict[str, Any]:
    named = Person(frozenset(), frozenset({identifier}))
    request = PrivacyRequest(
        requests.new_id("exp"),
        "export",
        "",
        "pending",
        requests.person_json(named),
        (),
        "tok",
        datetime.now(UTC),
    )
    await requests.save(Database(ch), request)
    assert await privacy_export(ctx, request.id) == "completed"
    return {"id": request.id, "path": document_path(ctx["privacy"], request.id)}


async def test_export_holds_everything_about_the_person(ch: Client, ctx: dict[str, Any]) -> None:
    ann = person_values("exp")
    seed(ch, ann)
    done = await _export(ch, ctx, Identifier("email", ann.email))
    document = orjson.loads(done["path"].read_bytes())
    assert document["status"] == "completed" and document["id"] == done["id"]
    assert ann.profile_id in document["person"]["profile_ids"]
    assert {t["trait"] for t in document["traits"]} >= {"email", "name"}  # the absorbed profile's too
    assert {i["value"] for i in document["identities"]} >= {ann.email, ann.user_id, ann.anonymous_id}
    assert document["merge_ledger"][0]["merged_profile_ids"] == [ann.absorbed_profile_id]
    assert document["computed_traits"][0]["name"] == "orders"
    assert document["audience_membership"][0]["change"] == "entered"
    assert document["destinations"][0]["destination_id"] == "dst_privacy_gone"
    assert len(document["events"]) == 3 and document["events"][0]["traits"]
    assert "consent" in document and document["profiles"][0]["event_count"] == 3


async def test_export_of_100k_events_streams_in_bounded_memory(ch: Client, ctx: dict[str, Any]) -> None:
    anon = f"bulk-{uuid.uuid4().hex}"
    ch.command(
        "INSERT INTO events (source_id, message_id, type, event, anonymous_id, timestamp, original_timestamp,"
        " received_at, properties, raw) SELECT 'src_bulk', concat({a:String}, toString(number)), 'track',"
        " 'Viewed', {a:String}, now64(3), now64(3), now64(3), '{\"n\": 1}', repeat('x', 200)"
        " FROM numbers({n:UInt32})",
        parameters={"a": anon, "n": BULK},
    )
    tracemalloc.start()
    done = await _export(ch, ctx, Identifier("anonymous_id", anon))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = done["path"].stat().st_size
    assert size > 50_000_000  # 100k events of ~600 bytes each
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte document"
    with done["path"].open("rb") as f:
        assert f.read(200).startswith(b'{"id":')
    ch.command("DELETE FROM events WHERE anonymous_id = {a:String}", parameters={"a": anon})


def test_a_sources_retention_days_expires_its_events_when_ttl_materialises(ch: Client) -> None:
    tag = uuid.uuid4().hex
    old = datetime.now(UTC) - timedelta(days=10)
    rows = [[f"{tag}-short", f"{tag}-1", "track", old, old, old, 7], [f"{tag}-keep", f"{tag}-2", "track", old, old, old, 0],
            [f"{tag}-long", f"{tag}-3", "track", old, old, old, 30]]  # fmt: skip
    ch.insert("events", rows, column_names=["source_id", "message_id", "type", "timestamp", "original_timestamp",
                                            "received_at", "retention_days"])  # fmt: skip
    materialize_events_ttl(ch)
    left = ch.query(
        "SELECT source_id FROM events WHERE message_id LIKE {t:String}", parameters={"t": f"{tag}-%"}
    )
    assert sorted(r[0] for r in left.result_rows) == [f"{tag}-keep", f"{tag}-long"]


async def test_rejected_events_expire_after_the_configured_days(ch: Client, ctx: dict[str, Any]) -> None:
    from dataclasses import replace

    tag = uuid.uuid4().hex
    now = datetime.now(UTC)
    rows = [
        [tag, now - timedelta(days=days), "invalid", "d", 0, f"m{days}", "{}", "i"] for days in (3, 8, 40)
    ]
    ch.insert("rejected_events", rows, column_names=["source_id", "received_at", "reason", "detail",
                                                     "batch_index", "message_id", "payload", "ingest_id"])  # fmt: skip
    ctx = {**ctx, "privacy": replace(ctx["privacy"], rejected_retention_days=7)}
    assert await expire_rejected_events(ctx) >= 2
    left = ch.query(
        "SELECT message_id FROM rejected_events WHERE source_id = {t:String}", parameters={"t": tag}
    )
    assert [r[0] for r in left.result_rows] == ["m3"]
