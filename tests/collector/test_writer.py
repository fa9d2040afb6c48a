"""The writer against real chdb and a real Redis: quarantine, supervision, deduplication tokens."""

from __future__ import annotations

import asyncio
import shutil
import struct
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette

from clickhouse.client import ClickHouseTarget, connect
from collector import writer as writer_module
from collector.app import Collector
from collector.metrics import Metrics
from collector.quarantine import read_quarantine
from collector.records import EVENT, encode
from collector.settings import CollectorSettings
from collector.spool import Position, Spool
from collector.store import EventStore, data_error_code
from collector.writer import Writer, WriterSupervisor
from magpie.health import health_routes

CONTROL = "".join(chr(c) for c in [*range(0x20), 0x7F])


def _row(source_id: str, message_id: str, ingest_id: str) -> bytes:
    moment = "2026-01-01T00:00:00.000Z"
    return orjson.dumps(
        {
            "source_id": source_id,
            "message_id": message_id,
            "type": "track",
            "event": "e",
            "timestamp": moment,
            "original_timestamp": moment,
            "received_at": moment,
            "ingest_id": ingest_id,
        }
    )


def _event(source_id: str, message_id: str, ingest_id: str = "") -> bytes:
    ingest_id = ingest_id or uuid.uuid4().hex
    return encode(EVENT, source_id, message_id, ingest_id, _row(source_id, message_id, ingest_id))


def _stored(ch: Client, source_id: str) -> list[str]:
    sql = "SELECT message_id FROM events WHERE source_id = {s:String} ORDER BY message_id"
    return [row[0] for row in ch.query(sql, parameters={"s": source_id}).result_rows]


async def _drain(writer: Writer) -> None:
    while await writer.drain_once():
        pass


@pytest.fixture
def store(ch_target: ClickHouseTarget) -> EventStore:
    return EventStore(connect(ch_target))  # the writer's own client, not the test's `ch`


