"""The local append-only spool that makes an acknowledgement durable.

Every accepted event is framed (length, CRC32, payload) into the current segment file, and the
request is answered only after the bytes are fsync'd. Appends from concurrent requests are
grouped into one write + fsync (group commit), so durability costs one fsync per group, not
per request. The writer (collector/writer.py) reads committed records back in order and moves
them into ClickHouse; consumed segments are deleted.

A torn tail left by a crash (a frame whose bytes or CRC are incomplete) was never acknowledged,
since acknowledgement waits for fsync; recovery truncates it.

Each spool directory has a random id, created once and fsync'd (`spool-id`). The writer's
ClickHouse deduplication tokens include it, so two collectors whose spools sit at the same path
(every container image), or a spool wiped and recreated, never produce each other's tokens.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

_HEADER = struct.Struct("<II")  # payload length, crc32
SEGMENT_MAX_BYTES = 64 << 20
ID_FILE = "spool-id"
_READ_SLACK = 1 << 20  # room for the frame that crosses the byte budget


class SpoolFull(Exception):
    """The spool holds MAGPIE_SPOOL_MAX_BYTES of unconsumed data: refuse new work (503)."""


class SpoolBroken(Exception):
    """Writing or fsync'ing the spool failed (disk full, I/O error): refuse new work (503)."""


class Position(NamedTuple):  # tuples: ordered as (segment, offset), cheap to make per record
    segment: int
    offset: int


class Record(NamedTuple):
    position: Position
    end: Position
    payload: bytes


def _segment_name(number: int) -> str:
    return f"seg-{number:012d}.log"


def _scan(data: bytes, start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """Yield (offset, end, payload) for every whole, CRC-valid frame from `start`."""
    offset, size, header, unpack, crc32 = start, len(data), _HEADER.size, _HEADER.unpack_from, zlib.crc32
    while offset + header <= size:
        length, crc = unpack(data, offset)
        end = offset + header + length
        payload = data[offset + header : end]
        if end > size or crc32(payload) != crc:
            return
        yield offset, end, payload
        offset = end


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def spool_id(directory: Path) -> str:
    """The directory's id: read it, or create it once (write, fsync, rename, fsync the directory)."""
    path = directory / ID_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if len(existing) == 32 and all(c in "0123456789abcdef" for c in existing):
        return existing
    new = os.urandom(16).hex()
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, new.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    _fsync_dir(directory)
    return new


class Spool:
    """Append, fsync in groups, read back. One process owns a spool directory (flock)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "LOCK", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"spool {self.dir} is in use by another Magpie process") from None
        self.id = spool_id(self.dir)
        self.segments = sorted(int(p.name[4:16]) for p in self.dir.glob("seg-*.log")) or [1]
        self._fd = self._open_tail()
        self.committed = Position(self.segments[-1], os.lseek(self._fd, 0, os.SEEK_END))
        self.consumed = Position(self.segments[0], 0)
        self._sealed: dict[int, int] = {}  # sizes of segments behind the tail
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        self.new_data = asyncio.Event()

    def _open_tail(self) -> int:
        path = self.dir / _segment_name(self.segments[-1])
        data = path.read_bytes() if path.exists() else b""
        valid = 0
        for _offset, end, _payload in _scan(data):
            valid = end
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        if valid != len(data):
            os.ftruncate(fd, valid)  # a torn, never-acknowledged tail from a crash
            os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_END)
        return fd

    @property
    def depth_bytes(self) -> int:
        """Bytes written but not yet consumed by the writer."""
        total = 0
        for number in self.segments:
            size = self.committed.offset if number == self.committed.segment else self._size(number)
            total += size - (self.consumed.offset if number == self.consumed.segment else 0)
        return total + self._pending_bytes

    def _size(self, number: int) -> int:
        """A segment's size; a sealed one (not the tail) never changes, so it is stat'ed once."""
        size = self._sealed.get(number)
        if size is not None:
            return size
        sealed = number != self.segments[-1]  # decided before the stat: a sealed size is final
        try:
            size = (self.dir / _segment_name(number)).stat().st_size
        except FileNotFoundError:
            return 0
        if sealed:
            self._sealed[number] = size
        return size

    def check_room(self, incoming_bytes: int) -> None:
        if self.depth_bytes + incoming_bytes > self.max_bytes:
            raise SpoolFull()

    async def append(self, payloads: list[bytes]) -> None:
        """Queue the payloads; return once they are written and fsync'd (group commit)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.extend(payloads)
        self._pending_bytes += sum(len(p) + _HEADER.size for p in payloads)
        self._waiters.append(done)
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush_loop())
        await done

    async def _flush_loop(self) -> None:
        while self._pending:
            group, waiters = self._pending, self._waiters
            self._pending, self._waiters, self._pending_bytes = [], [], 0
            try:
                await asyncio.to_thread(self._write_group, group)
            except OSError as exc:
                for waiter in waiters:
                    waiter.set_exception(SpoolBroken(str(exc)))
                continue
            for waiter in waiters:
                waiter.set_result(None)
            self.new_data.set()
        self._flushing = False

    def _write_group(self, group: list[bytes]) -> None:
        if self.committed.offset >= SEGMENT_MAX_BYTES:
            self._rotate()
        chunks, offset = [], self.committed.offset
        for payload in group:
            chunks.append(_HEADER.pack(len(payload), zlib.crc32(payload)))
            chunks.append(payload)
            offset += _HEADER.size + len(payload)
        try:
            os.write(self._fd, b"".join(chunks))
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self.committed.offset)  # keep the file frame-aligned
            os.lseek(self._fd, 0, os.SEEK_END)
            raise
        self.committed = Position(self.committed.segment, offset)

    def _rotate(self) -> None:
        os.close(self._fd)
        number = self.segments[-1] + 1
        self.segments.append(number)
        self._fd = os.open(self.dir / _segment_name(number), os.O_CREAT | os.O_WRONLY, 0o600)
        _fsync_dir(self.dir)
        self.committed = Position(number, 0)

    def read(self, start: Position, max_records: int, max_bytes: int) -> list[Record]:
        """Committed records from `start`, in order, bounded by count and bytes."""
        records: list[Record] = []
        position, size = start, 0
        while position < self.committed and len(records) < max_records and size < max_bytes:
            segment = position.segment
            limit = self.committed.offset if segment == self.committed.segment else self._size(segment)
            if position.offset >= limit:
                following = self._next_segment(segment)
                if following == segment:
                    break
                position = Position(following, 0)
                continue
            with open(self.dir / _segment_name(segment), "rb") as handle:
                handle.seek(position.offset)
                data = handle.read(min(limit - position.offset, max(max_bytes - size, 0) + _READ_SLACK))
            before, base, at = len(records), position.offset, position
            for _offset, end, payload in _scan(data):
                after = Position(segment, base + end)
                records.append(Record(at, after, payload))
                at = after
                size += len(payload)
                if len(records) >= max_records or size >= max_bytes:
                    break
            if len(records) == before:
                break
            position = records[-1].end
        return records

    def _next_segment(self, number: int) -> int:
        later = [n for n in self.segments if n > number]
        return later[0] if later else number

    def mark_consumed(self, position: Position) -> None:
        """Everything before `position` is in ClickHouse: delete whole segments behind it."""
        self.consumed = position
        while len(self.segments) > 1 and self.segments[0] < position.segment:
            number = self.segments.pop(0)
            (self.dir / _segment_name(number)).unlink(missing_ok=True)
            self._sealed.pop(number, None)

    def close(self) -> None:
        os.close(self._fd)
        os.close(self._lock_fd)
