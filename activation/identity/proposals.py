"""Imports and fuzzy merge proposals (ClickHouse shell around `records` and `fuzzy`).

Records with a hard identifier already known stitch as usual. The others are scored against
candidate profiles sharing a blocking key; proposals at or above the propose threshold are listed
for review, those at or above the auto threshold are applied at once. Accepting a proposal stores
a `proposal` link between the record and the profile, so stitching (limits included) does the rest.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.identity import links as link_store
from activation.identity import store
from activation.identity.fuzzy import Person, person_from_traits, score
from activation.identity.graph import Link
from activation.identity.identifiers import Identifier
from activation.identity.records import ImportRecord
from activation.identity.rules import Rules
from activation.identity.stitching import restitch_identifiers
from activation.privacy.person import PAIRS, PROFILES
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.erase import erase

_PROPOSAL_COLS = [
    "proposal_id",
    "record_id",
    "profile_id",
    "candidate_profile_id",
    "score",
    "detail",
    "status",
    "created_at",
    "decided_at",
    "version",
    "deleted",
]
_CANDIDATES = """
SELECT profile_id, groupArray((trait, value)) FROM profile_traits FINAL
WHERE deleted = 0
  AND trait IN ('name', 'first_name', 'last_name', 'firstName', 'lastName', 'email', 'phone', 'company')
  AND profile_id IN (
    SELECT profile_id FROM profile_traits FINAL WHERE deleted = 0 AND (
        (trait = 'email'
         AND concat('domain:', splitByChar('@', lower(JSONExtractString(value)))[-1]) IN {k:Array(String)})
     OR (trait = 'phone'
         AND concat('phone:', right(replaceRegexpAll(JSONExtractString(value), '[^0-9]', ''), 7))
         IN {k:Array(String)})
     OR (trait IN ('last_name', 'lastName', 'name')
         AND concat('name:', lower(arrayElement(splitByWhitespace(JSONExtractString(value)), -1)))
             IN {k:Array(String)})))
