"""Profile recomputation in ClickHouse: merged traits, built-in and user-defined computed traits.

Profiles are rebuilt from aggregate states (`activation.identity.states`, migrations 0009 and
0014), never from the events themselves: built-in and all-time traits from the states per pair and
event name, windowed computed traits from the states per day. The states of a profile's identifier
pairs are merged, so the cost of a recompute follows what the profile holds (pairs × event names,
× active days for a windowed trait), not the size of the event history, and merges or unmerges
only regroup pairs.

Bots: a profile is a bot when more than half of its events that carry a user agent of their own
(`context.userAgent`, which browsers, the tag and mobile SDKs send) are flagged as bots. Events
without one — server-side calls, whose only user agent is the HTTP client's (`curl`, an SDK) —
never count either way, so one backend event cannot turn a browser customer into a bot, and a
profile seen only from servers is not a bot. Individual bot events are still left out of audiences.

Sessions (`activation.identity.sessions`): a stitch tick counts each profile's sessions from its
own row (the span of its latest session, migration 0019) and the events of the tick's window, so a
profile's earlier sessions are not read again; a late event, a merge or unmerge, or a recompute
outside a tick counts them again from the states, which keep the (first, last) span of each
session seen per pair. Both give the count of walking the profile's events in time order.

Each recompute writes fresh rows at version `v + 1` for the profiles in scope, then tombstones
(at version `v`) whatever those profiles held before and no longer have. The `profiles` row is
written after the traits and computed traits: it marks a profile as complete, and readers
(`reads.lookup`) only hand out profiles that have it, so a profile is never seen half-written
(say, just after a merge moved its identifiers to a new profile id, before its traits are
written). Scope None means every profile (full restitch).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from activation.identity.computed import ComputedTrait, aggregate_sql
from activation.identity.sessions import KEYS_ALL, SWEEP, Window, counted
from activation.identity.states import EVENT_STATES, PAIR_STATES, TRAIT_STATES, Scope, bounded_scopes, owned
from activation.privacy.person import PROFILES
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.client import Strings, fit
from clickhouse.erase import erase


def _bound(name: str, type_: str) -> str:
    """The value bound for each profile in `sp` (aligned array `name`)."""
    return f"transform(profile_id, {{sp:Array(String)}}, {{{name}:Array({type_})}}, to{type_}(0))"


# Sessions (`activation.identity.sessions`): bound per profile for a scope; swept from every state
# for a full restitch, which also writes each profile's key so the next ticks count from its row.
_SCOPED_SESSIONS = {
    "SESSION_SESSIONS": _bound("sc", "UInt64"),
    "SESSION_START": f"fromUnixTimestamp64Milli({_bound('ss', 'Int64')}, 'UTC')",
    "SESSION_END": f"fromUnixTimestamp64Milli({_bound('se', 'Int64')}, 'UTC')",
    "SESSION_KEY": _bound("sk", "UInt64"),
    "SESSION_JOIN": "",
}
_ALL_SESSIONS = {
    "SESSION_SESSIONS": "length("
    + SWEEP.replace(
        "OPENS", "arrayMap(x -> toUnixTimestamp64Milli(x.1), groupArrayArray(sessions) AS spans)"
    ).replace("CLOSES", "arrayMap(x -> toUnixTimestamp64Milli(x.2), spans)")
    + " AS begins)",
    "SESSION_START": "fromUnixTimestamp64Milli(intDiv(arrayMax(arrayPushBack(begins, 0)), 2), 'UTC')",
    "SESSION_END": "max(last_seen)",
    "SESSION_KEY": "any(k.key)",
    "SESSION_JOIN": f"LEFT JOIN ({KEYS_ALL}) AS k USING (profile_id)",
}
_PROFILES = """
INSERT INTO profiles (profile_id, first_seen, last_seen, event_count, session_count, lifetime_revenue,
                      is_bot, sessions_start, sessions_end, sessions_key, version, deleted)
