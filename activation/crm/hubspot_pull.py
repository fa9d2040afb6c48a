"""Reading HubSpot incrementally: CRM v3 search by modification time, re-windowed past the 10k cap,
then the archived listing for deletions. Merges come from the survivor's `hs_merged_object_ids`.

A pass over an object (its cursor, saved after every page):
- `window` (epoch ms, GTE) starts at `watermark - overlap`, `until` is the pass's start (LTE), results
  sorted ascending by the modification property; `after` is the search offset of the next page.
- When the next page would pass the result cap (offset + limit > cap, which HubSpot answers with a
  400), the search restarts with `window = seen` (the newest modification read) and no offset: records
  sharing that millisecond come back again and are applied idempotently. A window that cannot advance
  (more than `cap` records in one millisecond) stops with a permanent error rather than loop.
- Then `GET /crm/v3/objects/{type}?archived=true` pages (cursor `archived_after`); those archived since
  `archived_mark - overlap` are deletions. The pass ends with `watermark = seen`, `archived_mark = until`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from activation.crm.client import CrmClient
from activation.crm.pages import Page, ms_of, props
from activation.crm.records import DEAL, PERSON, CrmRecord, ObjectSpec
from activation.destinations.base import PermanentError
from activation.destinations.http import as_dict, as_list

MODIFIED = {"contacts": "lastmodifieddate"}  # companies, deals: hs_lastmodifieddate
ASSOCIATE = {"contacts": ("companies",), "deals": ("contacts", "companies")}
TARGET_TYPE = {"contacts": "hubspot_contact_id", "companies": "hubspot_company_id"}


@dataclass(frozen=True)
class PullConfig:
    base_url: str
    token_url: str
    objects: tuple[str, ...]
    overlap_s: int = 300
    page_size: int = 100
    search_cap: int = 10_000
    search_interval_s: float = 0.22
    every_s: int = 900


def modified_property(obj: str) -> str:
    return MODIFIED.get(obj, "hs_lastmodifieddate")


def search_body(spec: ObjectSpec, window: int, until: int, after: str | None, limit: int) -> dict[str, Any]:
    prop = modified_property(spec.name)
    filters = [
        {"propertyName": prop, "operator": "GTE", "value": str(window)},
        {"propertyName": prop, "operator": "LTE", "value": str(until)},
    ]
    body: dict[str, Any] = {
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
        "properties": sorted({*spec.fields, prop, "hs_merged_object_ids"}),
        "limit": limit,
    }
    return {**body, "after": after} if after else body


class HubSpotPuller:
    def __init__(self, client: CrmClient, cfg: PullConfig) -> None:
        self.client, self.cfg = client, cfg

    async def pages(self, spec: ObjectSpec, cursor: dict[str, Any], now_ms: int) -> AsyncIterator[Page]:
        cur = dict(cursor)
        if "until" not in cur:  # a new pass
            mark = int(cur.get("watermark", 0))
            cur.update(window=max(0, mark - self.cfg.overlap_s * 1000), until=now_ms, after=None, seen=mark)
            cur.update(phase="changes", archived_after=None)
        while cur.get("phase") == "changes":
            page = await self._search_page(spec, cur)
            cur = page.cursor
            yield page
        while cur.get("phase") == "archived":
            page = await self._archived_page(spec, cur)
            cur = page.cursor
            yield page

    async def _search_page(self, spec: ObjectSpec, cur: dict[str, Any]) -> Page:
        after = cur.get("after")
        if after and int(after) + self.cfg.page_size > self.cfg.search_cap:
            if cur["seen"] <= cur["window"]:
                raise PermanentError(
                    f"hubspot: more than {self.cfg.search_cap} {spec.name} share one modification time"
                )
            cur = {**cur, "window": cur["seen"], "after": None}
            after = None
        body = search_body(spec, cur["window"], cur["until"], after, self.cfg.page_size)
        url = f"{self.cfg.base_url}/crm/v3/objects/{spec.name}/search"
        response = await self.client.request(
            "POST", url, body=orjson.dumps(body), min_interval_s=self.cfg.search_interval_s
        )
        doc = as_dict(response.json())
        results = [as_dict(r) for r in as_list(doc.get("results"))]
        records = await self._records(spec, results)
        seen = max([cur["seen"], *(r.modified_ms for r in records)])
        next_after = as_dict(as_dict(doc.get("paging")).get("next")).get("after")
        nxt = {**cur, "seen": seen, "after": str(next_after) if next_after else None}
        if not next_after:
            nxt["phase"] = "archived"
        merges = tuple((loser, r.id) for r in records for loser in r.merged_ids)
        return Page(nxt, tuple(records), merges=merges)

    async def _records(self, spec: ObjectSpec, results: list[dict[str, Any]]) -> list[CrmRecord]:
        ids = [str(r.get("id")) for r in results if r.get("id")]
        links = await self._associations(spec, ids)
        records = []
        for result in results:
            rid = str(result.get("id", ""))
            values = props(result.get("properties"))
            modified = ms_of(values.get(modified_property(spec.name))) or ms_of(result.get("updatedAt"))
            merged = tuple(m for m in str(values.get("hs_merged_object_ids") or "").split(";") if m.strip())
            labels = tuple(sorted(links.get(rid, ())))
            groups = tuple(t for t in labels if "hubspot_company_id" in t) if spec.kind == PERSON else ()
            targets = labels if spec.kind == DEAL else ()
            extra = deal_fields(values) if spec.kind == DEAL else {}
            records.append(CrmRecord(spec.name, rid, values, modified, groups, targets, merged, extra))
        return records

    async def _associations(self, spec: ObjectSpec, ids: list[str]) -> dict[str, set[str]]:
        """`ext:<type>:<id>` labels of associated contacts/companies, by record id (v3 batch read)."""
        found: dict[str, set[str]] = {}
        for to in ASSOCIATE.get(spec.name, ()) if ids else ():
            url = f"{self.cfg.base_url}/crm/v3/associations/{spec.name}/{to}/batch/read"
            body = orjson.dumps({"inputs": [{"id": i} for i in ids]})
            response = await self.client.request("POST", url, body=body)
            for result in as_list(as_dict(response.json()).get("results")):
                source = str(as_dict(as_dict(result).get("from")).get("id", ""))
                for target in as_list(as_dict(result).get("to")):
                    target_id = as_dict(target).get("id")
                    if target_id:
                        found.setdefault(source, set()).add(f"ext:{TARGET_TYPE[to]}:{target_id}")
        return found

    async def _archived_page(self, spec: ObjectSpec, cur: dict[str, Any]) -> Page:
        params = {"archived": "true", "limit": str(min(100, self.cfg.page_size))}
        if cur.get("archived_after"):
            params["after"] = str(cur["archived_after"])
        url = f"{self.cfg.base_url}/crm/v3/objects/{spec.name}"
        doc = as_dict((await self.client.request("GET", url, params=params)).json())
        since = int(cur.get("archived_mark", 0)) - self.cfg.overlap_s * 1000
        deleted = tuple(
            str(r["id"])
            for r in (as_dict(x) for x in as_list(doc.get("results")))
            if r.get("id") and ms_of(r.get("archivedAt")) >= since
        )
        next_after = as_dict(as_dict(doc.get("paging")).get("next")).get("after")
        if next_after:
            return Page({**cur, "archived_after": str(next_after)}, deleted=deleted)
        done = {"watermark": min(cur["seen"], cur["until"]) or cur["until"], "archived_mark": cur["until"]}
        return Page(done, deleted=deleted)


def deal_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """A deal's summary inputs; closed/won from HubSpot's `hs_is_closed` / `hs_is_closed_won`."""
    stage = str(values.get("dealstage") or "")
    closed = str(values.get("hs_is_closed", "")).lower() == "true" or stage in ("closedwon", "closedlost")
    won = str(values.get("hs_is_closed_won", "")).lower() == "true" or stage == "closedwon"
    return {"amount": values.get("amount"), "stage": stage, "closed": closed, "won": won}
