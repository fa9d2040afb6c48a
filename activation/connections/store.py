"""The `connections` table: versioned rows read with FINAL (one owner: this module)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from activation.db import Database

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = (
    "id",
    "source_id",
    "destination_id",
    "filter",
    "mapping",
    "enabled",
    "deleted",
    "created_at",
    "updated_at",
    "version",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM connections FINAL WHERE deleted = 0"


@dataclass(frozen=True)
class ConnectionRecord:
    id: str
    source_id: str
    destination_id: str
    filter: dict[str, Any] = field(default_factory=dict)
    mapping: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    deleted: bool = False
    created_at: datetime = EPOCH
    updated_at: datetime = EPOCH
    version: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source_id": self.source_id,
            "destination_id": self.destination_id,
            "filter": self.filter,
            "mapping": self.mapping,
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: dict[str, Any]) -> ConnectionRecord:
    return ConnectionRecord(
        id=row["id"],
        source_id=row["source_id"],
        destination_id=row["destination_id"],
        filter=orjson.loads(row["filter"] or "{}"),
        mapping=orjson.loads(row["mapping"] or "{}"),
        enabled=bool(row["enabled"]),
        deleted=bool(row["deleted"]),
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        version=int(row["version"]),
    )


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class ConnectionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        rows = await self.db.dicts(_SELECT + " AND id = {id:String}", {"id": connection_id})
        return _record(rows[0]) if rows else None

    async def page(self, after: str, limit: int) -> list[ConnectionRecord]:
        sql = _SELECT + " AND id > {after:String} ORDER BY id LIMIT {n:UInt32}"
        return [_record(r) for r in await self.db.dicts(sql, {"after": after, "n": limit})]

    async def active(self) -> list[ConnectionRecord]:
        """Every enabled connection, oldest first (the first matching one per destination wins)."""
        return [_record(r) for r in await self.db.dicts(_SELECT + " AND enabled = 1 ORDER BY created_at, id")]

    async def of_destination(self, destination_id: str) -> list[ConnectionRecord]:
        sql = _SELECT + " AND enabled = 1 AND destination_id = {d:String} ORDER BY created_at, id"
        return [_record(r) for r in await self.db.dicts(sql, {"d": destination_id})]

    async def save(self, record: ConnectionRecord) -> ConnectionRecord:
        version = max(time.time_ns(), record.version + 1)
        saved = replace(
            record, created_at=_ms(record.created_at), updated_at=_ms(datetime.now(UTC)), version=version
        )
        row = [getattr(saved, c) for c in COLUMNS]
        row[3], row[4] = orjson.dumps(saved.filter).decode(), orjson.dumps(saved.mapping).decode()
        row[5], row[6] = int(saved.enabled), int(saved.deleted)
        await self.db.insert("connections", [row], COLUMNS)
        return saved
