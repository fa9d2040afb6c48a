"""Session counts kept incrementally (migration 0019), for `activation.identity.profiles`.

A session is a stretch of a profile's events with no gap over 30 minutes (two events exactly 30
minutes apart are one session; a millisecond more, two). The states (0009, 0014) keep the spans of
the sessions seen per pair, and a profile's count is the sweep over all its pairs' spans: correct,
but it reads every session the profile ever had, on every recompute.

So a profile row also keeps the span of its latest session (`sessions_start`, `sessions_end`) and
a key of the identifiers owning its rows (`sessions_key`). Every earlier session ended more than 30
minutes before `sessions_start`, so an event at or after it can only extend the latest session or
open a new one: a stitch tick counts the profile's sessions from that row and the events of its
window (inserted_at range) alone — `sealed` below. The profile is counted again from all its states
(`recounted`) when that does not hold:
- no row, or one without a key (a new profile, a new profile id after a merge, a row written
  before 0019);
- a different key: identifiers joined or left (merge, unmerge), or a pair moved to or from the
  profile (its user id was mapped or unmapped);
- an event of the window timestamped before `sessions_start` (a late or back-dated event, an
  offline mobile queue, an import): it may join or split earlier sessions;
- a recompute outside a tick (restitch, unmerge, full restitch): no window to count from.
An event read twice (the tick's overlap re-read) changes nothing: it lies in the latest session, or
before it and so recounts. A recount adds the window's events to the states' spans, so an event whose
states were not visible yet when the recount read them (the states are written by the same insert,
just after the event) is still counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity.resolve import resolved_in_scope
from activation.identity.states import PAIR_STATES, Scope, owned
from clickhouse.client import fit

GAP_MS = 1_800_000  # more than 30 minutes between two events starts a new session

Window = tuple[datetime, datetime]  # a stitch tick's events: inserted_at in (since, until]


@dataclass(frozen=True)
class Sessions:
    count: int
    start: int  # the latest session's first event (epoch ms)
    end: int  # and its last
    key: int  # the identifiers counted (`_KEYS`)


# The key of each profile: XOR of a hash per user id, anonymous id and owned pair (user id, anonymous
# id) whose user id is mapped to no profile — the rows `states.owned` gives the profile. `_KEYS_ALL`
# is the same over the whole mapping (a full restitch), so a full restitch leaves keys a tick agrees with.
_KEYS = """
SELECT x.1, groupBitXor(x.2) FROM (SELECT arrayJoin(arrayConcat(
    arrayMap((v, p) -> (p, cityHash64('user_id', v)), {u:Array(String)}, {up:Array(String)}),
    arrayMap((v, p) -> (p, cityHash64('anonymous_id', v)), {an:Array(String)}, {ap:Array(String)}),
    arrayMap(x -> (transform(x.2, {an:Array(String)}, {ap:Array(String)}, ''), cityHash64('xp', x.1, x.2)),
             {xp:Array(Tuple(String, String))}))) AS x)
GROUP BY x.1
"""
KEYS_ALL = """
SELECT profile_id, groupBitXor(h) AS key FROM (
    SELECT profile_id,
        cityHash64(if(identifier_type = 'user_id', 'user_id', 'anonymous_id'), identifier_value) AS h
    FROM identity_current WHERE identifier_type IN ('user_id', 'anonymous_id')
    UNION ALL
    SELECT m.profile_id, cityHash64('xp', x.user_id, x.anonymous_id)
    FROM (SELECT anonymous_id, user_id FROM profile_pairs FINAL WHERE user_id NOT IN
            (SELECT identifier_value FROM identity_current WHERE identifier_type = 'user_id')) AS x
    INNER JOIN (SELECT identifier_value, profile_id FROM identity_current
                WHERE identifier_type = 'anonymous_id') AS m ON m.identifier_value = x.anonymous_id
)
GROUP BY profile_id
"""
_SEALS = """
SELECT profile_id, session_count, toUnixTimestamp64Milli(sessions_start),
       toUnixTimestamp64Milli(sessions_end), sessions_key
FROM profiles FINAL WHERE profile_id IN {p:Array(String)} AND deleted = 0
"""
# The window's events of the scope, as session spans per profile (the sweep of 0015 over its events).
_WINDOW_EVENTS = (
    "(SELECT user_id, anonymous_id, timestamp FROM events"
    " WHERE inserted_at > {since:DateTime64(6, 'UTC')} AND inserted_at <= {until:DateTime64(6, 'UTC')}"
    " AND (user_id != '' OR anonymous_id != ''))"
)
_WINDOW = f"""
SELECT profile_id, arrayFilter((t, b) -> b, ts, begins),
       arrayFilter((t, b) -> b, ts, arrayPushBack(arrayPopFront(begins), 1))
