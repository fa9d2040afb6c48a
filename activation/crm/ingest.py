"""Applying a page of CRM records to identity (synchronous: run it in a thread).

People and companies become identity records through the import path (`proposals.import_records`:
hard identifiers link at once, the rest get fuzzy proposals), with ids `<source>:<object>:<crm id>`,
so re-reading a page (overlap, a crash before its cursor was saved) rewrites the same records.
Deals are kept in `crm_objects` and summarised onto their people and companies. Merges link the
loser's external id to the survivor's and retire the loser's record; deletions retire records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.crm.pages import Page
from activation.crm.records import DEAL, CrmRecord, ObjectSpec, deal_summaries, record_id, to_import
from activation.identity import proposals
from activation.identity.identifiers import Identifier
from activation.identity.records import ImportRecord
from activation.identity.retirement import link_merged, retire_records
from activation.privacy.suppressions import identifier_hash

log = logging.getLogger("magpie.crm")
_SUPPRESSED = "SELECT hash FROM suppressions FINAL WHERE deleted = 0 AND hash IN {h:Array(String)}"


@dataclass(frozen=True)
class Target:
    source_id: str
    platform: str
    spec: ObjectSpec
    region: str = ""
    secret_key: str = field(default="", repr=False)  # to recognise suppressed identifiers (keyed hashes)


def apply_page(ch: Client, target: Target, page: Page, now: datetime) -> dict[str, int]:
    """Counts: fetched, created, updated, merged, deleted."""
    counts = {"fetched": len(page.records), "created": 0, "updated": 0, "merged": 0, "deleted": 0}
    if target.spec.kind == DEAL:
        counts.update(_apply_deals(ch, target, page, now))
    elif page.records:
        counts.update(_apply_records(ch, target, page.records, now))
    if page.merges:
        counts["merged"] = _apply_merges(ch, target, page.merges, now)
    if page.deleted and target.spec.kind != DEAL:
        rids = [record_id(target.source_id, target.spec.name, i) for i in page.deleted]
        counts["deleted"] = len(retire_records(ch, rids, now))
    return counts


def _live(ch: Client, record_ids: Sequence[str]) -> set[str]:
    sql = "SELECT record_id FROM identity_records FINAL WHERE record_id IN {r:Array(String)} AND deleted = 0"
    return {str(r[0]) for r in ch.query(sql, parameters={"r": list(record_ids)}).result_rows}


def _apply_records(ch: Client, t: Target, records: Sequence[CrmRecord], now: datetime) -> dict[str, int]:
    imports = [i for r in records if (i := to_import(t.source_id, t.platform, t.spec, r, t.region))]
    imports, suppressed = _without_suppressed(ch, t.secret_key, imports)
    known = _live(ch, [i.record_id for i in imports])
    proposals.import_records(ch, imports, t.source_id, now)
    created = sum(i.record_id not in known for i in imports)
    if suppressed:
        log.info("crm %s: %d suppressed records not imported", t.source_id, suppressed)
    return {"created": created, "updated": len(known)}


def _without_suppressed(
    ch: Client, secret_key: str, imports: list[ImportRecord]
) -> tuple[list[ImportRecord], int]:
    """A deleted-and-suppressed person stays out: CRM records carrying any suppressed identifier
    (email, phone, CRM id — the same keyed hashes the collector checks) are not imported."""
    if not secret_key or not imports:
        return imports, 0
    hashes = {i.record_id: {identifier_hash(secret_key, x) for x in i.ids} for i in imports}
    every = sorted(set().union(*hashes.values()))
    present = {str(r[0]) for r in ch.query(_SUPPRESSED, parameters={"h": every}).result_rows}
    kept = [i for i in imports if not hashes[i.record_id] & present]
    return kept, len(imports) - len(kept)


def _apply_merges(ch: Client, t: Target, merges: Sequence[tuple[str, str]], now: datetime) -> int:
    ext = f"ext:{t.spec.id_type}"
    pairs = [
        (Identifier(ext, loser), Identifier(ext, survivor)) for loser, survivor in merges if loser != survivor
    ]
    link_merged(ch, pairs, t.source_id, now)
    losers = [record_id(t.source_id, t.spec.name, loser.value) for loser, _ in pairs]
    return len(retire_records(ch, losers, now))


_DEALS = (
    "SELECT object_id, targets, deleted FROM crm_objects FINAL WHERE source_id = {s:String}"
    " AND object = {o:String} AND object_id IN {i:Array(String)}"
)
_TARGET_DEALS = (
    "SELECT t, properties FROM crm_objects FINAL ARRAY JOIN targets AS t WHERE source_id = {s:String}"
    " AND object = {o:String} AND deleted = 0 AND t IN {t:Array(String)}"
)


def _apply_deals(ch: Client, t: Target, page: Page, now: datetime) -> dict[str, int]:
    ids = [r.id for r in page.records] + list(page.deleted)
    params: dict[str, Any] = {"s": t.source_id, "o": t.spec.name, "i": ids}
    before = {
        str(oid): (list(targets), bool(d))
        for oid, targets, d in ch.query(_DEALS, parameters=params).result_rows
    }
    rows = [
        [t.source_id, t.spec.name, r.id, orjson.dumps(dict(r.extra)).decode(), list(r.targets), 0]
        for r in page.records
    ]
    gone = [i for i in page.deleted if i in before and not before[i][1]]
    rows += [[t.source_id, t.spec.name, i, "{}", before[i][0], 1] for i in gone]
    if rows:
        version = time.time_ns()
        data = [[*row, version] for row in rows]
        columns = ["source_id", "object", "object_id", "properties", "targets", "deleted", "version"]
        ch.insert("crm_objects", data, column_names=columns)
    touched = sorted(
        {x for r in page.records for x in r.targets} | {x for v, _ in before.values() for x in v}
    )
    if touched:
        by_target: dict[str, list[dict[str, Any]]] = {x: [] for x in touched}
        for label, raw in ch.query(_TARGET_DEALS, parameters={**params, "t": touched}).result_rows:
            by_target[str(label)].append(orjson.loads(raw))
        proposals.import_records(
            ch, deal_summaries(t.platform, by_target, t.source_id, t.region), t.source_id, now
        )
    live_before = {i for i, (_, d) in before.items() if not d}
    created = sum(r.id not in live_before for r in page.records)
    return {"created": created, "updated": len(page.records) - created, "deleted": len(gone)}
