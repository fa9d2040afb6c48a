"""The profile document: the identifier's profile (identity.lookup), then one query with that id bound
as `doc_pid` and its current identifiers as `doc_members`, its traits, computed traits, built-in
counters, identities, audiences (audiences.current) and consent (privacy.consent) as branches of one
UNION ALL, so an uncached read costs two round trips.

Each branch is a primary-key read of the profile's own rows: traits, computed traits and profiles are
ordered by profile; identity_map and audience_membership_changes are read by profile through their
`by_profile` projections (migration 0016; before it, their bloom filters read most of the mapping's
granules); consent_states by the profile's identifiers. No branch reads events, so the cost of a read
follows the profile's identifiers and pairs, not its history nor the store's size. The `consent`
trait comes with the traits branch (not read twice): the consent is the newest of it and the pairs'.

Measured (20k-profile bench store, loaded 2-core machine): rows read per document ~119k -> ~67k, but
ClickHouse CPU ~60 ms either way: most of it is per-subquery and per-branch work of the engine, not
rows read (each branch alone costs ~5-15 ms CPU on an empty table too).
"""

from __future__ import annotations

from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.audiences.membership import profile_audiences_sql
from activation.identity.identifiers import Identifier
from activation.identity.lookup import lookup
from activation.identity.resolve import members_sql
from activation.privacy.consent import consent_of
from activation.privacy.consent_states import newest_of_members_sql

_NO_TIME = "toDateTime64(0, 3, 'UTC')"
# every branch: kind, four strings, one time
_BRANCHES = {
    "doc_pid": f"SELECT 'i', doc_pid, '', '', '', {_NO_TIME}",
    # the time column: the `consent` trait is a consent signal too (_consent)
    "traits": "SELECT 't', trait, argMax(value, version), argMax(source_id, version),"
    " toString(argMax(updated_at, version)), argMax(updated_at, version) FROM profile_traits"
    " WHERE profile_id = doc_pid GROUP BY trait HAVING argMax(deleted, version) = 0",
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
    # events' consent, by the pairs of the profile's identifiers; the trait comes with the traits
    "consent": f"SELECT 'k', prefs, '', '', '', at FROM ({newest_of_members_sql('doc_members')})",
}
_UNION = " UNION ALL ".join(f"SELECT * FROM ({sql})" for sql in _BRANCHES.values())
# One thread per read: the branches are point reads, and the cores stay free for the cache hits the
# same machine serves meanwhile (profiles_api.fills bounds how many reads run at once).
_SETTINGS = {"max_threads": 1}
_MEMBERS = f"({members_sql('doc_pid')}) AS doc_members"  # read once, for identities and consent
_BY_ID = f"WITH {{p:String}} AS doc_pid, {_MEMBERS} {_UNION}"


def document(ch: Client, identifier: Identifier) -> dict[str, Any] | None:
    """The identifier's profile document, or None (unknown, deleted, not yet written).

    Two round trips: the lookup, then the document by id. Measured against one query binding the
    lookup as a scalar subquery: ~10-20 % less ClickHouse CPU (69-75 vs 77-93 ms, 3 interleaved runs
    on the bench store), and an unknown identifier costs the lookup alone."""
    profile_id = lookup(ch, identifier)
    return profile_document(ch, profile_id) if profile_id else None


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
    return {
        "profile_id": profile_id,
        "traits": traits,
        "computed_traits": computed,
        "identities": [{"type": t, "value": v} for t, v in identities],
        "audiences": audiences,
        "consent": _consent(rows),
    }


def _consent(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any] | None:
    """The newest consent signal (privacy.consent.latest_sql's rule): the newest of the pairs' events
    and the `consent` trait; on equal times the events' one."""
    signals = [(at, prefs) for prefs, _, _, _, at in rows.get("k", [])]
    signals += [(at, value) for name, value, _, _, at in rows.get("t", []) if name == "consent"]
    if not signals:
        return None
    at, prefs = max(signals, key=lambda signal: signal[0])
    return consent_of(prefs, at)


def _typed(builtin: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: builtin[k] for k in ("first_seen", "last_seen")}
    out.update({k: int(builtin[k]) for k in ("event_count", "session_count")})
    out["lifetime_revenue"] = float(builtin["lifetime_revenue"])
    out["is_bot"] = builtin["is_bot"] == "1"
    return out