async def test_an_undecodable_record_is_quarantined_and_never_blocks_the_rest(
    tmp_path: Path, ch: Client, store: EventStore, redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    source = uuid.uuid4().hex
    spool = Spool(tmp_path / "spool", 1 << 20)
    first, junk = _event(source, "m0"), b"\x09 this is not a record"
    await spool.append([first, junk, _event(source, "m1")])
    await spool.append([_event(source, "m2")])
    metrics = Metrics()
    writer = Writer(spool, store, redis, metrics, 0.01)
    await _drain(writer)
    assert _stored(ch, source) == ["m0", "m1", "m2"]
    assert read_quarantine(spool.dir) == [(Position(1, 8 + len(first)), junk)]
    assert metrics.value("magpie_spool_records_quarantined_total") == 1
    assert writer.checkpoint.position == spool.committed and writer.checkpoint.intent is None
    assert "quarantined the undecodable spool record at Position(segment=1" in caplog.text
    spool.close()


def _refused(source_id: str, message_id: str) -> bytes:
    """An event record whose row ClickHouse refuses on every try (its timestamp is not a time)."""
    row = orjson.loads(_row(source_id, message_id, "ingest-" + message_id))
    return encode(
        EVENT, source_id, message_id, "ingest-" + message_id, orjson.dumps({**row, "timestamp": "soon"})
    )


async def test_rows_clickhouse_refuses_are_rejected_alone_and_block_nothing(
    tmp_path: Path, ch: Client, store: EventStore, redis: aioredis.Redis
) -> None:
    """Before, the writer retried the refused block forever: nothing stored again, from any source."""
    source = uuid.uuid4().hex
    spool = Spool(tmp_path / "spool", 1 << 20)
    records = [_event(source, f"m{i}") for i in range(9)]
    bad = [_refused(source, "bad1"), _refused(source, "bad2")]
    records[2:2], records[7:7] = bad[:1], bad[1:]
    await spool.append(records)
    await spool.append([_event(source, "later")])
    metrics = Metrics()
    await _drain(Writer(spool, store, redis, metrics, 0.01))
    assert _stored(ch, source) == sorted([*(f"m{i}" for i in range(9)), "later"])
    sql = (
        "SELECT message_id, reason, detail, payload FROM rejected_events WHERE source_id = {s:String}"
        " ORDER BY message_id"
    )
    refused = ch.query(sql, parameters={"s": source}).result_rows
    assert [(r[0], r[1]) for r in refused] == [("bad1", "store_rejected"), ("bad2", "store_rejected")]
    assert all("DateTime" in r[2] and '"timestamp":"soon"' in r[3] for r in refused), refused
    assert [payload for _, payload in read_quarantine(spool.dir)] == bad
    assert metrics.value("magpie_events_store_rejected_total", source) == 2
    assert metrics.value("magpie_events_stored_total", source) == 10
    spool.close()


def test_only_errors_that_name_the_data_count_as_refusals() -> None:
    assert data_error_code(Exception("Code: 41. DB::Exception: Cannot parse DateTime")) == 41
    assert data_error_code(Exception("Code: 241. DB::Exception: Memory limit exceeded")) is None
    assert data_error_code(Exception("Code: 252. DB::Exception: Too many parts")) is None
    assert data_error_code(OSError("connection refused")) is None


async def test_control_characters_and_old_format_records_reach_clickhouse(
    tmp_path: Path, ch: Client, store: EventStore, redis: aioredis.Redis
) -> None:
    """Every control character in a messageId; and the NUL record an older Magpie left in its spool."""
    source = uuid.uuid4().hex
    spool = Spool(tmp_path / "spool", 1 << 20)
    ids = [f"c{c}{c}x" for c in CONTROL] + [CONTROL]
    header = f"{source}\0old\0id\0ingest-old".encode()
    old = EVENT + struct.pack("<H", len(header)) + header + _row(source, "old\0id", "ingest-old")
    await spool.append([old, *(_event(source, i) for i in ids)])
    await _drain(Writer(spool, store, redis, Metrics(), 0.01))
    assert sorted(_stored(ch, source)) == sorted(["old\0id", *ids])
    spool.close()


async def test_a_wiped_spool_at_the_same_path_loses_no_event(
    tmp_path: Path, ch: Client, store: EventStore, redis: aioredis.Redis
) -> None:
    """Two collectors on one data-dir path (a container image; a wiped volume), one ClickHouse: the
    second spool's first chunk has the same path and offsets as the first's, but must not be taken
    for a replay of it."""
    source, path = uuid.uuid4().hex, tmp_path / "data" / "spool"
    ids = ["first-0001", "again-0002"]  # equal lengths: equal record sizes, equal offsets
    for message_id in ids:
        spool = Spool(path, 1 << 20)
        await spool.append([_event(source, message_id, ingest_id=f"ingest-{message_id}")])
        await _drain(Writer(spool, store, redis, Metrics(), 0.01))
        spool.close()
        shutil.rmtree(path)
    assert _stored(ch, source) == sorted(ids)


def _failing_drains(monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
    """The first `failures` drains raise an error the writer does not handle (a bug, anything)."""
    real = Writer.drain_once
    left = [failures]

    async def drain_once(self: Writer) -> int:
        if left[0] > 0:
            left[0] -= 1
            raise RuntimeError("boom")
        return await real(self)

    monkeypatch.setattr(Writer, "drain_once", drain_once)


async def test_a_writer_that_dies_is_restarted_and_reported_down_meanwhile(
    tmp_path: Path,
    ch: Client,
    store: EventStore,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source, spool, metrics = uuid.uuid4().hex, Spool(tmp_path / "spool", 1 << 20), Metrics()
    _failing_drains(monkeypatch, 3)
    supervisor = WriterSupervisor(lambda: Writer(spool, store, redis, metrics, 0.01), metrics)
    task = asyncio.create_task(supervisor.run())
    await spool.append([_event(source, "after-the-crashes")])
    seen_down = False
    for _ in range(500):
        seen_down = seen_down or supervisor.down
        if _stored(ch, source):
            break
        await asyncio.sleep(0.01)
    assert _stored(ch, source) == ["after-the-crashes"]
    assert seen_down and not supervisor.down
    assert metrics.value("magpie_writer_restarts_total") == 3
    assert caplog.text.count("writer stopped on an unexpected error; restarting in") == 3
    assert "RuntimeError: boom" in caplog.text
    supervisor.stop()
    await asyncio.wait_for(task, 5)  # stop() still ends in a drain and a return
    spool.close()


async def test_stop_during_a_restart_wait_still_drains(
    tmp_path: Path, ch: Client, store: EventStore, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "RESTART_MIN_S", 60.0)
    source, spool, metrics = uuid.uuid4().hex, Spool(tmp_path / "spool", 1 << 20), Metrics()
    await spool.append([_event(source, "committed-before-stop")])
    _failing_drains(monkeypatch, 1)
    supervisor = WriterSupervisor(lambda: Writer(spool, store, redis, metrics, 0.01), metrics)
    task = asyncio.create_task(supervisor.run())
    while not supervisor.down:
        await asyncio.sleep(0.01)
    supervisor.stop()  # well inside the 60 s wait: the restart happens now and drains
    await asyncio.wait_for(task, 10)
    assert _stored(ch, source) == ["committed-before-stop"]
    spool.close()


async def test_readyz_is_503_while_the_collector_writer_is_down(
    tmp_path: Path, store: EventStore, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = Collector(CollectorSettings(tmp_path / "spool", "http://collector"), store, redis, Metrics())
    app = Starlette(routes=health_routes({"writer": collector.check_ready}, _no_metrics, lambda: False))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    await collector.start()
    try:
        assert collector.ready and (await client.get("/readyz")).status_code == 200
        _failing_drains(monkeypatch, 10**9)
        await collector.spool.append([_event(uuid.uuid4().hex, "wake-the-writer")])
        while collector.ready:
            await asyncio.sleep(0.01)
        response = await client.get("/readyz")
        assert response.status_code == 503 and response.json()["failing"] == {"writer": "WriterDown"}
        monkeypatch.undo()  # the fault is gone: the next restart sticks
        while not collector.ready:
            await asyncio.sleep(0.01)
        assert (await client.get("/readyz")).status_code == 200
    finally:
        await client.aclose()
        await collector.stop(timeout_s=10)
    assert not collector.ready


async def _no_metrics() -> str:
    return ""


async def test_the_writer_gathers_longer_after_a_slow_write_so_blocks_grow_with_the_load(
    tmp_path: Path, ch: Client, store: EventStore, redis: aioredis.Redis
) -> None:
    """A write's fixed cost in the store dwarfs its rows' for small blocks: after a write that took d
    seconds the writer gathers for GATHER_PER_WRITE × d (capped), never less than its interval."""
    source = uuid.uuid4().hex
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = Writer(spool, store, redis, Metrics(), 0.001)
    assert writer.gather_s == 0.001
    await spool.append([_event(source, "m0")])
    original = store.insert_rows

    async def slow_insert(table: str, rows: list[bytes], token: str) -> None:
        await asyncio.sleep(0.05)
        await original(table, rows, token)

    store.insert_rows = slow_insert  # type: ignore[method-assign]
    await _drain(writer)
    assert _stored(ch, source) == ["m0"]
    assert writer_module.GATHER_PER_WRITE * 0.05 <= writer.gather_s <= writer_module.GATHER_MAX_S
    store.insert_rows = original  # type: ignore[method-assign]
    slow = writer.gather_s
    await spool.append([_event(source, "m1")])
    await _drain(writer)
    assert writer.interval_s <= writer.gather_s < slow  # a quick write: back towards the interval
