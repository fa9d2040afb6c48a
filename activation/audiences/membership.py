"""Who is in an audience: now, at a past time, what changed in a run, and a profile's audiences.

Membership is derived from `audience_membership_changes`: a profile is a member at time T when
its latest change at or before T is 'entered'. Pages are keyed by profile id (`after`), so walking
them visits every member once. All reads run with the read-only settings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.audiences.compiler import sql_time
from activation.audiences.current import members_sql, memberships_sql
from activation.audiences.limits import select

_TIME = "DateTime64(3, 'UTC')"
_MEMBERS = (
    members_sql(where=" AND profile_id > {after:String}{until}") + " ORDER BY profile_id LIMIT {limit:UInt32}"
)
_COUNT = f"SELECT count() FROM ({members_sql(where='{until}')})"
_IS_MEMBER = f"SELECT count() > 0 FROM ({members_sql(where=' AND profile_id = {pid:String}')})"
_DIFF = (
    "SELECT profile_id, argMax(change, at) AS change FROM audience_membership_changes"
    f" WHERE audience_id = {{aid:String}} AND at > {{since:{_TIME}}} AND at <= {{until:{_TIME}}}"
    " AND profile_id > {after:String} GROUP BY profile_id ORDER BY profile_id LIMIT {limit:UInt32}"
)
_PREVIOUS_RUN = (
    "SELECT max(computed_at) FROM audience_runs"
    f" WHERE audience_id = {{aid:String}} AND computed_at < {{at:{_TIME}}}"
)
_RUNS = (
    "SELECT audience_id, computed_at, members, entered, exited, duration_ms FROM audience_runs"
    " WHERE audience_id = {aid:String} ORDER BY computed_at DESC LIMIT {limit:UInt32}"
)

_DUE = (
    "SELECT a.id FROM (SELECT id, schedule_every_s FROM audiences FINAL"
    " WHERE deleted = 0 AND enabled = 1 AND schedule_every_s > 0) AS a"
    " LEFT JOIN (SELECT audience_id, max(computed_at) AS last FROM audience_runs GROUP BY audience_id) AS r"
    " ON r.audience_id = a.id"
    " WHERE r.last + toIntervalSecond(a.schedule_every_s)"
    f" <= {{now:{_TIME}}} + toIntervalMillisecond({{slack_ms:UInt32}})"
    " ORDER BY a.id"
)


def members(
    ch: Client, audience_id: str, after: str = "", limit: int = 1000, at: datetime | None = None
) -> list[str]:
    """Member profile ids after `after`, in order; as of `at` when given, else now."""
    params: dict[str, Any] = {"aid": audience_id, "after": after, "limit": limit}
    until = _until(params, at)
    return [row[0] for row in select(ch, _MEMBERS.replace("{until}", until), params)]


def is_member(ch: Client, audience_id: str, profile_id: str) -> bool:
    """Whether the profile is a member as of the audience's latest computation."""
    rows = select(ch, _IS_MEMBER, {"aid": audience_id, "pid": profile_id})
    return bool(rows and rows[0][0])


def member_count(ch: Client, audience_id: str, at: datetime | None = None) -> int:
    params: dict[str, Any] = {"aid": audience_id}
    until = _until(params, at)
    return int(select(ch, _COUNT.replace("{until}", until), params)[0][0])


def _until(params: dict[str, Any], at: datetime | None) -> str:
    if at is None:
        return ""
    params["until"] = sql_time(at)
    return f" AND at <= {{until:{_TIME}}}"


def diff(
    ch: Client, audience_id: str, computed_at: datetime, after: str = "", limit: int = 1000
) -> list[tuple[str, str]]:
    """(profile_id, 'entered' | 'exited') of the run at `computed_at`, in profile order, paged.

    Covers every change since the previous completed run, so changes left by an interrupted run
    are synced with the next one; a profile changed twice in that span shows its latest change."""
    since = select(ch, _PREVIOUS_RUN, {"aid": audience_id, "at": sql_time(computed_at)})[0][0]
    params = {
        "aid": audience_id,
        "since": sql_time(since) if since else "1970-01-01 00:00:00.000",
        "until": sql_time(computed_at),
        "after": after,
        "limit": limit,
    }
    return [(row[0], str(row[1])) for row in select(ch, _DIFF, params)]


def runs(ch: Client, audience_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest completed runs, newest first."""
    keys = ("audience_id", "computed_at", "members", "entered", "exited", "duration_ms")
    return [
        dict(zip(keys, row, strict=True)) for row in select(ch, _RUNS, {"aid": audience_id, "limit": limit})
    ]


def profile_audiences(ch: Client, profile_id: str) -> list[dict[str, Any]]:
    """The live audiences a profile is in now (for the Profile API), with the time it entered."""
    rows = select(ch, profile_audiences_sql("{pid:String}"), {"pid": profile_id})
    return [{"id": r[0], "key": r[1], "name": r[2], "entered_at": r[3]} for r in rows]


def profile_audiences_sql(profile: str) -> str:
    """(audience_id, key, name, since) of the live audiences `profile` (an SQL expression) is in now."""
    return (
        f"SELECT c.audience_id, a.key, a.name, c.since FROM ({memberships_sql(f'[{profile}]')}) AS c"
        " INNER JOIN (SELECT id, key, name FROM audiences FINAL WHERE deleted = 0) AS a"
        " ON a.id = c.audience_id ORDER BY a.key"
    )


def due(ch: Client, now: datetime, tick_s: float = 0) -> list[str]:
    """Ids of enabled audiences whose schedule says they should be computed at `now`.

    `tick_s` is how often the caller looks. A run starts a little after the tick that enqueued it,
    so the next look comes slightly less than `every_s` after it; an audience is due when its next
    run falls before the look after this one would be half a tick late, so `every_s: 60` runs at
    every 60-s tick, not every other one."""
    params = {"now": sql_time(now), "slack_ms": int(tick_s * 500)}
    return [row[0] for row in select(ch, _DUE, params)]
