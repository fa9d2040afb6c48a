"""The privacy audit trail: the owner of `privacy_audit`. Every privacy request (deletion, export,
suppression lifted) appends who asked (token id), when, what (identifiers as keyed hashes, the
suppression hash: HMAC-SHA256 of `type:value`), and, later, how it ended. Rows are never updated."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from activation.db import Database
from activation.identity.identifiers import Identifier
from activation.privacy.suppressions import identifier_hash

TABLE = "privacy_audit"
COLUMNS = ("at", "request_id", "action", "token_id", "identifier_hashes", "mode", "outcome", "detail")


def hashes(secret_key: str, identifiers: Iterable[Identifier]) -> list[str]:
    return sorted({identifier_hash(secret_key, i) for i in identifiers})


async def record(
    db: Database,
    at: datetime,
    request_id: str,
    action: str,
    outcome: str,
    *,
    token_id: str = "",
    identifier_hashes: Iterable[str] = (),
    mode: str = "",
    detail: str = "",
) -> None:
    row = [at, request_id, action, token_id, sorted(identifier_hashes), mode, outcome, detail]
    await db.insert(TABLE, [row], COLUMNS)


async def page(db: Database, before: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
    """Newest first; `before` is the (at, request_id) the previous page ended with."""
    where = "(at, request_id) < ({a:DateTime64(3, 'UTC')}, {r:String})" if before else "1"
    params: dict[str, Any] = {"n": limit}
    if before:
        params |= {"a": before[0], "r": before[1]}
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {where}"
        " ORDER BY at DESC, request_id DESC, outcome LIMIT {n:UInt32}"
    )
    rows = await db.dicts(sql, params)
    for row in rows:
        at = row["at"]
        row["at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")
    return rows
