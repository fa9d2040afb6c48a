"""What trait sync writes: each member's mapped values and the diff against what the CRM last
confirmed (`crm_trait_state`). Pure functions plus the reads and the checkpoint write.

A mapping source is a profile trait (`plan`), a computed trait (`computed:orders_90d`, or a built-in:
`lifetime_revenue`, `event_count`, `session_count`, `first_seen`, `last_seen`), or an audience
membership (`audience:<key>` → true/false). A value that disappears is cleared in the CRM (None),
once; unchanged values are never resent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from activation.audiences.current import memberships_sql
from activation.db import Database
from activation.destinations.base import JSONValue

BUILT_INS = ("lifetime_revenue", "event_count", "session_count", "first_seen", "last_seen")
_COMPUTED = (
    "SELECT profile_id, name, argMax(value, version) FROM profile_computed_traits"
    " WHERE profile_id IN {p:Array(String)} GROUP BY profile_id, name HAVING argMax(deleted, version) = 0"
)
_BUILT_INS = (
    "SELECT profile_id, argMax(lifetime_revenue, version), argMax(event_count, version),"
    " argMax(session_count, version), toString(argMax(first_seen, version)),"
    " toString(argMax(last_seen, version)) FROM profiles WHERE profile_id IN {p:Array(String)}"
    " GROUP BY profile_id HAVING argMax(deleted, version) = 0"
)
_MEMBERSHIPS = (
    f"SELECT a.key, m.profile_id FROM ({memberships_sql('{p:Array(String)}')})"
    " AS m INNER JOIN (SELECT id, key FROM audiences FINAL WHERE deleted = 0) AS a ON a.id = m.audience_id"
)
_CONFIRMED = (
    "SELECT profile_id, field, argMax(value, version) FROM crm_trait_state WHERE destination_id = {d:String}"
    " AND profile_id IN {p:Array(String)} GROUP BY profile_id, field"
)


def desired(
    mapping: Mapping[str, str],
    traits: Mapping[str, JSONValue],
    computed: Mapping[str, JSONValue],
    audiences: set[str],
) -> dict[str, JSONValue]:
    """CRM field → value for one profile (None where the source has no value)."""
    out: dict[str, JSONValue] = {}
    for source, field in mapping.items():
        if source.startswith("audience:"):
            out[field] = source.removeprefix("audience:") in audiences
        elif source.startswith("computed:"):
            out[field] = computed.get(source.removeprefix("computed:"))
        else:
            out[field] = traits[source] if source in traits else computed.get(source)
    return out


def changed(wanted: Mapping[str, JSONValue], confirmed: Mapping[str, str]) -> dict[str, JSONValue]:
    """Fields whose value differs from the confirmed one; a None never confirmed is not sent."""
    out: dict[str, JSONValue] = {}
    for field, value in wanted.items():
        text = orjson.dumps(value).decode()
        if confirmed.get(field, "null") != text:
            out[field] = value
    return out


async def computed_values(db: Database, pids: Sequence[str]) -> dict[str, dict[str, JSONValue]]:
    out: dict[str, dict[str, JSONValue]] = {p: {} for p in pids}
    for pid, name, value in await db.rows(_COMPUTED, {"p": list(pids)}):
        out[str(pid)][str(name)] = float(value)
    for pid, *values in await db.rows(_BUILT_INS, {"p": list(pids)}):
        revenue, events, sessions, first, last = values
        out[str(pid)].update(
            zip(BUILT_INS, (float(revenue), int(events), int(sessions), first, last), strict=True)
        )
    return out


async def memberships(db: Database, pids: Sequence[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {p: set() for p in pids}
    for key, pid in await db.rows(_MEMBERSHIPS, {"p": list(pids)}):
        out[str(pid)].add(str(key))
    return out


async def confirmed_values(
    db: Database, destination_id: str, pids: Sequence[str]
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {p: {} for p in pids}
    for pid, field, value in await db.rows(_CONFIRMED, {"d": destination_id, "p": list(pids)}):
        out[str(pid)][str(field)] = str(value)
    return out


async def confirm(
    db: Database, destination_id: str, run_id: str, values: Mapping[str, Mapping[str, Any]]
) -> None:
    """Checkpoint: what the CRM now holds, per profile and field."""
    version = time.time_ns()
    rows = [
        [destination_id, pid, field, orjson.dumps(value).decode(), run_id, version]
        for pid, fields in values.items()
        for field, value in fields.items()
    ]
    if rows:
        await db.insert(
            "crm_trait_state", rows, ("destination_id", "profile_id", "field", "value", "run_id", "version")
        )
