"""Unmerge: split a wrong merge by recording a split and restitching the component.

Either undo one merge-ledger entry (its two identifiers go to different sides), or detach a list of
identifiers from the rest of the profile. The split is stored, so future stitching respects it;
identities, history (read through the mapping) and traits return to the right profiles.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity import store
from activation.identity.graph import Split
from activation.identity.identifiers import Identifier, normalise
from activation.identity.stitching import restitch_profiles


class UnmergeError(ValueError):
    def __init__(self, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.fields = code, fields or {}


def unmerge(ch: Client, profile_id: str, body: Any, now: datetime) -> dict[str, Any]:
    """Split the profile as asked; returns the split id and the profiles each side ended in."""
    members = set(store.read_members(ch, [profile_id]))
    if not members:
        raise UnmergeError("not_found", f"no profile {profile_id}")
    sides = _sides(ch, profile_id, members, body)
    split_id = hashlib.sha256(repr(sorted(sides.items())).encode()).hexdigest()[:16]
    reason = str(body.get("reason", ""))[:500]
    store.write_split(ch, Split(split_id, sides), profile_id, reason, now)
    restitch_profiles(ch, {profile_id}, now)
    after = store.read_mapping(ch, sides)
    return {
        "split_id": split_id,
        "profiles": sorted({after[i] for i in sides if i in after}),
        "sides": {str(n): sorted(i.label() for i, s in sides.items() if s == n) for n in (0, 1)},
    }


def _sides(ch: Client, profile_id: str, members: set[Identifier], body: Any) -> dict[Identifier, int]:
    if not isinstance(body, dict):
        raise UnmergeError("invalid_request", "body must be an object", {"": "expected an object"})
    if "ledger_id" in body:
        return _ledger_sides(ch, profile_id, str(body["ledger_id"]))
    raw = body.get("identifiers")
    if not isinstance(raw, list) or not raw:
        raise UnmergeError(
            "invalid_request",
            "give ledger_id or identifiers",
            {"identifiers": "a non-empty list of {type, value}"},
        )
    detach = {_identifier(item) for item in raw}
    if not detach <= members:
        raise UnmergeError(
            "invalid_request",
            "identifiers must belong to the profile",
            {"identifiers": "not all in this profile"},
        )
    rest = members - detach
    if not rest:
        raise UnmergeError("invalid_request", "nothing would remain", {"identifiers": "leave at least one"})
    return {**dict.fromkeys(detach, 0), **dict.fromkeys(rest, 1)}


def _ledger_sides(ch: Client, profile_id: str, ledger_id: str) -> dict[Identifier, int]:
    sql = (
        "SELECT a_type, a_value, b_type, b_value FROM merge_ledger FINAL WHERE deleted = 0 "
        "AND profile_id = {p:String} AND ledger_id = {l:String}"
    )
    rows = ch.query(sql, parameters={"p": profile_id, "l": ledger_id}).result_rows
    if not rows:
        raise UnmergeError(
            "not_found", f"no merge {ledger_id} in profile {profile_id}", {"ledger_id": "unknown"}
        )
    a_type, a_value, b_type, b_value = rows[0]
    return {Identifier(a_type, a_value): 0, Identifier(b_type, b_value): 1}


def _identifier(item: Any) -> Identifier:
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("type"), str)
        or not isinstance(item.get("value"), str)
    ):
        raise UnmergeError(
            "invalid_request",
            "identifiers are {type, value} objects",
            {"identifiers": "each item needs string type and value"},
        )
    return Identifier(item["type"], normalise(item["type"], item["value"]))
