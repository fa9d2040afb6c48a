"""The CRM tables: pull cursors (`crm_cursors`), the run log (`crm_pull_runs`) and pulled deals
(`crm_objects`). Versioned rows, read with FINAL; a newer version supersedes older ones."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from activation.db import Database

RUN_COLUMNS = (
    "id",
    "source_id",
    "trigger",
    "started_at",
    "finished_at",
    "status",
    "fetched",
    "created",
    "updated",
    "merged",
    "deleted",
    "errors",
    "messages",
    "version",
)
COUNTS = ("fetched", "created", "updated", "merged", "deleted", "errors")
MAX_MESSAGES = 20
_RUNS = f"SELECT {', '.join(RUN_COLUMNS[:-1])} FROM crm_pull_runs FINAL"


def _version() -> int:
    return time.time_ns()


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def read_cursor(db: Database, source_id: str, obj: str) -> dict[str, Any]:
    sql = "SELECT cursor FROM crm_cursors FINAL WHERE source_id = {s:String} AND object = {o:String}"
    rows = await db.rows(sql, {"s": source_id, "o": obj})
    doc = orjson.loads(rows[0][0]) if rows and rows[0][0] else {}
    return doc if isinstance(doc, dict) else {}


async def write_cursor(db: Database, source_id: str, obj: str, cursor: dict[str, Any]) -> None:
    row = [source_id, obj, orjson.dumps(cursor).decode(), datetime.now(UTC), _version()]
    await db.insert("crm_cursors", [row], ("source_id", "object", "cursor", "updated_at", "version"))


@dataclass(frozen=True)
class PullRun:
    id: str
    source_id: str
    trigger: str = "schedule"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    status: str = "running"
    fetched: int = 0
    created: int = 0
    updated: int = 0
    merged: int = 0
    deleted: int = 0
    errors: int = 0
    messages: tuple[str, ...] = ()

    def add(self, **counts: int) -> PullRun:
        return replace(self, **{k: getattr(self, k) + v for k, v in counts.items()})

    def note(self, message: str) -> PullRun:
        if len(self.messages) >= MAX_MESSAGES or message in self.messages:
            return self
        return replace(self, messages=(*self.messages, message))

    def finished(self, status: str) -> PullRun:
        return replace(self, status=status, finished_at=datetime.now(UTC))

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in COUNTS}


def new_run_id() -> str:
    return f"pull_{time.time_ns():016x}{secrets.token_hex(4)}"


async def save_run(db: Database, run: PullRun) -> None:
    doc = asdict(run)
    doc["messages"] = list(run.messages)
    await db.insert("crm_pull_runs", [[*(doc[c] for c in RUN_COLUMNS[:-1]), _version()]], RUN_COLUMNS)


async def mark_interrupted(db: Database, source_id: str) -> None:
    """Runs of this source still `running` (their worker died); call while holding its lock."""
    for row in await db.dicts(
        _RUNS + " WHERE source_id = {s:String} AND status = 'running'", {"s": source_id}
    ):
        run = PullRun(**{**row, "messages": tuple(row["messages"]), "started_at": utc(row["started_at"])})
        await save_run(db, run.finished("interrupted"))


async def list_runs(db: Database, source_id: str, before: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first."""
    where = "source_id = {s:String}" + (" AND id < {b:String}" if before else "")
    sql = f"{_RUNS} WHERE {where} ORDER BY id DESC LIMIT {{n:UInt32}}"
    return [run_json(r) for r in await db.dicts(sql, {"s": source_id, "b": before or "", "n": limit})]


async def last_started(db: Database) -> dict[str, datetime]:
    rows = await db.rows("SELECT source_id, max(started_at) FROM crm_pull_runs FINAL GROUP BY source_id")
    return {str(s): utc(t) for s, t in rows}


def run_json(row: dict[str, Any]) -> dict[str, Any]:
    finished = row["finished_at"]
    doc = {k: v for k, v in row.items() if k != "messages"}
    return {
        **doc,
        "started_at": utc(row["started_at"]).isoformat(),
        "finished_at": utc(finished).isoformat() if finished else None,
        "messages": list(row["messages"]),
    }