FROM (
    SELECT profile_id, arraySort(groupArray(toUnixTimestamp64Milli(timestamp))) AS ts,
           arrayMap((gap, i) -> toUInt8(i = 1 OR gap > {GAP_MS}), arrayDifference(ts), arrayEnumerate(ts))
               AS begins
    FROM ({resolved_in_scope(_WINDOW_EVENTS)}) GROUP BY profile_id
)
"""
# Sweep over spans: each opens at its start and closes 30 minutes after its end (a close sorts after
# an open at the same instant, so touching stretches join); a session begins where an open finds
# nothing open. Points are Int64 (ms * 2, + 1 for a close) so the sort is numeric. OPENS / CLOSES:
# the spans' starts and ends (ms).
SWEEP = (
    "arrayFilter((x, d, n) -> d = 1 AND n = 1, arraySort(arrayConcat(arrayMap(t -> t * 2, OPENS),"
    f" arrayMap(t -> (t + {GAP_MS}) * 2 + 1, CLOSES))) AS points,"
    " arrayMap(x -> 1 - 2 * (x % 2), points) AS deltas, arrayCumSum(deltas))"
)
_RECOUNT = """
SELECT profile_id, length(begins), intDiv(arrayMax(arrayPushBack(begins, 0)), 2),
       arrayMax(arrayPushBack(closes, 0))
FROM (
    SELECT profile_id, groupArrayArray(sessions) AS spans, indexOf({wp:Array(String)}, profile_id) AS w,
        arrayConcat(arrayMap(s -> toUnixTimestamp64Milli(s.1), spans), {ws:Array(Array(Int64))}[w]) AS opens,
        arrayConcat(arrayMap(s -> toUnixTimestamp64Milli(s.2), spans), {we:Array(Array(Int64))}[w]) AS closes,
        SWEEP AS begins
    FROM (PAIRS) GROUP BY profile_id
)
""".replace("SWEEP", SWEEP.replace("OPENS", "opens").replace("CLOSES", "closes"))


def counted(ch: Client, scope: Scope, window: Window | None) -> dict[str, Sessions]:
    """The sessions of each profile of the scope that has events (module docstring)."""
    params = scope.params()
    keys = {str(p): int(k) for p, k in _query(ch, _KEYS, params).result_rows}
    spans: dict[str, list[tuple[int, int]]] = {}
    seals: dict[str, Sessions] = {}
    if window is not None:
        bounds = {"since": window[0], "until": window[1]}
        for pid, starts, ends in _query(ch, _WINDOW, {**params, **bounds}).result_rows:
            spans[str(pid)] = list(zip(starts, ends, strict=True))
        for pid, count, start, end, key in _query(ch, _SEALS, params).result_rows:
            seals[str(pid)] = Sessions(int(count), int(start), int(end), int(key))
    out: dict[str, Sessions] = {}
    again: list[str] = []
    for pid in scope.profile_ids:
        seal, new, key = seals.get(pid), spans.get(pid, []), keys.get(pid, 0)
        if (
            seal is not None
            and seal.key == key != 0
            and seal.count > 0
            and all(s >= seal.start for s, _ in new)
        ):
            out[pid] = sealed(seal, new)
        else:
            again.append(pid)
    if again:
        out |= recounted(ch, scope.only(again), {p: spans[p] for p in again if p in spans}, keys)
    return out


def _query(ch: Client, sql: str, params: dict[str, object]) -> Any:
    """A read with the scope's arrays bound, each cut to fit a form field (`clickhouse.client.fit`)."""
    sql, bound = fit(sql, params)
    return ch.query(sql, parameters=bound)


def sealed(seal: Sessions, spans: list[tuple[int, int]]) -> Sessions:
    """The count from a profile's row and its new spans, all starting at or after its latest session."""
    count, start, end = 0, seal.start, seal.end
    for s, e in sorted([(seal.start, seal.end), *spans]):
        if count == 0 or s > end + GAP_MS:
            count, start, end = count + 1, s, e
        else:
            end = max(end, e)
    return Sessions(seal.count - 1 + count, start, end, seal.key)


def recounted(
    ch: Client, scope: Scope, spans: dict[str, list[tuple[int, int]]], keys: dict[str, int]
) -> dict[str, Sessions]:
    """The count from all the states of the scope's pairs, plus the window's spans."""
    ids = sorted(spans)
    window = {
        "wp": ids,
        "ws": [[s for s, _ in spans[p]] for p in ids],
        "we": [[e for _, e in spans[p]] for p in ids],
    }
    sql = _RECOUNT.replace("PAIRS", owned(PAIR_STATES, scope.profile_ids))
    rows = _query(ch, sql, {**scope.params(), **window}).result_rows
    return {
        str(pid): Sessions(int(count), int(start), int(end), keys.get(str(pid), 0))
        for pid, count, start, end in rows
    }
