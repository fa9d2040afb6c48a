"""The spool's record format: a kind byte, the dedupe header, then the ClickHouse row as JSON.

    b"E" | u16 header length | source_id \\0 message_id \\0 ingest_id | JSONEachRow row for `events`
    b"R" | u16 header length | source_id \\0 \\0 ingest_id            | row for `rejected_events`

The row bytes go to ClickHouse untouched (FORMAT JSONEachRow), so the writer never rebuilds rows.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_LENGTH = struct.Struct("<H")
EVENT = b"E"
REJECTED = b"R"


@dataclass(frozen=True)
class SpoolRecord:
    kind: bytes
    source_id: str
    message_id: str
    ingest_id: str
    row: bytes


def encode(kind: bytes, source_id: str, message_id: str, ingest_id: str, row: bytes) -> bytes:
    header = f"{source_id}\0{message_id}\0{ingest_id}".encode()
    return kind + _LENGTH.pack(len(header)) + header + row


def decode(payload: bytes) -> SpoolRecord:
    (length,) = _LENGTH.unpack_from(payload, 1)
    source_id, message_id, ingest_id = payload[3 : 3 + length].decode().split("\0")
    return SpoolRecord(payload[:1], source_id, message_id, ingest_id, payload[3 + length :])
