"""The intake on a real spool: what each item becomes (row, rejection or counted drop) and the raw
copy that is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.enrich.geo import GeoLookup
from collector.ingest import Ingestor, Intake
from collector.metrics import Metrics
from collector.pipeline import Draft, RequestFacts, Step, build_steps
from collector.records import EVENT, REJECTED, decode
from collector.sources import Source
from collector.spool import Position, Spool


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path, 1 << 24)
    yield spool
    spool.close()


def rows(spool: Spool) -> list[tuple[bytes, dict[str, Any]]]:
    records = [decode(r.payload) for r in spool.read(Position(1, 0), 10_000, 1 << 24)]
    return [(r.kind, orjson.loads(r.row)) for r in records]


def intake(spool: Spool, body: bytes, policy: str = "keep", steps: list[Step] | None = None) -> Any:
    metrics = Metrics()
    ingestor = Ingestor(spool, steps if steps is not None else build_steps(GeoLookup()), metrics)
    facts = RequestFacts("10.1.2.3", "curl/8", Source("src", "key", ip_policy=policy))
    path_type = None if b'"batch"' in body else "track"
    return ingestor.intake(Intake(orjson.loads(body), facts, path_type, body)), metrics


async def test_a_single_event_keeps_its_request_bytes_as_the_raw_copy(spool: Spool) -> None:
    body = b'{"event":"E",   "userId":"u","context":{"ip":"1.2.3.4"},"properties":{"n":1}}'
    pending, _ = intake(spool, body)
    assert (await pending).accepted == 1
    [(kind, row)] = rows(spool)
    assert kind == EVENT and row["raw"] == body.decode() and row["ip"] == "1.2.3.4"


async def test_a_json_escaped_ip_is_truncated_in_the_raw_copy_too(spool: Spool) -> None:
    body = b'{"event":"E","userId":"u","context":{"ip":"81.2.69.\\u0031\\u0034\\u0032"}}'
    pending, _ = intake(spool, body, "truncate")
    await pending
    [(_, row)] = rows(spool)
    assert row["ip"] == "81.2.69.0" and "142" not in row["raw"] and "\\u0031" not in row["raw"]
    assert orjson.loads(row["raw"])["context"]["ip"] == orjson.loads(row["context"])["ip"] == "81.2.69.0"


async def test_dropping_an_ip_of_e_leaves_every_other_e_in_the_raw_copy(spool: Spool) -> None:
    item = {"type": "track", "event": "Seen", "userId": "eve", "context": {"ip": "e", "locale": "en"}}
    pending, _ = intake(spool, orjson.dumps({"batch": [item]}), "drop")
    await pending
    [(_, row)] = rows(spool)
    raw = orjson.loads(row["raw"])
    assert raw == {**item, "context": {"locale": "en"}} and "ip" not in row


async def test_drops_are_counted_by_reason_and_never_stored(spool: Spool) -> None:
    steps = [*build_steps(GeoLookup()), Step("suppress", lambda d: d.drop("suppressed"))]
    body = orjson.dumps({"batch": [{"type": "track", "event": "E", "userId": "u"}] * 3})
    pending, metrics = intake(spool, body, steps=steps)
    verdict = await pending
    assert verdict.body() == {"success": True} and verdict.accepted == 0
    assert metrics.value("magpie_events_dropped_total", "src", reason="suppressed") == 3
    assert 'magpie_events_dropped_total{reason="suppressed",source="src"} 3' in metrics.render()
    assert rows(spool) == []


async def test_an_unserialisable_row_is_a_rejection_of_that_item_only(spool: Spool) -> None:
    def huge(draft: Draft) -> Draft:
        if draft.event.message["event"] == "Bad":
            draft.row["screen_width"] = 2**70  # orjson refuses integers beyond 64 bits
        return draft

    items = [{"type": "track", "event": name, "userId": "u", "messageId": name} for name in ("Ok", "Bad")]
    pending, _ = intake(spool, orjson.dumps({"batch": items}), steps=[Step("huge", huge)])
    verdict = await pending
    assert verdict.rejected == [{"index": 1, "messageId": "Bad", "reason": "unserializable"}]
    kinds = [(kind, row.get("message_id")) for kind, row in rows(spool)]
    assert kinds == [(EVENT, "Ok"), (REJECTED, "Bad")]
