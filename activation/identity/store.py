"""Reading and writing the identity tables: mapping, ledger, conflicts, splits, settings.

Writes are diffs: a row is written only when its content changes, so re-running a stitch over
the same links writes nothing and the mapping stays byte-identical.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.identity.computed import ComputedTrait, definition_from_dict
from activation.identity.graph import Conflict, Merge, Split, Stitched
from activation.identity.identifiers import Identifier
from activation.identity.rules import Rules, rules_from_dict
from activation.privacy.person import PAIRS, PROFILES
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.client import Strings
from clickhouse.erase import erase

RULES_KEY = "rules"
MAX_BOUND_IDS = 5_000  # beyond this, binding the set as a parameter costs more than a scan
_LEDGER_COLS = [
    "profile_id",
    "ledger_id",
    "merged_profile_ids",
    "a_type",
    "a_value",
    "b_type",
    "b_value",
    "rule",
    "kind",
    "message_id",
    "source_id",
    "timestamp",
    "version",
    "deleted",
]
_CONFLICT_COLS = [
    "profile_id",
    "conflict_id",
    "other_profile_id",
    "a_type",
    "a_value",
    "b_type",
    "b_value",
    "rule",
    "detail",
    "kind",
    "message_id",
    "source_id",
    "timestamp",
    "version",
    "deleted",
]
_MAP_COLS = ["identifier_type", "identifier_value", "profile_id", "version", "deleted"]


class _VersionClock:
    """Row versions: microseconds since the epoch, times two, strictly increasing in this process."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last = max(self.last + 2, time.time_ns() // 1000 * 2)
        return self.last


_CLOCK = _VersionClock()


def run_version() -> int:
    """Versions of one write: `v` for tombstones, `v + 1` for fresh rows (see profiles.py)."""
    return _CLOCK.next()


def read_setting(ch: Client, name: str) -> str | None:
    sql = "SELECT argMax(value, version) FROM identity_settings WHERE name = {n:String} GROUP BY name"
    rows = ch.query(sql, parameters={"n": name}).result_rows
    return str(rows[0][0]) if rows else None


def write_setting(ch: Client, name: str, value: str, now: datetime) -> None:
    row = [name, value, now, run_version() + 1]
    ch.insert("identity_settings", [row], column_names=["name", "value", "updated_at", "version"])


def read_rules(ch: Client) -> Rules:
    return rules_of(read_setting(ch, RULES_KEY))


def rules_of(doc: str | None) -> Rules:
    """The rules stored under RULES_KEY (None: never set, the defaults)."""
    return rules_from_dict(orjson.loads(doc)) if doc else Rules()


def read_settings(ch: Client, names: list[str]) -> dict[str, str]:
    """Several settings in one read (a stitch tick's marks, watermark and rules); unset ones absent."""
    sql = (
        "SELECT name, argMax(value, version) FROM identity_settings"
        " WHERE name IN {n:Array(String)} GROUP BY name"
    )
    return {str(n): str(v) for n, v in ch.query(sql, parameters={"n": names}).result_rows}


def read_splits(ch: Client) -> list[Split]:
    sql = (
        "SELECT split_id, groupArray((identifier_type, identifier_value, side)) FROM identity_splits FINAL "
        "WHERE deleted = 0 GROUP BY split_id ORDER BY split_id"
    )
    return [
        Split(sid, {Identifier(t, v): int(s) for t, v, s in members})
        for sid, members in ch.query(sql).result_rows
    ]


def write_split(ch: Client, split: Split, profile_id: str, reason: str, now: datetime) -> None:
    rows = [
        [split.split_id, i.type, i.value, side, profile_id, reason, now, run_version() + 1, 0]
        for i, side in sorted(split.sides.items())
    ]
    cols = [
        "split_id",
        "identifier_type",
        "identifier_value",
        "side",
        "profile_id",
        "reason",
        "created_at",
        "version",
        "deleted",
    ]
    ch.insert("identity_splits", rows, column_names=cols)


def read_mapping(ch: Client, identifiers: Iterable[Identifier] | None = None) -> dict[Identifier, str]:
    """The live mapping, for the given identifiers or (None) for all."""
    sql = "SELECT identifier_type, identifier_value, profile_id FROM identity_current"
    if identifiers is None:
        rows = ch.query(sql).result_rows
    else:
        wanted = set(identifiers)
        if len(wanted) > MAX_BOUND_IDS:
            return {i: p for i, p in read_mapping(ch).items() if i in wanted}
        terms = [(i.type, i.value) for i in sorted(wanted)]
        where = " WHERE (identifier_type, identifier_value) IN {ids:Array(Tuple(String, String))}"
        rows = ch.query(sql + where, parameters={"ids": terms}).result_rows if terms else []
    return {Identifier(t, v): p for t, v, p in rows}


def write_mapping(ch: Client, old: dict[Identifier, str], new: dict[Identifier, str], version: int) -> int:
    """Write changed mappings and tombstone identifiers no longer mapped; return rows written."""
    rows: list[list[Any]] = [
        [i.type, i.value, p, version, 0] for i, p in sorted(new.items()) if old.get(i) != p
    ]
    rows += [[i.type, i.value, p, version, 1] for i, p in sorted(old.items()) if i not in new]
    _insert(ch, "identity_map", rows, _MAP_COLS)
    return len(rows)