SELECT profile_id, min(first_seen), max(last_seen), sum(events), SESSION_SESSIONS,
    sum(revenue), sum(bot_ua_events) * 2 > sum(ua_events), SESSION_START, SESSION_END, SESSION_KEY,
    {v:UInt64} + 1, 0
FROM (STATES) AS st SESSION_JOIN GROUP BY profile_id
"""

# Imported / CRM records with the profile holding each: for a scope, by primary key from the
# scope's record identifiers (bound); for everything, through the mapping.
_RECORDS_SCOPED = (
    "SELECT transform(record_id, {r:Array(String)}, {rp:Array(String)}, '') AS profile_id,"
    " record_id, batch_id, imported_at, traits FROM identity_records FINAL"
    " WHERE deleted = 0 AND record_id IN {r:Array(String)}"
)
_RECORDS_ALL = (
    "SELECT m.profile_id AS profile_id, r.record_id AS record_id, r.batch_id AS batch_id,"
    " r.imported_at AS imported_at, r.traits AS traits"
    " FROM (SELECT record_id, batch_id, imported_at, traits FROM identity_records FINAL"
    " WHERE deleted = 0) AS r"
    " INNER JOIN (SELECT identifier_value, profile_id FROM identity_current WHERE identifier_type = 'record')"
    " AS m ON m.identifier_value = r.record_id"
)

_TRAITS = """
INSERT INTO profile_traits (profile_id, trait, value, source_id, updated_at, version, deleted)
SELECT profile_id, trait, argMax(value, ord), argMax(src, ord), max(ord.1), {v:UInt64} + 1, 0
FROM (
    SELECT profile_id, trait, argMaxMerge(value) AS value, argMaxMerge(source_id) AS src, max(ord) AS ord
    FROM (TRAIT_STATES) GROUP BY profile_id, trait
    RECORD_TRAITS
)
GROUP BY profile_id, trait
"""
_RECORD_TRAITS = """UNION ALL
    SELECT profile_id, kv.1, kv.2, concat('import:', batch_id), (imported_at, record_id)
    FROM (SELECT *, arrayJoin(JSONExtractKeysAndValuesRaw(traits)) AS kv FROM (RECORDS))"""

# Profiles known only from imported / CRM records (no events yet) are complete profiles too: the
# Profile API answers for them. Written after the event-based rows, only where those wrote none.
_RECORD_PROFILES = """
INSERT INTO profiles (profile_id, first_seen, last_seen, event_count, session_count, lifetime_revenue,
                      is_bot, version, deleted)
SELECT profile_id, min(imported_at), max(imported_at), 0, 0, 0, 0, {v:UInt64} + 1, 0
FROM (RECORDS)
WHERE profile_id != '' AND profile_id NOT IN
    (SELECT profile_id FROM profiles WHERE version = {v:UInt64} + 1 AND deleted = 0 AND PSCOPE)
GROUP BY profile_id
"""

# All-time traits read the pair states (a row per pair and event name), windowed ones the days.
_COMPUTED = """
INSERT INTO profile_computed_traits (profile_id, name, value, computed_at, version, deleted)
SELECT profile_id, {name:String}, AGG, {now:DateTime64(3, 'UTC')}, {v:UInt64} + 1, 0
FROM (STATES)
WHERE event = {event:String} DAYS
GROUP BY profile_id
"""
_IN_WINDOW = "AND day >= toDate({since:DateTime64(3, 'UTC')})"

CHUNK = 1000
_TOMBSTONES = {
    "profiles": "profile_id, first_seen, last_seen, event_count, session_count, lifetime_revenue, is_bot",
    "profile_traits": "profile_id, trait, value, source_id, updated_at",
    "profile_computed_traits": "profile_id, name, value, computed_at",
}


def recompute(
    ch: Client,
    scope: list[str] | None,
    version: int,
    now: datetime,
    definitions: list[ComputedTrait],
    window: Window | None = None,
) -> None:
    """Rebuild traits, computed traits and profile rows for the profiles in scope (None: all).
    `window`: the stitch tick's events (inserted_at range), from which sessions are counted onto
    each profile's row (`activation.identity.sessions`); without it they are counted again."""
    if scope is None:
        _recompute(ch, None, None, version, now, definitions, None)
    for start in range(0, len(scope or []), CHUNK):  # each chunk's identifiers bound, within a form field
        for bounded in bounded_scopes(ch, (scope or [])[start : start + CHUNK]):
            _recompute(ch, bounded.profile_ids, bounded, version, now, definitions, window)


