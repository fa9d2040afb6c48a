"""Privacy requests (deletions and exports): the owner of `privacy_requests`.

A request keeps its identifiers in the clear only while it is pending or running (the job needs
them, and a deletion stores the whole expanded person before it erases anything, so a re-run
after a crash still knows every identifier). `finish` writes the last version with the
identifiers blanked and deletes the older versions, so a completed deletion leaves only keyed
hashes. Export rows keep the identifier that was exported until the person is deleted: `forget`
removes them and their document files.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.db import Database
from activation.privacy.person import Person
from clickhouse.erase import erase, erase_plain, mentions

TABLE = "privacy_requests"
COLUMNS = (
    "id", "kind", "mode", "status", "identifiers", "identifier_hashes", "token_id",
    "requested_at", "started_at", "finished_at", "receipt", "error", "version",
)  # fmt: skip
DONE = ("completed", "failed")


@dataclass(frozen=True)
class PrivacyRequest:
    id: str
    kind: str  # deletion | export
    mode: str  # delete | suppress | delete_and_suppress ('' for exports)
    status: str  # pending | running | completed | failed
    identifiers: str  # JSON {"identifiers": [[type, value]...], "profiles": [...]} while not finished
    identifier_hashes: tuple[str, ...]
    token_id: str
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    receipt: str = ""
    error: str = ""
    version: int = field(default_factory=time.time_ns)

    def row(self) -> list[Any]:
        values = asdict(self)
        values["identifier_hashes"] = list(self.identifier_hashes)
        return [values[c] for c in COLUMNS]

    def plain(self) -> dict[str, Any]:
        return orjson.loads(self.identifiers) if self.identifiers else {}

    def public(self) -> dict[str, Any]:
        """What the API shows: never the plain identifiers."""
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "requested_at": _iso(self.requested_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "requested_by": self.token_id,
        }
        if self.mode:
            body["mode"] = self.mode
        if self.receipt:
            receipt = orjson.loads(self.receipt)
            receipt.pop("path", None)  # where an export document lies on the server
            body["receipt"] = receipt
        if self.error:
            body["error"] = self.error
        return body


def new_id(prefix: str) -> str:
    """Sorts by creation time (hex nanoseconds), then random."""
    return f"{prefix}_{time.time_ns():016x}{secrets.token_hex(4)}"


def person_json(person: Person) -> str:
    pairs = [[i.type, i.value] for i in person.sorted_identifiers()]
    return orjson.dumps({"identifiers": pairs, "profiles": sorted(person.profile_ids)}).decode()


async def save(db: Database, request: PrivacyRequest) -> PrivacyRequest:
    saved = replace(request, version=max(time.time_ns(), request.version + 1))
    await db.insert(TABLE, [saved.row()], COLUMNS)
    return saved


async def get(db: Database, request_id: str, kind: str) -> PrivacyRequest | None:
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE id = {{id:String}} AND kind = {{k:String}}"
    rows = await db.dicts(sql, {"id": request_id, "k": kind})
    return _request(rows[0]) if rows else None


async def page(db: Database, kind: str, before: str, limit: int) -> list[PrivacyRequest]:
    """Newest first; `before` is the id the previous page ended with ('' for the first page)."""
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE kind = {{k:String}}"
        " AND ({b:String} = '' OR id < {b:String}) ORDER BY id DESC LIMIT {n:UInt32}"
    )
    return [_request(r) for r in await db.dicts(sql, {"k": kind, "b": before, "n": limit})]


async def unfinished(db: Database, older_than: datetime) -> list[PrivacyRequest]:
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE status NOT IN {{done:Array(String)}}"
        " AND requested_at < {t:DateTime64(3, 'UTC')} ORDER BY id LIMIT 1000"
    )
    return [_request(r) for r in await db.dicts(sql, {"done": list(DONE), "t": older_than})]


async def finish(db: Database, request: PrivacyRequest, keep_identifiers: bool = False) -> PrivacyRequest:
    """The final version (identifiers blanked unless kept); every older version is deleted, so the
    plain identifiers it held are physically gone when this returns."""
    final = await save(db, request if keep_identifiers else replace(request, identifiers=""))
    where = "id = {id:String} AND version < {v:UInt64}"
    params = {"id": final.id, "v": final.version}
    await asyncio.to_thread(erase_plain, db.client, TABLE, where, params)
    return final


def forget(ch: Client, person: Person) -> dict[str, int]:
    """Erase export requests about the person, and their documents (privacy, SPEC §9). Deletion
    requests are left: each blanks its own identifiers when it finishes."""
    params: dict[str, Any] = {}
    quoted = [f'"{v}"' for v in sorted(person.values())]
    where = f"kind = 'export' AND {mentions('identifiers', quoted, params, 'q')}"
    rows = ch.query(f"SELECT receipt FROM {TABLE} WHERE {where}", parameters=params).result_rows
    for (receipt,) in rows:
        path = orjson.loads(receipt).get("path", "") if receipt else ""
        if path:
            Path(path).unlink(missing_ok=True)
    return {TABLE: erase(ch, TABLE, where, params)}


def _request(row: dict[str, Any]) -> PrivacyRequest:
    row = {**row, "identifier_hashes": tuple(row["identifier_hashes"])}
    for name in ("requested_at", "started_at", "finished_at"):
        if isinstance(row[name], datetime) and row[name].tzinfo is None:
            row[name] = row[name].replace(tzinfo=UTC)
    return PrivacyRequest(**row)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
