"""The run log (`sync_runs`) and dead letters (`sync_dead_letters`) of destination syncs.

A run row is written when the run starts (status `running`) and rewritten with a higher version
when it ends. Run ids start with the start time in hex, so sorting by id sorts by time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.db import Database
from activation.privacy.person import PROFILES
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.erase import erase, mentions, redact

RUN_COLUMNS = (
    "id",
    "destination_id",
    "audience_id",
    "trigger",
    "started_at",
    "finished_at",
    "status",
    "added",
    "removed",
    "failed",
    "duration_ms",
    "errors",
    "version",
)
LETTER_COLUMNS = (
    "run_id",
    "destination_id",
    "audience_id",
    "profile_id",
    "change",
    "reason",
    "permanent",
    "status",
    "created_at",
    "version",
)
MAX_ERRORS = 20
_RUNS = f"SELECT {', '.join(RUN_COLUMNS[:-1])} FROM sync_runs FINAL"
_LETTERS = (
    f"SELECT {', '.join(LETTER_COLUMNS[:-1])} FROM sync_dead_letters FINAL WHERE run_id = {{rid:String}}"
)


def new_run_id() -> str:
    return f"run_{time.time_ns():016x}{secrets.token_hex(4)}"


@dataclass(frozen=True)
class SyncRun:
    id: str
    destination_id: str
    audience_id: str
    trigger: str = "schedule"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    status: str = "running"
    added: int = 0
    removed: int = 0
    failed: int = 0
    duration_ms: int = 0
    errors: tuple[str, ...] = ()

    def with_error(self, message: str) -> SyncRun:
        if len(self.errors) >= MAX_ERRORS or message in self.errors:
            return self
        return replace(self, errors=(*self.errors, message))

    def finished(self, status: str) -> SyncRun:
        now = datetime.now(UTC)
        duration = int((now - self.started_at).total_seconds() * 1000)
        return replace(self, status=status, finished_at=now, duration_ms=max(0, duration))


@dataclass(frozen=True)
class DeadLetter:
    profile_id: str
    change: str
    reason: str
    permanent: bool


async def save_run(db: Database, run: SyncRun) -> None:
    row = [getattr(run, c) for c in RUN_COLUMNS[:-1]]
    row[RUN_COLUMNS.index("errors")] = list(run.errors)
    await db.insert("sync_runs", [[*row, time.time_ns()]], RUN_COLUMNS)


async def mark_interrupted(db: Database, destination_id: str) -> int:
    """Runs of this destination still `running` (their worker died); call while holding its lock."""
    rows = await db.dicts(
        _RUNS + " WHERE destination_id = {did:String} AND status = 'running'", {"did": destination_id}
    )
    for row in rows:
        run = SyncRun(**{**row, "errors": tuple(row["errors"]), "started_at": _utc(row["started_at"])})
        await save_run(db, run.finished("interrupted"))
    return len(rows)


async def get_run(db: Database, run_id: str) -> dict[str, Any] | None:
    rows = await db.dicts(_RUNS + " WHERE id = {id:String}", {"id": run_id})
    return run_json(rows[0]) if rows else None


async def list_runs(
    db: Database, filters: dict[str, str], before: str | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first; `filters` may hold destination_id and audience_id."""
    where = ["1"] + [f"{name} = {{{name}:String}}" for name in filters]
    params: dict[str, Any] = {**filters, "n": limit}
    if before is not None:
        where.append("id < {before:String}")
        params["before"] = before
    sql = f"{_RUNS} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {{n:UInt32}}"
    return [run_json(r) for r in await db.dicts(sql, params)]


def run_json(row: dict[str, Any]) -> dict[str, Any]:
    finished = row["finished_at"]
    return {
        **row,
        "started_at": _utc(row["started_at"]).isoformat(),
        "finished_at": _utc(finished).isoformat() if finished else None,
        "errors": list(row["errors"]),
    }


async def add_dead_letters(db: Database, run: SyncRun, letters: Sequence[DeadLetter]) -> None:
    if not letters:
        return
    now, version = datetime.now(UTC), time.time_ns()
    head = [run.id, run.destination_id, run.audience_id]
    rows = [
        [*head, d.profile_id, d.change, d.reason, int(d.permanent), "open", now, version] for d in letters
    ]
    await db.insert("sync_dead_letters", rows, LETTER_COLUMNS)


async def dead_letters(db: Database, run_id: str, status: str | None = None) -> list[dict[str, Any]]:
    sql = _LETTERS + (" AND status = {status:String}" if status else "") + " ORDER BY profile_id, change"
    rows = await db.dicts(sql, {"rid": run_id, "status": status or ""})
    return [
        {**r, "permanent": bool(r["permanent"]), "created_at": _utc(r["created_at"]).isoformat()}
        for r in rows
    ]


async def mark_replayed(db: Database, letters: Sequence[dict[str, Any]]) -> None:
    if not letters:
        return
    now, version = datetime.now(UTC), time.time_ns()
    rows = [
        [*(letter[c] for c in LETTER_COLUMNS[:6]), int(letter["permanent"]), "replayed", now, version]
        for letter in letters
    ]
    await db.insert("sync_dead_letters", rows, LETTER_COLUMNS)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase the person's dead letters, and blank run error messages that quote one of their
    identifiers (the run is kept: its counts are not personal data) (privacy, SPEC §9)."""
    params = person.params()
    reason = mentions("reason", params["values"], params, "v")
    removed = erase(ch, "sync_dead_letters", f"profile_id IN {PROFILES} OR {reason}", params)
    said = mentions("e", params["values"], params, "v")
    return {
        "sync_dead_letters": removed,
        "sync_runs": redact(ch, "sync_runs", "errors", said, params, "[erased]"),
    }
