"""Dead letters of event forwarding (`event_dead_letters`): events a destination refused for good
or that could not be sent (bad credentials, a full queue), with the reason and the queued item, so a
replay re-sends exactly what was refused. `status` is `open` until replayed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from activation.connections import queue
from activation.db import Database
from activation.destinations.events import OutboundEvent

COLUMNS = (
    "destination_id",
    "id",
    "connection_id",
    "message_id",
    "person",
    "item",
    "reason",
    "status",
    "created_at",
    "version",
)
_SELECT = (
    f"SELECT {', '.join(COLUMNS[:-1])} FROM event_dead_letters FINAL WHERE destination_id = {{d:String}}"
)


def _id() -> str:
    return f"edl_{time.time_ns():016x}{secrets.token_hex(4)}"


async def add(db: Database, destination_id: str, refused: Sequence[tuple[OutboundEvent, str]]) -> None:
    if not refused:
        return
    now, version = datetime.now(UTC), time.time_ns()
    rows = [
        [destination_id, _id(), e.connection_id, e.message_id, e.person, queue.encode(e).decode(), reason[:500],  # noqa: E501
         "open", now, version]
        for e, reason in refused
    ]  # fmt: skip
    await db.insert("event_dead_letters", rows, COLUMNS)


async def page(
    db: Database, destination_id: str, status: str, after: str, limit: int
) -> list[dict[str, Any]]:
    sql = _SELECT + " AND id > {after:String}" + (" AND status = {s:String}" if status else "")
    rows = await db.dicts(
        sql + " ORDER BY id LIMIT {n:UInt32}", {"d": destination_id, "after": after, "s": status, "n": limit}
    )
    return rows


def public(row: dict[str, Any]) -> dict[str, Any]:
    event = queue.decode(row["item"]).event
    created = row["created_at"]
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    return {
        "id": row["id"],
        "connection_id": row["connection_id"],
        "message_id": row["message_id"],
        "reason": row["reason"],
        "status": row["status"],
        "created_at": created.isoformat(),
        "event": event,
    }


async def mark(db: Database, rows: Sequence[dict[str, Any]], status: str) -> None:
    if not rows:
        return
    version = time.time_ns()
    out = [[*(r[c] for c in COLUMNS[:7]), status, r["created_at"], version] for r in rows]
    await db.insert("event_dead_letters", out, COLUMNS)
