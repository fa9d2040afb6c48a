"""The spool record format: any byte in any field round-trips; old records still read; junk is refused."""

from __future__ import annotations

import random
import struct

import pytest

from collector.records import EVENT, REJECTED, CorruptRecord, SpoolRecord, decode, encode

CONTROL = [chr(c) for c in [*range(0x20), 0x7F]]
FIELDS = ("source_id", "message_id", "ingest_id", "row")


def _v1(kind: bytes, source_id: str, message_id: str, ingest_id: str, row: bytes) -> bytes:
    """A record as the previous Magpie wrote it (NUL-separated header)."""
    header = f"{source_id}\0{message_id}\0{ingest_id}".encode()
    return kind + struct.pack("<H", len(header)) + header + row


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("char", CONTROL, ids=[f"0x{ord(c):02x}" for c in CONTROL])
def test_every_control_character_in_every_field_round_trips(field: str, char: str) -> None:
    values = {"source_id": "src", "message_id": "m-1", "ingest_id": "ab12", "row": b'{"a":1}'}
    values[field] = f"x{char}y{char}" if field != "row" else f'{{"a":"{char}"}}'.encode()
    for kind in (EVENT, REJECTED):
        record = decode(encode(kind, *values.values()))  # type: ignore[arg-type]
        assert record == SpoolRecord(kind, *values.values())  # type: ignore[arg-type]


def test_every_field_holding_every_control_character_at_once() -> None:
    nasty = "".join(CONTROL) + "\u00e9\U0001f600\ud800"  # and non-ASCII, and a lone surrogate
    row = bytes(range(256))  # the row is opaque bytes, not even UTF-8
    assert decode(encode(EVENT, nasty, nasty * 3, nasty, row)) == SpoolRecord(
        EVENT, nasty, nasty * 3, nasty, row
    )
    assert decode(encode(REJECTED, "", "", "", b"")) == SpoolRecord(REJECTED, "", "", "", b"")


def test_long_fields_are_not_limited_by_a_short_length() -> None:
    message_id = "m" * 70_000  # longer than the old u16 header could describe
    assert decode(encode(EVENT, "s", message_id, "i", b"{}")).message_id == message_id


def test_records_written_by_the_previous_version_still_read() -> None:
    assert decode(_v1(EVENT, "src", "m-1", "ab12", b'{"a":1}')) == SpoolRecord(
        EVENT, "src", "m-1", "ab12", b'{"a":1}'
    )
    # the record that used to stop the writer: a NUL inside the messageId
    assert decode(_v1(EVENT, "src", "a\0b\0", "ab12", b"{}")) == SpoolRecord(
        EVENT, "src", "a\0b\0", "ab12", b"{}"
    )
    assert decode(_v1(REJECTED, "src", "", "ab12", b"{}")).kind == REJECTED


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x02",
        b"\x02E",
        b"\x09E" + b"\0" * 12,  # unknown version
        b"\x02X" + b"\0" * 12,  # unknown kind
        struct.pack("<Bc3I", 2, b"E", 5, 0, 0) + b"abc",  # a field longer than the record
        struct.pack("<Bc3I", 2, b"E", 2, 0, 0) + b"\xff\xfe",  # not UTF-8
        b"E\x05\x00a\0b",  # a v1 header longer than the record
        b"E\x03\x00abc{}",  # a v1 header without separators
    ],
)
def test_junk_is_refused_with_one_error_type(payload: bytes) -> None:
    with pytest.raises(CorruptRecord):
        decode(payload)


def test_damaged_records_either_decode_or_raise_corrupt_record() -> None:
    rng = random.Random(8)
    whole = [encode(EVENT, "src", "m\0id", "ab12", b'{"a":1}'), _v1(EVENT, "src", "m", "ab12", b"{}")]
    outcomes: set[str] = set()
    for _ in range(20_000):
        damaged = bytearray(rng.choice(whole))
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        payload = bytes(damaged[: rng.randrange(len(damaged) + 1)])
        try:
            decode(payload)
            outcomes.add("decoded")
        except CorruptRecord:
            outcomes.add("refused")
    assert outcomes == {"decoded", "refused"}  # and nothing else escaped


def test_unknown_kinds_are_not_written() -> None:
    with pytest.raises(ValueError, match="kind"):
        encode(b"X", "s", "m", "i", b"{}")