def write_outcomes(ch: Client, stitched: Stitched, profile_ids: set[str] | None, version: int) -> None:
    """Replace ledger and conflict rows of the given profiles (None: all) by the newly computed ones."""
    ledger = {(m.profile_id, m.evidence.digest()): _ledger_row(m) for m in stitched.merges}
    conflicts = {(c.profile_id, c.evidence.digest()): _conflict_row(c) for c in stitched.conflicts}
    scope = (
        None
        if profile_ids is None
        else sorted(profile_ids | {k[0] for k in ledger} | {k[0] for k in conflicts})
    )
    _replace(ch, "merge_ledger", "ledger_id", _LEDGER_COLS, ledger, scope, version)
    _replace(ch, "identity_conflicts", "conflict_id", _CONFLICT_COLS, conflicts, scope, version)


def _replace(
    ch: Client,
    table: str,
    key: str,
    cols: list[str],
    fresh: dict[tuple[str, str], list[Any]],
    scope: list[str] | None,
    version: int,
) -> None:
    where = "" if scope is None else " AND profile_id IN {p:Array(String)}"
    data = ", ".join(cols[:-2])
    sql = f"SELECT {data} FROM {table} FINAL WHERE deleted = 0{where} ORDER BY profile_id, {key}"
    rows_now = ch.query(sql, parameters={"p": Strings(scope or [])}).result_rows if scope != [] else []
    current = {(r[0], r[1]): list(r) for r in rows_now}
    rows = [[*row, version, 0] for k, row in sorted(fresh.items()) if _differs(current.get(k), row)]
    rows += [[*row, version, 1] for k, row in sorted(current.items()) if k not in fresh]
    _insert(ch, table, rows, cols)


def _differs(current: list[Any] | None, row: list[Any]) -> bool:
    return current is None or [_plain(v) for v in current] != [_plain(v) for v in row]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return list(value) if isinstance(value, tuple) else value


def _ledger_row(m: Merge) -> list[Any]:
    e = m.evidence
    return [
        m.profile_id,
        e.digest(),
        list(m.merged),
        e.a.type,
        e.a.value,
        e.b.type,
        e.b.value,
        e.rule,
        e.kind,
        e.message_id,
        e.source_id,
        e.timestamp,
    ]


def _conflict_row(c: Conflict) -> list[Any]:
    e = c.evidence
    return [
        c.profile_id,
        e.digest(),
        c.other_profile_id,
        e.a.type,
        e.a.value,
        e.b.type,
        e.b.value,
        e.rule,
        c.detail,
        e.kind,
        e.message_id,
        e.source_id,
        e.timestamp,
    ]


def _insert(ch: Client, table: str, rows: list[list[Any]], cols: list[str]) -> None:
    for start in range(0, len(rows), 200_000):
        ch.insert(table, rows[start : start + 200_000], column_names=cols)


def read_definitions(ch: Client) -> list[ComputedTrait]:
    sql = "SELECT definition FROM computed_trait_definitions FINAL WHERE deleted = 0 ORDER BY name"
    return [definition_from_dict(orjson.loads(d)) for (d,) in ch.query(sql).result_rows]


def write_definition(ch: Client, definition: ComputedTrait | str, now: datetime) -> None:
    """Store a definition, or (given only a name) delete it."""
    deleted = isinstance(definition, str)
    name = definition if isinstance(definition, str) else definition.name
    doc = "" if isinstance(definition, str) else orjson.dumps(definition.to_dict()).decode()
    row = [name, doc, now, run_version() + 1, int(deleted)]
    ch.insert(
        "computed_trait_definitions",
        [row],
        column_names=["name", "definition", "updated_at", "version", "deleted"],
    )


def read_members(ch: Client, profile_ids: Iterable[str]) -> dict[Identifier, str]:
    """The live identifiers of the given profiles (skip index on profile_id, then the key)."""
    rows = ch.query(MEMBERS_SQL, parameters={"p": Strings(sorted(profile_ids))}).result_rows
    return {Identifier(t, v): p for t, v, p in rows}


MEMBERS_SQL = """
SELECT identifier_type, identifier_value, argMax(profile_id, version) AS pid FROM identity_map
WHERE (identifier_type, identifier_value) IN
    (SELECT identifier_type, identifier_value FROM identity_map WHERE profile_id IN {p:Array(String)})
GROUP BY identifier_type, identifier_value
HAVING pid IN {p:Array(String)} AND argMax(deleted, version) = 0
ORDER BY identifier_type, identifier_value
"""


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase the person from the mapping, splits, conflicts and merge ledger (privacy, SPEC §9)."""
    params, pair, profile = person.params(), f"IN {PAIRS}", f"IN {PROFILES}"
    mapped = f"(identifier_type, identifier_value) {pair} OR profile_id {profile}"
    sides = f"(a_type, a_value) {pair} OR (b_type, b_value) {pair}"
    return {
        "identity_map": erase(ch, "identity_map", mapped, params),
        "identity_splits": erase(ch, "identity_splits", mapped, params),
        "identity_conflicts": erase(
            ch, "identity_conflicts", f"profile_id {profile} OR other_profile_id {profile} OR {sides}", params
        ),
        "merge_ledger": erase(
            ch,
            "merge_ledger",
            f"profile_id {profile} OR hasAny(merged_profile_ids, {PROFILES}) OR {sides}",
            params,
        ),
    }
