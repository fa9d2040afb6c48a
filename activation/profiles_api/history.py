"""A profile's history for the Profile API: its events (newest first, cursor-paged) and identities
with the merges and conflicts that shaped them.

Events are those of the profile's identifiers (their bloom filter indexes), each assigned to its
profile by the one rule in identity.resolve, then kept when that profile is this one.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.identity.resolve import resolved
from activation.identity.store import read_members

_CANDIDATES = (
    "SELECT message_id, source_id, type, event, user_id, anonymous_id, timestamp, properties, traits, context"
    " FROM events WHERE (user_id IN {u:Array(String)} OR anonymous_id IN {a:Array(String)})"
    " AND (timestamp, message_id, source_id) < ({ts:DateTime64(3, 'UTC')}, {mid:String}, {src:String})"
)
_EVENTS = (
    "SELECT message_id, source_id, type, event, user_id, anonymous_id, timestamp, properties, traits, context"
    f" FROM ({resolved(_CANDIDATES)}) WHERE profile_id = {{p:String}}"
    " ORDER BY timestamp DESC, message_id DESC, source_id DESC LIMIT {n:UInt32}"
)
_LEDGER = """
SELECT ledger_id, merged_profile_ids, a_type, a_value, b_type, b_value, rule, kind, message_id, source_id,
       timestamp
FROM merge_ledger FINAL WHERE profile_id = {p:String} AND deleted = 0 ORDER BY timestamp, ledger_id
"""
_CONFLICTS = """
SELECT conflict_id, profile_id, other_profile_id, a_type, a_value, b_type, b_value, rule, detail, message_id,
       source_id, timestamp
FROM identity_conflicts FINAL WHERE (profile_id = {p:String} OR other_profile_id = {p:String}) AND deleted = 0
ORDER BY timestamp, conflict_id LIMIT 1000
"""
_FAR_FUTURE = datetime(2200, 1, 1)


def profile_events(
    ch: Client, profile_id: str, cursor: str, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; the cursor is the position of the last event returned."""
    members = read_members(ch, [profile_id])
    users = [i.value for i in members if i.type == "user_id"]
    anons = [i.value for i in members if i.type == "anonymous_id"]
    ts, mid, src = decode_cursor(cursor) if cursor else (_FAR_FUTURE, "", "")
    params = {"u": users, "a": anons, "ts": ts, "mid": mid, "src": src, "n": limit, "p": profile_id}
    rows = ch.query(_EVENTS, parameters=params).result_rows
    events = [_segment_shape(r) for r in rows]
    last = rows[-1] if len(rows) == limit else None
    return events, (encode_cursor(last[6], last[0], last[1]) if last else None)


def _segment_shape(row: Any) -> dict[str, Any]:
    mid, src, type_, event, user, anon, ts, props, traits, context = row
    return {
        "messageId": mid,
        "sourceId": src,
        "type": type_,
        "event": event or None,
        "userId": user or None,
        "anonymousId": anon or None,
        "timestamp": ts.isoformat(),
        "properties": _json(props),
        "traits": _json(traits),
        "context": _json(context),
    }


def _json(text: str) -> Any:
    return orjson.loads(text) if text else {}


def encode_cursor(ts: datetime, message_id: str, source_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts.isoformat(), message_id, source_id])).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    """Raises ValueError on anything that is not a cursor this module made."""
    try:
        ts, mid, src = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(ts), str(mid), str(src)
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc


def profile_identities(ch: Client, profile_id: str) -> dict[str, Any]:
    identities = [{"type": i.type, "value": i.value} for i in sorted(read_members(ch, [profile_id]))]
    ledger = [_ledger_dict(r) for r in ch.query(_LEDGER, parameters={"p": profile_id}).result_rows]
    conflicts = [_conflict_dict(r) for r in ch.query(_CONFLICTS, parameters={"p": profile_id}).result_rows]
    return {"data": identities, "merges": ledger, "conflicts": conflicts, "next_cursor": None}


def _ledger_dict(r: Any) -> dict[str, Any]:
    return {
        "ledger_id": r[0],
        "merged_profile_ids": list(r[1]),
        "a": {"type": r[2], "value": r[3]},
        "b": {"type": r[4], "value": r[5]},
        "rule": r[6],
        "kind": r[7],
        "message_id": r[8],
        "source_id": r[9],
        "timestamp": r[10].isoformat(),
    }


def _conflict_dict(r: Any) -> dict[str, Any]:
    return {
        "conflict_id": r[0],
        "profile_id": r[1],
        "other_profile_id": r[2],
        "a": {"type": r[3], "value": r[4]},
        "b": {"type": r[5], "value": r[6]},
        "rule": r[7],
        "detail": r[8],
        "message_id": r[9],
        "source_id": r[10],
        "timestamp": r[11].isoformat(),
    }
