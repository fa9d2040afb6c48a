"""Where the writer puts spool records it cannot decode, so they never block the records after them.

`quarantine` in the spool directory is append-only and fsync'd: each entry is the record's spool
position (segment, offset), then its payload framed like the spool (length, CRC32). Nothing reads
it in normal operation; it is kept for an operator (`read_quarantine`) and counted in
`magpie_spool_records_quarantined_total`. A crash between quarantining and the writer's next
checkpoint can append the same record twice; the positions tell the copies apart.

Privacy (SPEC §9): a quarantined payload may hold a person's raw event. A deletion reaches it:
`forget_in_spools` rewrites every quarantine file under the data directory's spools without the
entries whose payload mentions one of the person's values (case-insensitive; values shorter than
six characters only as a quoted JSON string, so a user id like "42" does not take unrelated
entries). Appends and rewrites hold the same lock file, so no entry is lost to a concurrent rewrite.
A spool kept outside the data directory (MAGPIE_SPOOL_DIR on another host) is not reached.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from collector.spool import Position

FILE_NAME = "quarantine"
LOCK_NAME = "quarantine.lock"
MIN_SUBSTRING = 6
_ENTRY = struct.Struct("<IQII")  # segment, offset, payload length, crc32


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _entry(position: Position, payload: bytes) -> bytes:
    return _ENTRY.pack(position.segment, position.offset, len(payload), zlib.crc32(payload)) + payload


def quarantine(directory: Path, position: Position, payload: bytes) -> None:
    with _locked(directory):
        fd = os.open(directory / FILE_NAME, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        try:
            os.write(fd, _entry(position, payload))
            os.fsync(fd)
        finally:
            os.close(fd)


def forget(directory: Path, values: Iterable[str]) -> int:
    """Rewrite the quarantine of one spool without the entries mentioning one of `values`;
    returns how many entries went."""
    lowered = {v.lower().encode() for v in values if v}
    needles = [v if len(v) >= MIN_SUBSTRING else b'"' + v + b'"' for v in lowered]
    if not needles or not (directory / FILE_NAME).exists():
        return 0
    with _locked(directory):
        entries = read_quarantine(directory)
        kept = [(p, b) for p, b in entries if not any(n in b.lower() for n in needles)]
        if len(kept) == len(entries):
            return 0
        partial = directory / (FILE_NAME + ".partial")
        partial.write_bytes(b"".join(_entry(p, b) for p, b in kept))
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, directory / FILE_NAME)
    return len(entries) - len(kept)


def forget_in_spools(data_dir: Path, values: Iterable[str]) -> int:
    """`forget` in every spool under `data_dir` (`spool/` and `spool/web-N/`)."""
    values = list(values)
    return sum(forget(path.parent, values) for path in sorted((data_dir / "spool").rglob(FILE_NAME)))


def read_quarantine(directory: Path) -> list[tuple[Position, bytes]]:
    """Every whole entry, in the order quarantined (a torn last entry is left out)."""
    try:
        data = (directory / FILE_NAME).read_bytes()
    except FileNotFoundError:
        return []
    entries, offset = [], 0
    while offset + _ENTRY.size <= len(data):
        segment, at, length, crc = _ENTRY.unpack_from(data, offset)
        payload = data[offset + _ENTRY.size : offset + _ENTRY.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            break
        entries.append((Position(segment, at), payload))
        offset += _ENTRY.size + length
    return entries
