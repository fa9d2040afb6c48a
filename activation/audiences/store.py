"""The `audiences` table: versioned definition rows, read with FINAL so the newest version wins."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.audiences import codec
from activation.audiences.errors import AudienceNotFound, InvalidDefinition
from activation.audiences.tree import Node

log = logging.getLogger(__name__)

TABLE = "audiences"
COLUMNS = (
    "id",
    "key",
    "name",
    "definition",
    "destinations",
    "schedule_every_s",
    "emit_events",
    "enabled",
    "deleted",
    "created_at",
    "updated_at",
    "version",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE deleted = 0"


@dataclass(frozen=True)
class Audience:
    id: str
    key: str
    name: str
    definition: Node
    destinations: tuple[str, ...] = ()
    schedule_every_s: int = 3600
    emit_events: bool = False
    enabled: bool = True
    deleted: bool = False
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    updated_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    version: int = 0


def save(ch: Client, audience: Audience, now: datetime) -> Audience:
    """Write a new version of the row (create, update or soft delete all go through here)."""
    saved = replace(audience, updated_at=now, version=max(time.time_ns(), audience.version + 1))
    ch.insert(TABLE, [_row(saved)], column_names=list(COLUMNS))
    return saved


def get(ch: Client, audience_id: str, *, with_deleted: bool = False) -> Audience | None:
    select = _SELECT.replace("WHERE deleted = 0", "WHERE 1") if with_deleted else _SELECT
    rows = ch.query(f"{select} AND id = {{id:String}}", parameters={"id": audience_id}).result_rows
    return _audience(rows[0]) if rows else None


def fetch(ch: Client, audience_id: str) -> Audience:
    """The live audience, or `AudienceNotFound`."""
    audience = get(ch, audience_id)
    if audience is None:
        raise AudienceNotFound(f"no audience {audience_id!r}")
    return audience


def by_key(ch: Client, key: str) -> Audience | None:
    rows = ch.query(f"{_SELECT} AND key = {{key:String}} LIMIT 1", parameters={"key": key}).result_rows
    return _audience(rows[0]) if rows else None


def page(ch: Client, after: str, limit: int) -> list[Audience]:
    """Live audiences with id > `after`, in id order."""
    sql = f"{_SELECT} AND id > {{after:String}} ORDER BY id LIMIT {{limit:UInt32}}"
    rows = ch.query(sql, parameters={"after": after, "limit": limit}).result_rows
    return [_audience(row) for row in rows]


def live(ch: Client) -> list[Audience]:
    """Every live audience (their number is small: definitions, not members). One whose stored
    definition no longer decodes (written by hand, or under an older codec) is logged and left out:
    it must not stop the streaming and scheduling of all the others."""
    audiences = []
    for row in ch.query(f"{_SELECT} ORDER BY id").result_rows:
        try:
            audiences.append(_audience(row))
        except (InvalidDefinition, orjson.JSONDecodeError) as exc:
            log.error("audience %s has a definition that does not decode; skipped: %s", row[0], exc)
    return audiences


def _row(audience: Audience) -> list[Any]:
    return [
        audience.id,
        audience.key,
        audience.name,
        orjson.dumps(codec.to_json(audience.definition)).decode(),
        list(audience.destinations),
        audience.schedule_every_s,
        int(audience.emit_events),
        int(audience.enabled),
        int(audience.deleted),
        audience.created_at,
        audience.updated_at,
        audience.version,
    ]


def _audience(row: Sequence[Any]) -> Audience:
    values = dict(zip(COLUMNS, row, strict=True))
    return Audience(
        id=values["id"],
        key=values["key"],
        name=values["name"],
        definition=codec.from_json(orjson.loads(values["definition"])),
        destinations=tuple(values["destinations"]),
        schedule_every_s=int(values["schedule_every_s"]),
        emit_events=bool(values["emit_events"]),
        enabled=bool(values["enabled"]),
        deleted=bool(values["deleted"]),
        created_at=_utc(values["created_at"]),
        updated_at=_utc(values["updated_at"]),
        version=int(values["version"]),
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
