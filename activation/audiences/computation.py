"""Compute an audience: snapshot its members, record who entered and exited, log the run.

Everything heavy happens inside ClickHouse: the compiled SELECT feeds an INSERT into
`audience_snapshots`, and the diff against the current members (the latest change of each
profile) is another INSERT … SELECT. The current members are derived from the changes, so a
re-run over the same data finds nothing to change, and a run interrupted half-way is completed
by the next one. A deleted audience computes to no members: everyone exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.audiences import freshness, store
from activation.audiences.compiler import compile_audience, sql_time
from activation.audiences.current import changed_at_sql, members_sql
from activation.audiences.limits import COMPUTE_SETTINGS
from activation.audiences.store import Audience
from activation.locks import LockNotAcquired, held
from activation.privacy.person import PROFILES
from activation.privacy.person import Person as PrivacyPerson
from activation.services import of as services_of
from clickhouse.erase import erase

_TIME = "DateTime64(3, 'UTC')"
_LAST_AT = (
    "SELECT greatest((SELECT max(computed_at) FROM audience_runs WHERE audience_id = {aid:String}),"
    " (SELECT max(at) FROM audience_membership_changes WHERE audience_id = {aid:String}))"
)
_SNAPSHOT = (
    "INSERT INTO audience_snapshots (audience_id, computed_at, profile_id)"
    f" SELECT {{aid:String}}, {{at:{_TIME}}}, profile_id FROM ({{select}})"
)
CURRENT = members_sql()
_FRESH = (
    "SELECT profile_id FROM audience_snapshots"
    f" WHERE audience_id = {{aid:String}} AND computed_at = {{at:{_TIME}}}"
)
_DIFF = (
    "INSERT INTO audience_membership_changes (audience_id, profile_id, change, at)"
    f" SELECT {{aid:String}}, profile_id, 'entered', {{at:{_TIME}}} FROM ({_FRESH})"
    f" WHERE profile_id NOT IN ({CURRENT})"
    f" UNION ALL SELECT {{aid:String}}, profile_id, 'exited', {{at:{_TIME}}} FROM ({CURRENT})"
    f" WHERE profile_id NOT IN ({_FRESH})"
)
_COUNTS = (
    f"SELECT (SELECT count() FROM ({_FRESH})),"
    " countIf(change = 'entered'), countIf(change = 'exited') FROM audience_membership_changes"
    f" WHERE audience_id = {{aid:String}} AND at = {{at:{_TIME}}}"
)
LOCK_WAIT_S = 120
RUN_COLUMNS = ["audience_id", "computed_at", "members", "entered", "exited", "duration_ms"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def audience_lock(redis: Any, audience_id: str) -> AsyncIterator[None]:
    """One change-writer per audience at a time: a full run and a streaming micro-batch that both read
    the current members before either writes would record the same entry or exit twice. Waits up to
    LOCK_WAIT_S, then raises (the job is retried); the lock is renewed while held (activation.locks)."""
    if redis is None:
        yield
        return
    async with held(redis, f"magpie:audience:lock:{audience_id}", wait_s=LOCK_WAIT_S) as acquired:
        if not acquired:
            raise LockNotAcquired(f"audience {audience_id} stayed locked for {LOCK_WAIT_S} s")
        yield


async def compute_audience(ctx: dict[str, Any], audience_id: str) -> dict[str, Any]:
    """Job: compute one audience (services: the ClickHouse client and the clock)."""
    services = services_of(ctx)
    newest = await asyncio.to_thread(freshness.newest_event, services.ch)
    async with audience_lock(services.redis, audience_id):
        result = await asyncio.to_thread(compute, services.ch, audience_id, services.clock())
    if result.get("entered") or result.get("exited"):  # their documents list their audiences
        moved = await asyncio.to_thread(changed_in, services.ch, audience_id, result["computed_at"])
        await services.profiles_changed(moved, ())
    computed = result.get("status") == "computed"
    audience = await asyncio.to_thread(store.get, services.ch, audience_id) if computed else None
    if audience is not None:
        await asyncio.to_thread(freshness.record, services.ch, [audience], "full_run", newest, time.time())
        freshness.publish(services.metrics, [audience], newest, time.time())
    return result


def changed_in(ch: Client, audience_id: str, computed_at: str) -> set[str]:
    """The profiles that entered or left the audience in its run at `computed_at` (ISO time)."""
    params = {"aid": audience_id, "at": sql_time(datetime.fromisoformat(computed_at))}
    return {str(r[0]) for r in ch.query(changed_at_sql(), parameters=params).result_rows}


def compute(ch: Client, audience_id: str, now: datetime) -> dict[str, Any]:
    audience = store.get(ch, audience_id, with_deleted=True)
    if audience is None:
        return {"audience_id": audience_id, "status": "missing"}
    if not audience.enabled and not audience.deleted:
        return {"audience_id": audience_id, "status": "disabled"}
    started = time.monotonic()
    at = run_time(ch, audience_id, now)
    params = {"aid": audience_id, "at": sql_time(at)}
    _snapshot(ch, audience, at, params)
    ch.command(_DIFF, parameters=params, settings=COMPUTE_SETTINGS)
    members, entered, exited = ch.query(_COUNTS, parameters=params).result_rows[0]
    duration_ms = int((time.monotonic() - started) * 1000)
    run = [audience_id, at, int(members), int(entered), int(exited), duration_ms]
    ch.insert("audience_runs", [run], column_names=RUN_COLUMNS)
    summary = dict(zip(RUN_COLUMNS, run, strict=True))
    status = "deleted" if audience.deleted else "computed"
    return {**summary, "computed_at": at.isoformat(), "key": audience.key, "status": status}


def _snapshot(ch: Client, audience: Audience, at: datetime, params: dict[str, Any]) -> None:
    if audience.deleted:
        return  # no snapshot rows: every current member exits
    select, bound = compile_audience(audience.definition, at)
    ch.command(
        _SNAPSHOT.replace("{select}", select), parameters={**bound, **params}, settings=COMPUTE_SETTINGS
    )


def run_time(ch: Client, audience_id: str, now: datetime) -> datetime:
    """`now` to the millisecond, moved just past the audience's last run so runs stay ordered."""
    at = now.astimezone(UTC).replace(microsecond=now.microsecond // 1000 * 1000)
    last = ch.query(_LAST_AT, parameters={"aid": audience_id}).result_rows[0][0]
    if last is not None:
        last = last if last.tzinfo else last.replace(tzinfo=UTC)
        at = max(at, last + timedelta(milliseconds=1))
    return at


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase the person from every audience snapshot and the membership history (privacy, SPEC §9)."""
    where, params = f"profile_id IN {PROFILES}", person.params()
    return {t: erase(ch, t, where, params) for t in ("audience_snapshots", "audience_membership_changes")}
