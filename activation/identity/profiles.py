"""Profile recomputation in ClickHouse: merged traits, built-in and user-defined computed traits.

Bots: a profile is a bot when more than half of its events that carry a user agent of their own
(`context.userAgent`, which browsers, the tag and mobile SDKs send) are flagged as bots. Events
without one — server-side calls, whose only user agent is the HTTP client's (`curl`, an SDK) —
never count either way, so one backend event cannot turn a browser customer into a bot, and a
profile seen only from servers is not a bot. Individual bot events are still left out of audiences.

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

_EVENT_COLS = "type, event, timestamp, message_id, source_id, traits, context, properties, is_bot, user_agent"
_MAPPED = "(SELECT identifier_value, profile_id FROM identity_current WHERE identifier_type = '{t}')"
_SCOPED_EVENTS = f"""
SELECT if(u.profile_id != '', u.profile_id, a.profile_id) AS profile_id, {_EVENT_COLS}
FROM (SELECT user_id, anonymous_id, {_EVENT_COLS} FROM events
      WHERE user_id IN (SELECT identifier_value FROM identity_current
                        WHERE identifier_type = 'user_id' AND profile_id IN {{p:Array(String)}})
         OR anonymous_id IN (SELECT identifier_value FROM identity_current
                             WHERE identifier_type = 'anonymous_id'
                               AND profile_id IN {{p:Array(String)}})) AS e
LEFT JOIN {_MAPPED.format(t="user_id")} AS u ON u.identifier_value = e.user_id
LEFT JOIN {_MAPPED.format(t="anonymous_id")} AS a ON a.identifier_value = e.anonymous_id
WHERE profile_id IN {{p:Array(String)}}
"""
_ALL_EVENTS = f"SELECT profile_id, {_EVENT_COLS} FROM profile_events"

_PROFILES = """
INSERT INTO profiles (profile_id, first_seen, last_seen, event_count, session_count, lifetime_revenue,
                      is_bot, version, deleted)
SELECT profile_id, min(timestamp), max(timestamp), count(), countIf(gap_ms > 1800000), sum(revenue),
       countIf(is_bot = 1 AND user_agent != '') * 2 > countIf(user_agent != ''), {v:UInt64} + 1, 0
FROM (
    SELECT profile_id, timestamp, is_bot, user_agent,
        if(type = 'track', if(JSONHas(properties, 'revenue'), JSONExtractFloat(properties, 'revenue'),
                              JSONExtractFloat(properties, 'total')), 0) AS revenue,
        toUnixTimestamp64Milli(timestamp) - lagInFrame(toUnixTimestamp64Milli(timestamp), 1, toInt64(0))
            OVER (PARTITION BY profile_id ORDER BY timestamp, message_id
                  ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS gap_ms
    FROM (EVENTS)
)
GROUP BY profile_id
"""

_TRAITS = """
INSERT INTO profile_traits (profile_id, trait, value, source_id, updated_at, version, deleted)
SELECT profile_id, kv.1, argMax(kv.2, ord), argMax(src, ord), max(ts), {v:UInt64} + 1, 0
FROM (
    SELECT profile_id, source_id AS src, timestamp AS ts, (timestamp, message_id) AS ord,
        arrayJoin(JSONExtractKeysAndValuesRaw(
            if(type = 'identify', traits, JSONExtractRaw(context, 'traits'))))
            AS kv
    FROM (EVENTS) WHERE type != 'group'
    UNION ALL
    SELECT m.profile_id, concat('import:', r.batch_id), r.imported_at, (r.imported_at, r.record_id),
        arrayJoin(JSONExtractKeysAndValuesRaw(r.traits))
    FROM (SELECT * FROM identity_records FINAL WHERE deleted = 0) AS r
    INNER JOIN (SELECT identifier_value, profile_id FROM identity_current
                WHERE identifier_type = 'record') AS m
        ON m.identifier_value = r.record_id
    WHERE SCOPE
)
GROUP BY profile_id, kv.1
"""

_COMPUTED = """
INSERT INTO profile_computed_traits (profile_id, name, value, computed_at, version, deleted)
SELECT profile_id, {name:String}, AGG, {now:DateTime64(3, 'UTC')}, {v:UInt64} + 1, 0
FROM (EVENTS)
WHERE event = {event:String} AND timestamp >= {since:DateTime64(3, 'UTC')}
GROUP BY profile_id
"""

_TOMBSTONES = {
    "profiles": "profile_id, first_seen, last_seen, event_count, session_count, lifetime_revenue, is_bot",
    "profile_traits": "profile_id, trait, value, source_id, updated_at",
    "profile_computed_traits": "profile_id, name, value, computed_at",
}


def recompute(
    ch: Client, scope: list[str] | None, version: int, now: datetime, definitions: list[ComputedTrait]
) -> None:
    """Rebuild traits, computed traits and profile rows for the profiles in scope (None: all)."""
    if scope == []:
        return
    events = _ALL_EVENTS if scope is None else _SCOPED_EVENTS
    params: dict[str, object] = {"v": version, "p": scope or []}
    record_scope = "1" if scope is None else "m.profile_id IN {p:Array(String)}"
    ch.command(_TRAITS.replace("EVENTS", events).replace("SCOPE", record_scope), parameters=params)
    for definition in definitions:
        sql = _COMPUTED.replace("EVENTS", events).replace("AGG", aggregate_sql(definition))
        since = (
            now - timedelta(days=definition.window_days) if definition.window_days else datetime(1970, 1, 1)
        )
        extra = {
            "name": definition.name,
            "event": definition.event,
            "prop": definition.property,
            "now": now,
            "since": since,
        }
        ch.command(sql, parameters={**params, **extra})
    ch.command(_PROFILES.replace("EVENTS", events), parameters=params)  # last: the profile is complete
    for table, cols in _TOMBSTONES.items():
        _tombstone(ch, table, cols, scope, version)


def _tombstone(ch: Client, table: str, cols: str, scope: list[str] | None, version: int) -> None:
    where = "" if scope is None else " AND profile_id IN {p:Array(String)}"
    sql = (
        f"INSERT INTO {table} ({cols}, version, deleted) SELECT {cols}, {{v:UInt64}}, 1 FROM {table} FINAL "
        f"WHERE deleted = 0 AND version < {{v:UInt64}}{where}"
    )
    ch.command(sql, parameters={"v": version, "p": scope or []})
