"""Offline / CRM records: parsed from JSON lines or CSV into identifiers and traits, pure.

A record is flat: `user_id`, `email`, `phone`, `anonymous_id`, `ext:<type>` columns are identifiers
(email and phone also stay traits); every other column, plus an optional `traits` object, is a
trait. Its id is `record_id` when given, else a digest of its content, so re-importing a file is
idempotent.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from typing import Any

import orjson

from activation.identity.identifiers import EXTERNAL_PREFIX, HARD_TYPES, Identifier, normalise

MAX_RECORDS = 10_000
_ID_COLUMNS = ("user_id", "email", "phone", "anonymous_id")


@dataclass(frozen=True)
class ImportRecord:
    record_id: str
    ids: tuple[Identifier, ...]
    traits: dict[str, Any]

    @property
    def hard_ids(self) -> tuple[Identifier, ...]:
        return tuple(i for i in self.ids if i.type in HARD_TYPES or i.type.startswith(EXTERNAL_PREFIX))


@dataclass(frozen=True)
class Rejected:
    index: int
    reason: str


def parse_records(
    body: bytes, content_type: str, phone_region: str = ""
) -> tuple[list[ImportRecord], list[Rejected]]:
    """Records and the rejected lines (index, reason) of a JSON-lines or CSV body (national phone
    numbers read as numbers of `phone_region`, the rules' `default_phone_region`)."""
    raw = _csv_rows(body) if "csv" in content_type else _json_rows(body)
    records, rejected = [], []
    for index, row in enumerate(raw[: MAX_RECORDS + 1]):
        if index == MAX_RECORDS:
            rejected.append(Rejected(index, f"at most {MAX_RECORDS} records per request"))
            break
        if not isinstance(row, dict):
            rejected.append(Rejected(index, "not an object"))
            continue
        record = record_from_row(row, phone_region)
        if record is None:
            rejected.append(Rejected(index, "no identifier and no traits"))
        else:
            records.append(record)
    return records, rejected


def record_from_row(row: dict[str, Any], phone_region: str = "") -> ImportRecord | None:
    traits = dict(row.get("traits") or {}) if isinstance(row.get("traits"), dict) else {}
    ids = []
    for key, value in row.items():
        if key in ("traits", "record_id") or value in (None, ""):
            continue
        if key in _ID_COLUMNS or key.startswith(EXTERNAL_PREFIX):
            normalised = normalise(key, str(value), phone_region)
            if normalised:
                ids.append(Identifier(key, normalised))
        if key not in ("user_id", "anonymous_id") and not key.startswith(EXTERNAL_PREFIX):
            traits[key] = value
    if not ids and not traits:
        return None
    content = orjson.dumps(
        {"ids": [list(i) for i in sorted(ids)], "traits": traits}, option=orjson.OPT_SORT_KEYS
    )
    record_id = str(row.get("record_id") or "") or "r_" + hashlib.sha256(content).hexdigest()[:24]
    ids.append(Identifier("record", record_id))
    return ImportRecord(record_id, tuple(sorted(set(ids))), traits)


def _json_rows(body: bytes) -> list[Any]:
    rows: list[Any] = []
    for line in body.splitlines():
        if line.strip():
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                rows.append(None)
    return rows


def _csv_rows(body: bytes) -> list[Any]:
    text = body.decode("utf-8-sig", errors="replace")
    return [{k: v for k, v in row.items() if k} for row in csv.DictReader(io.StringIO(text))]