GROUP BY profile_id ORDER BY profile_id LIMIT 2000
"""


class ProposalError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def import_records(ch: Client, records: list[ImportRecord], batch_id: str, now: datetime) -> dict[str, Any]:
    """Store records, stitch them, propose (or auto-apply) fuzzy matches for the unmatched ones."""
    known = store.read_mapping(ch, {i for r in records for i in r.hard_ids})
    rows = [
        [
            r.record_id,
            batch_id,
            [tuple(i) for i in r.ids],
            orjson.dumps(r.traits).decode(),
            now,
            store.run_version() + 1,
            0,
        ]
        for r in records
    ]
    if rows:
        ch.insert(
            "identity_records",
            rows,
            column_names=["record_id", "batch_id", "ids", "traits", "imported_at", "version", "deleted"],
        )
    link_store.insert_links(
        ch, (Link(r.ids, now, f"import:{r.record_id}", f"import:{batch_id}", "import") for r in records)
    )
    restitch_identifiers(ch, {i for r in records for i in r.ids}, set(), now)
    unmatched = [r for r in records if not any(i in known for i in r.hard_ids)]
    proposed, applied = _propose(ch, unmatched, store.read_rules(ch), now)
    return {
        "imported": len(records),
        "matched": len(records) - len(unmatched),
        "proposals": proposed,
        "auto_applied": applied,
    }


def _propose(ch: Client, records: list[ImportRecord], rules: Rules, now: datetime) -> tuple[int, int]:
    people = {r.record_id: person_from_traits(r.traits) for r in records}
    keys = sorted({k for p in people.values() for k in p.block_keys()})
    if not keys:
        return 0, 0
    candidates = {
        pid: person_from_traits({t: orjson.loads(v) for t, v in pairs})
        for pid, pairs in ch.query(_CANDIDATES, parameters={"k": keys}).result_rows
    }
    own = store.read_mapping(ch, [Identifier("record", rid) for rid in people])
    decided = _decided(ch)
    found: list[list[Any]] = []
    for rid, person in sorted(people.items()):
        own_profile = own.get(Identifier("record", rid), "")
        for pid, total, detail in _matches(person, candidates, own_profile, rules.fuzzy_propose_threshold):
            proposal_id = hashlib.sha256(f"{rid}\x1f{pid}".encode()).hexdigest()[:20]
            if proposal_id not in decided:
                status = "auto" if total >= rules.fuzzy_auto_threshold else "open"
                found.append(
                    [
                        proposal_id,
                        rid,
                        own_profile,
                        pid,
                        total,
                        orjson.dumps(detail).decode(),
                        status,
                        now,
                        now if status == "auto" else None,
                        store.run_version() + 1,
                        0,
                    ]
                )
    if found:
        ch.insert("identity_proposals", found, column_names=_PROPOSAL_COLS)
    auto = [row for row in found if row[6] == "auto"]
    for row in auto:
        _apply(ch, row[1], row[3], row[0], now)
    return len(found), len(auto)


def _matches(
    person: Person, candidates: dict[str, Person], own: str, threshold: float
) -> list[tuple[str, float, dict[str, float]]]:
    scored = [(pid, *score(person, other)) for pid, other in candidates.items() if pid != own]
    best = sorted((s for s in scored if s[1] >= threshold), key=lambda s: (-s[1], s[0]))
    return best[:3]


def _decided(ch: Client) -> set[str]:
    sql = "SELECT proposal_id FROM identity_proposals FINAL WHERE deleted = 0 AND status != 'open'"
    return {r[0] for r in ch.query(sql).result_rows}


def decide(ch: Client, proposal_id: str, accept: bool, now: datetime) -> dict[str, Any]:
    """Accept (apply) or reject an open proposal."""
    cols = ", ".join(_PROPOSAL_COLS[:-2])
    sql = f"SELECT {cols} FROM identity_proposals FINAL WHERE proposal_id = {{i:String}}"
    rows = ch.query(sql, parameters={"i": proposal_id}).result_rows
    if not rows:
        raise ProposalError("not_found", f"no proposal {proposal_id}")
    row = list(rows[0])
    if row[6] != "open":
        raise ProposalError("conflict", f"proposal {proposal_id} is already {row[6]}")
    row[6], row[8] = ("accepted" if accept else "rejected"), now
    if accept:
        _apply(ch, row[1], row[3], proposal_id, now)
    ch.insert("identity_proposals", [[*row, store.run_version() + 1, 0]], column_names=_PROPOSAL_COLS)
    return proposal_dict(row)


def _apply(ch: Client, record_id: str, profile_id: str, proposal_id: str, now: datetime) -> None:
    members = store.read_members(ch, [profile_id])
    if not members:
        raise ProposalError("conflict", f"profile {profile_id} no longer exists; re-import to propose again")
    rules = store.read_rules(ch)
    anchor = min(members, key=rules.key)
    record = Identifier("record", record_id)
    link_store.insert_links(
        ch, [Link(tuple(sorted({record, anchor})), now, f"proposal:{proposal_id}", "proposal", "proposal")]
    )
    restitch_identifiers(ch, {record, anchor}, {profile_id}, now)


def list_proposals(ch: Client, status: str, after: str, limit: int) -> list[dict[str, Any]]:
    sql = (
        f"SELECT {', '.join(_PROPOSAL_COLS[:-2])} FROM identity_proposals FINAL WHERE deleted = 0 "
        "AND ({s:String} = '' OR status = {s:String}) AND proposal_id > {a:String} "
        "ORDER BY proposal_id LIMIT {n:UInt32}"
    )
    rows = ch.query(sql, parameters={"s": status, "a": after, "n": limit}).result_rows
    return [proposal_dict(list(r)) for r in rows]


def proposal_dict(row: list[Any]) -> dict[str, Any]:
    doc = dict(zip(_PROPOSAL_COLS[:-2], row, strict=True))
    doc["detail"] = orjson.loads(doc["detail"]) if doc["detail"] else {}
    for key in ("created_at", "decided_at"):
        doc[key] = doc[key].isoformat() if doc[key] else None
    return doc


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase the person's import records and every fuzzy proposal about them (privacy, SPEC §9)."""
    params = {**person.params(), "records": sorted(person.of_type("record"))}
    records = "{records:Array(String)}"
    return {
        "identity_records": erase(
            ch, "identity_records", f"hasAny(ids, {PAIRS}) OR record_id IN {records}", params
        ),
        "identity_proposals": erase(
            ch,
            "identity_proposals",
            f"record_id IN {records} OR profile_id IN {PROFILES} OR candidate_profile_id IN {PROFILES}",
            params,
        ),
    }