def _recompute(
    ch: Client,
    ids: list[str] | None,
    scope: Scope | None,
    version: int,
    now: datetime,
    definitions: list[ComputedTrait],
    window: Window | None,
) -> None:
    params: dict[str, object] = {"v": version, **({"p": []} if scope is None else scope.params())}
    pairs, days, traits = owned(PAIR_STATES, ids), owned(EVENT_STATES, ids), owned(TRAIT_STATES, ids)
    has_records = scope is None or bool(params["r"])
    records = _RECORDS_ALL if scope is None else _RECORDS_SCOPED
    record_traits = _RECORD_TRAITS.replace("RECORDS", records) if has_records else ""
    _run(
        ch, _TRAITS.replace("TRAIT_STATES", traits).replace("RECORD_TRAITS", record_traits), parameters=params
    )
    for definition in definitions:
        windowed = definition.window_days > 0
        sql = _COMPUTED.replace("STATES", days if windowed else pairs).replace("DAYS", _IN_WINDOW * windowed)
        since = now - timedelta(days=definition.window_days)
        extra = {"name": definition.name, "event": definition.event, "prop": definition.property}
        sql = sql.replace("AGG", aggregate_sql(definition))
        _run(ch, sql, parameters={**params, **extra, "now": now, "since": since})
    profile_rows, sessions = _PROFILES, _ALL_SESSIONS
    if scope is not None:
        counts = counted(ch, scope, window)
        sp = sorted(counts)
        params |= {
            "sp": Strings(sp),
            "sc": [counts[p].count for p in sp],
            "ss": [counts[p].start for p in sp],
        }
        params |= {"se": [counts[p].end for p in sp], "sk": [counts[p].key for p in sp]}
        sessions = _SCOPED_SESSIONS
    for name, sql in sessions.items():
        profile_rows = profile_rows.replace(name, sql)
    _run(ch, profile_rows.replace("STATES", pairs), parameters=params)  # last: the profile is complete
    if has_records:
        pscope = "1" if scope is None else "profile_id IN {p:Array(String)}"
        _run(ch, _RECORD_PROFILES.replace("RECORDS", records).replace("PSCOPE", pscope), parameters=params)
    for table, cols in _TOMBSTONES.items():
        _tombstone(ch, table, cols, ids, version)


def _tombstone(ch: Client, table: str, cols: str, scope: list[str] | None, version: int) -> None:
    where = "" if scope is None else " AND profile_id IN {p:Array(String)}"
    sql = (
        f"INSERT INTO {table} ({cols}, version, deleted) SELECT {cols}, {{v:UInt64}}, 1 FROM {table} FINAL "
        f"WHERE deleted = 0 AND version < {{v:UInt64}}{where}"
    )
    _run(ch, sql, parameters={"v": version, "p": Strings(scope or [])})


def _run(ch: Client, sql: str, parameters: dict[str, object]) -> None:
    """A statement whose parameters may be large (a scope's identifiers): `query` sends them in the
    request body when they would not fit a URL, which `command` does not; an array that would not
    fit a form field either is bound in parts (`clickhouse.client.fit`)."""
    sql, bound = fit(sql, parameters)
    ch.query(sql, parameters=bound)


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase the person's profile rows, traits and computed traits (privacy, SPEC §9)."""
    where, params = f"profile_id IN {PROFILES}", person.params()
    return {t: erase(ch, t, where, params) for t in ("profiles", "profile_traits", "profile_computed_traits")}
