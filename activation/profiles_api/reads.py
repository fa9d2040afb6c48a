"""The profile document in one ClickHouse query: the identifier's profile (identity.lookup) bound once
as `doc_pid` and its current identifiers as `doc_members`, then its traits, computed traits, built-in
counters, identities, audiences (audiences.current) and consent (privacy.consent) as branches of one
UNION ALL, so an uncached read costs one round trip.

Each branch hits a primary key or a skip index (traits, computed traits, profiles, identity_map and
consent_states are ordered by profile or identifier); no branch reads events, so the cost of a read
follows the profile's identifiers and pairs, not its history.
"""

from __future__ import annotations

from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.audiences.membership import profile_audiences_sql
from activation.identity.identifiers import Identifier
from activation.identity.lookup import PROFILE_OF
from activation.identity.resolve import members_sql
from activation.privacy.consent import consent_of, latest_sql

_NO_TIME = "toDateTime64(0, 3, 'UTC')"
# every branch: kind, four strings, one time
_BRANCHES = {
    "doc_pid": f"SELECT 'i', doc_pid, '', '', '', {_NO_TIME}",
    "traits": "SELECT 't', trait, argMax(value, version), argMax(source_id, version),"
    f" toString(argMax(updated_at, version)), {_NO_TIME} FROM profile_traits WHERE profile_id = doc_pid"
    " GROUP BY trait HAVING argMax(deleted, version) = 0",
    "computed": f"SELECT 'c', name, toString(argMax(value, version)), '', '', {_NO_TIME}"
    " FROM profile_computed_traits WHERE profile_id = doc_pid"
    " GROUP BY name HAVING argMax(deleted, version) = 0",
    "built_in": "SELECT 'p', toJSONString(map('first_seen', toString(argMax(first_seen, version)),"
    " 'last_seen', toString(argMax(last_seen, version)),"
    " 'event_count', toString(argMax(event_count, version)),"
    " 'session_count', toString(argMax(session_count, version)),"
    " 'lifetime_revenue', toString(argMax(lifetime_revenue, version)),"
    f" 'is_bot', toString(argMax(is_bot, version)))), '', '', '', {_NO_TIME}"
    " FROM profiles WHERE profile_id = doc_pid HAVING count() > 0 AND argMax(deleted, version) = 0",
    "identities": f"SELECT 'm', m.1, m.2, '', '', {_NO_TIME} FROM (SELECT arrayJoin(doc_members) AS m)",
    "audiences": f"SELECT 'a', audience_id, key, name, '', since FROM ({profile_audiences_sql('doc_pid')})",
    "consent": f"SELECT 'k', prefs, '', '', '', at FROM ({latest_sql('doc_pid', 'doc_members')})",
}
_UNION = " UNION ALL ".join(f"SELECT * FROM ({sql})" for sql in _BRANCHES.values())
# One thread per read: the branches are point reads, and the cores stay free for the cache hits the
# same machine serves meanwhile (profiles_api.fills bounds how many reads run at once).
_SETTINGS = {"max_threads": 1}
_MEMBERS = f"({members_sql('doc_pid')}) AS doc_members"  # read once, for identities and consent
DOCUMENT = f"WITH ({PROFILE_OF}) AS doc_pid, {_MEMBERS} {_UNION}"
_BY_ID = f"WITH {{p:String}} AS doc_pid, {_MEMBERS} {_UNION}"


def document(ch: Client, identifier: Identifier) -> dict[str, Any] | None:
    """The identifier's profile document, or None (unknown, deleted, not yet written)."""
    return _read(ch, DOCUMENT, {"t": identifier.type, "v": identifier.value})


def profile_document(ch: Client, profile_id: str) -> dict[str, Any] | None:
    """The document of a profile by id (tests, exports: no lookup)."""
    return _read(ch, _BY_ID, {"p": profile_id})


def _read(ch: Client, sql: str, params: dict[str, str]) -> dict[str, Any] | None:
    rows = ch.query(sql, parameters=params, settings=_SETTINGS).result_rows
    by_kind: dict[str, list[tuple[Any, ...]]] = {}
    for kind, *rest in rows:
        by_kind.setdefault(kind, []).append(tuple(rest))
    profile_id = by_kind.get("i", [("",)])[0][0]
    return _assemble(str(profile_id), by_kind) if profile_id else None


def _assemble(profile_id: str, rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    traits = {
        name: {"value": orjson.loads(value), "source_id": source, "updated_at": updated}
        for name, value, source, updated, _ in rows.get("t", [])
    }
    computed: dict[str, Any] = {name: float(value) for name, value, *_ in rows.get("c", [])}
    for builtin, *_ in rows.get("p", []):
        computed.update(_typed(orjson.loads(builtin)))
    identities = sorted((t, v) for t, v, *_ in rows.get("m", []))
    audiences = [
        {"id": aid, "key": key, "name": name, "entered_at": since}
        for aid, key, name, _, since in sorted(rows.get("a", []), key=lambda r: r[1])
    ]
    consent = [consent_of(prefs, at) for prefs, _, _, _, at in rows.get("k", [])]
    return {
        "profile_id": profile_id,
        "traits": traits,
        "computed_traits": computed,
        "identities": [{"type": t, "value": v} for t, v in identities],
        "audiences": audiences,
        "consent": consent[0] if consent else None,
    }


def _typed(builtin: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: builtin[k] for k in ("first_seen", "last_seen")}
    out.update({k: int(builtin[k]) for k in ("event_count", "session_count")})
    out["lifetime_revenue"] = float(builtin["lifetime_revenue"])
    out["is_bot"] = builtin["is_bot"] == "1"
    return out
