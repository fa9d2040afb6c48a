"""The spool: group commit, read-back in order, torn tails, rotation and the byte bound."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from pathlib import Path

import pytest

from collector import spool as spool_module
from collector.spool import Position, Spool, SpoolFull


async def test_concurrent_appends_read_back_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    await asyncio.gather(*(spool.append([f"r{i}-{j}".encode() for j in range(3)]) for i in range(20)))
    records = spool.read(Position(1, 0), 1000, 1 << 20)
    assert len(records) == 60
    assert {r.payload for r in records} == {f"r{i}-{j}".encode() for i in range(20) for j in range(3)}
    assert all(a.end == b.position for a, b in itertools.pairwise(records))
    spool.close()


async def test_a_torn_tail_is_truncated_on_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    await spool.append([b"one", b"two"])
    spool.close()
    segment = next(tmp_path.glob("seg-*.log"))
    whole = segment.read_bytes()
    segment.write_bytes(whole + whole[:5])  # half a frame header: a crash mid-write
    reopened = Spool(tmp_path, 1 << 20)
    assert [r.payload for r in reopened.read(Position(1, 0), 10, 1 << 20)] == [b"one", b"two"]
    assert segment.stat().st_size == len(whole)
    reopened.close()


async def test_corrupt_crc_stops_reading(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    await spool.append([b"good", b"evil"])
    spool.close()
    segment = next(tmp_path.glob("seg-*.log"))
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    reopened = Spool(tmp_path, 1 << 20)
    assert [r.payload for r in reopened.read(Position(1, 0), 10, 1 << 20)] == [b"good"]
    reopened.close()


async def test_rotation_and_consumption_delete_old_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_MAX_BYTES", 64)
    spool = Spool(tmp_path, 1 << 20)
    for i in range(10):
        await spool.append([f"payload-{i:02d}-{'x' * 30}".encode()])
    assert len(list(tmp_path.glob("seg-*.log"))) > 3
    records = spool.read(Position(spool.segments[0], 0), 100, 1 << 20)
    assert len(records) == 10
    spool.mark_consumed(records[-1].end)
    assert len(list(tmp_path.glob("seg-*.log"))) == 1
    spool.close()


async def test_the_byte_bound_refuses_new_work(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1024)
    await spool.append([b"x" * 900])
    with pytest.raises(SpoolFull):
        spool.check_room(200)
    spool.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    first = Spool(tmp_path, 1024)
    with pytest.raises(RuntimeError, match="in use"):
        Spool(tmp_path, 1024)
    first.close()


def test_a_spool_keeps_its_random_id_and_a_new_spool_gets_another(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool", 1024)
    spool_id = first.id
    first.close()
    reopened = Spool(tmp_path / "spool", 1024)
    assert reopened.id == spool_id and len(spool_id) == 32
    assert (tmp_path / "spool" / "spool-id").read_text() == spool_id
    reopened.close()
    shutil.rmtree(tmp_path / "spool")  # a wiped volume, or another container with the same path
    fresh = Spool(tmp_path / "spool", 1024)
    assert fresh.id != spool_id
    fresh.close()
