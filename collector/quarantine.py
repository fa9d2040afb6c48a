"""Where the writer puts spool records it cannot decode, so they never block the records after them.

`quarantine` in the spool directory is append-only and fsync'd: each entry is the record's spool
position (segment, offset), then its payload framed like the spool (length, CRC32). Nothing reads
it in normal operation; it is kept for an operator (`read_quarantine`) and counted in
`magpie_spool_records_quarantined_total`. A crash between quarantining and the writer's next
checkpoint can append the same record twice; the positions tell the copies apart.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from collector.spool import Position

FILE_NAME = "quarantine"
_ENTRY = struct.Struct("<IQII")  # segment, offset, payload length, crc32


def quarantine(directory: Path, position: Position, payload: bytes) -> None:
    entry = _ENTRY.pack(position.segment, position.offset, len(payload), zlib.crc32(payload)) + payload
    fd = os.open(directory / FILE_NAME, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        os.write(fd, entry)
        os.fsync(fd)
    finally:
        os.close(fd)


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
