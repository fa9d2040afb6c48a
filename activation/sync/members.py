"""Member data for a batch of profile ids: current identifiers and merged traits, as `Member`s.

`field_mapping` fills destination fields from traits (`{"first_name": "given_name"}` sends the
`given_name` trait as `first_name`); `identifier_priority`, when set, keeps only those identifier
types, in that order (mapped fields are always kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from activation.db import Database
from activation.destinations import Member
from activation.destinations.base import JSONValue

_IDENTIFIERS = (
    "SELECT profile_id, identifier_type, identifier_value FROM identity_current"
    " WHERE profile_id IN {pids:Array(String)} ORDER BY profile_id, identifier_type, identifier_value"
)
_TRAITS = (
    "SELECT profile_id, trait, argMax(value, version) FROM profile_traits"
    " WHERE profile_id IN {pids:Array(String)} GROUP BY profile_id, trait"
    " HAVING argMax(deleted, version) = 0"
)


def decode_trait(raw: str) -> JSONValue:
    try:
        value: JSONValue = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    return value


def build_member(
    profile_id: str,
    identifiers: Mapping[str, Sequence[str]],
    traits: Mapping[str, JSONValue],
    field_mapping: Mapping[str, str],
    priority: Sequence[str],
) -> Member:
    """Pure: apply the destination's identifier priority and field mapping."""
    kept = {k: list(identifiers[k]) for k in priority if k in identifiers} if priority else dict(identifiers)
    kept = {k: v for k, v in kept.items() if v}
    for field_name, trait in field_mapping.items():
        value = traits.get(trait)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip():
            kept[field_name] = [str(value)]
    return Member(profile_id, kept, dict(traits))


def _group(rows: Iterable[tuple[Any, ...]]) -> dict[str, dict[str, list[str]]]:
    grouped: dict[str, dict[str, list[str]]] = {}
    for pid, kind, value in rows:
        grouped.setdefault(str(pid), {}).setdefault(str(kind), []).append(str(value))
    return grouped


async def load_members(
    db: Database, profile_ids: Sequence[str], field_mapping: Mapping[str, str], priority: Sequence[str]
) -> list[Member]:
    """Members in the order of `profile_ids`; a profile without data becomes a bare Member."""
    params = {"pids": list(profile_ids)}
    identifiers = _group(await db.rows(_IDENTIFIERS, params))
    traits: dict[str, dict[str, JSONValue]] = {}
    for pid, trait, raw in await db.rows(_TRAITS, params):
        traits.setdefault(str(pid), {})[str(trait)] = decode_trait(str(raw))
    return [
        build_member(pid, identifiers.get(pid, {}), traits.get(pid, {}), field_mapping, priority)
        for pid in profile_ids
    ]
