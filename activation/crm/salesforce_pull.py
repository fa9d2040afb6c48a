"""Reading Salesforce incrementally: Bulk API 2.0 for an object's first load, then SOQL on
`SystemModstamp` paged by `nextRecordsUrl`; merges from `queryAll` (deleted losers carry
`MasterRecordId`), deletions from getDeleted.

Cursor phases per object (saved after every page):
- `bulk`: a query job `{job, locator}`; poll until `JobComplete`, then result pages of `page_size` rows
  (`Sforce-Locator`, the string `null` when done). Resuming reuses the job and locator.
- `changes`: `SELECT ... WHERE SystemModstamp >= window AND SystemModstamp <= until ORDER BY
  SystemModstamp, Id`; `next` is the nextRecordsUrl. An expired locator restarts at `seen`.
- `merges` (Contact, Lead, Account): the same window over `queryAll`, `IsDeleted = true AND
  MasterRecordId != null`.
- `deleted`: getDeleted from `deleted_mark - overlap` (never more than 15 days back, its limit) to
  `until`. The pass ends with `watermark = seen`, `deleted_mark = until`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from activation.crm.client import CrmClient, LimitReached
from activation.crm.pages import Page, iso_of, ms_of
from activation.crm.records import DEAL, PERSON, CrmRecord, ObjectSpec
from activation.destinations.base import AuthExpiredError, PermanentError, RetryableError
from activation.destinations.http import as_dict, as_list, excerpt
from activation.net import HttpResponse

DELETED_DAYS = 15
MERGEABLE = ("Contact", "Lead", "Account")
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class SalesforceConfig:
    instance_url: str
    login_url: str
    api_version: str
    objects: tuple[str, ...]
    overlap_s: int = 300
    page_size: int = 2000
    bulk_first_load: bool = True
    max_api_usage_pct: int = 80
    bulk_poll_s: float = 2.0
    every_s: int = 900

    @property
    def token_url(self) -> str:
        return f"{self.login_url}/services/oauth2/token"

    @property
    def api(self) -> str:
        return f"{self.instance_url}/services/data/{self.api_version}"


class LocatorExpired(PermanentError):
    pass


class Classifier:
    """Classifies responses and remembers the org's API usage from `Sforce-Limit-Info`."""

    def __init__(self, max_usage_pct: int) -> None:
        self.max_usage_pct = max_usage_pct
        self.usage: tuple[int, int] = (0, 0)

    def over_budget(self) -> bool:
        used, limit = self.usage
        return bool(limit) and used * 100 >= limit * self.max_usage_pct

    def __call__(self, response: HttpResponse) -> None:
        found = _USAGE.search(response.headers.get("sforce-limit-info", ""))
        if found:
            self.usage = (int(found.group(1)), int(found.group(2)))
        if response.status < 300:
            return
        first = as_dict(next(iter(as_list(response.json())), None))
        code = str(first.get("errorCode", "")) or f"HTTP {response.status}"
        message = f"salesforce: {code}: {excerpt(first.get('message', ''))}"
        if code == "REQUEST_LIMIT_EXCEEDED":
            raise LimitReached(message)
        if response.status == 401 or code == "INVALID_SESSION_ID":
            raise AuthExpiredError(message)
        if code == "INVALID_QUERY_LOCATOR":
            raise LocatorExpired(message)
        if response.status >= 500 or code in ("SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"):
            raise RetryableError(message)
        raise PermanentError(message)


def soql_fields(spec: ObjectSpec) -> list[str]:
    return ["Id", "SystemModstamp", *spec.fields]


def changes_soql(spec: ObjectSpec, window: int, until: int) -> str:
    return (
        f"SELECT {', '.join(soql_fields(spec))} FROM {spec.name}"
        f" WHERE SystemModstamp >= {iso_of(window)} AND SystemModstamp <= {iso_of(until)}"
        " ORDER BY SystemModstamp ASC, Id ASC"
    )


def merges_soql(spec: ObjectSpec, window: int) -> str:
    return (
        f"SELECT Id, MasterRecordId FROM {spec.name} WHERE IsDeleted = true AND MasterRecordId != null"
        f" AND SystemModstamp >= {iso_of(window)}"
    )


def to_record(spec: ObjectSpec, row: Mapping[str, Any]) -> CrmRecord:
    values = {k: v for k, v in row.items() if k != "attributes" and v not in (None, "")}
    account = str(values.get("AccountId") or "")
    label = (f"ext:salesforce_account_id:{account}",) if account else ()
    extra: dict[str, Any] = {}
    if spec.kind == DEAL:
        flag = {k: str(values.get(k, "")).lower() == "true" for k in ("IsClosed", "IsWon")}
        extra = {"amount": values.get("Amount"), "stage": values.get("StageName"),
                 "closed": flag["IsClosed"], "won": flag["IsWon"]}  # fmt: skip
    groups = label if spec.kind == PERSON else ()
    targets = label if spec.kind == DEAL else ()
    return CrmRecord(spec.name, str(values.get("Id", "")), values, ms_of(values.get("SystemModstamp")),
                     groups, targets, (), extra)  # fmt: skip


class SalesforcePuller:
    def __init__(self, client: CrmClient, cfg: SalesforceConfig) -> None:
        self.client, self.cfg = client, cfg
        self.classifier = client.classify if isinstance(client.classify, Classifier) else None

    async def pages(self, spec: ObjectSpec, cursor: dict[str, Any], now_ms: int) -> AsyncIterator[Page]:
        cur = dict(cursor)
        if "until" not in cur:
            mark = int(cur.get("watermark", 0))
            first = not mark and self.cfg.bulk_first_load
            window = max(0, mark - self.cfg.overlap_s * 1000)
            cur.update(
                window=window, until=now_ms, seen=mark, next=None, phase="bulk" if first else "changes"
            )
        steps = {"bulk": self._bulk_page, "changes": self._changes_page, "merges": self._merges_page,
                 "deleted": self._deleted_page}  # fmt: skip
        while cur.get("phase") in steps:
            self._check_budget()
            page = await steps[cur["phase"]](spec, cur)
            cur = page.cursor
            yield page

    def _check_budget(self) -> None:
        if self.classifier is not None and self.classifier.over_budget():
            used, limit = self.classifier.usage
            raise LimitReached(f"salesforce: API usage {used}/{limit} is past {self.cfg.max_api_usage_pct}%")

    def _after_changes(self, spec: ObjectSpec, cur: dict[str, Any]) -> dict[str, Any]:
        phase = "merges" if spec.name in MERGEABLE else "deleted"
        return {**cur, "phase": phase, "next": None}

    async def _query(self, path: str, soql: str | None, next_url: str | None) -> dict[str, object]:
        if next_url:
            response = await self.client.request("GET", self.cfg.instance_url + urlsplit(next_url).path)
        else:
            response = await self.client.request(
                "GET", f"{self.cfg.api}/{path}", params={"q": soql or ""},
                headers={"sforce-query-options": f"batchSize={self.cfg.page_size}"},
            )  # fmt: skip
        return as_dict(response.json())

    async def _changes_page(self, spec: ObjectSpec, cur: dict[str, Any]) -> Page:
        soql = changes_soql(spec, cur["window"], cur["until"])
        try:
            doc = await self._query("query", soql, cur.get("next"))
        except LocatorExpired:
            return Page({**cur, "window": cur["seen"], "next": None}, notes=("query locator expired",))
        records = tuple(to_record(spec, as_dict(r)) for r in as_list(doc.get("records")))
        seen = max([cur["seen"], *(r.modified_ms for r in records)])
        nxt = {**cur, "seen": seen, "next": doc.get("nextRecordsUrl") if not doc.get("done", True) else None}
        return Page(nxt if nxt["next"] else self._after_changes(spec, nxt), records)

    async def _merges_page(self, spec: ObjectSpec, cur: dict[str, Any]) -> Page:
        doc = await self._query("queryAll", merges_soql(spec, cur["window"]), cur.get("next"))
        merges = tuple(
            (str(r.get("Id")), str(r.get("MasterRecordId")))
            for r in (as_dict(x) for x in as_list(doc.get("records")))
            if r.get("Id") and r.get("MasterRecordId")
        )
        more = doc.get("nextRecordsUrl") if not doc.get("done", True) else None
        return Page(
            {**cur, "next": more} if more else {**cur, "phase": "deleted", "next": None}, merges=merges
        )

    async def _deleted_page(self, spec: ObjectSpec, cur: dict[str, Any]) -> Page:
        done = {"watermark": min(cur["seen"], cur["until"]) or cur["until"], "deleted_mark": cur["until"]}
        if "deleted_mark" not in cur:  # first load: nothing pulled before can have been deleted
            return Page(done)
        earliest = cur["until"] - (DELETED_DAYS * 86_400 - 3600) * 1000
        start = max(int(cur["deleted_mark"]) - self.cfg.overlap_s * 1000, earliest)
        # whole seconds in the URL: start rounded down, end rounded UP, so a deletion in until's own
        # second is in this window (rounded down, it waited for the next run); a window reaching up to
        # a second past `until` is harmless, deletions apply idempotently
        end = -(-int(cur["until"]) // 1000) * 1000
        params = {"start": iso_of(start)[:19] + "Z", "end": iso_of(end)[:19] + "Z"}
        url = f"{self.cfg.api}/sobjects/{spec.name}/deleted/"
        doc = as_dict((await self.client.request("GET", url, params=params)).json())
        ids = tuple(
            str(as_dict(d).get("id")) for d in as_list(doc.get("deletedRecords")) if as_dict(d).get("id")
        )
        notes = (
            (f"{spec.name}: deletions before {iso_of(start)} are past getDeleted's {DELETED_DAYS} days",)
            if (start > int(cur["deleted_mark"]) - self.cfg.overlap_s * 1000)
            else ()
        )
        return Page(done, deleted=ids, notes=notes)

    async def _bulk_page(self, spec: ObjectSpec, cur: dict[str, Any]) -> Page:
        if not cur.get("job"):
            body = {"operation": "query", "query": changes_soql(spec, 0, cur["until"]).split(" ORDER BY")[0]}
            response = await self.client.request(
                "POST", f"{self.cfg.api}/jobs/query", body=orjson.dumps(body)
            )
            return Page({**cur, "job": str(as_dict(response.json()).get("id")), "locator": None})
        await self._wait_for_job(cur["job"])
        params = {"maxRecords": str(self.cfg.page_size)}
        if cur.get("locator"):
            params["locator"] = cur["locator"]
        response = await self.client.request(
            "GET",
            f"{self.cfg.api}/jobs/query/{cur['job']}/results",
            params=params,
            headers={"accept": "text/csv"},
        )
        rows = csv.DictReader(io.StringIO(response.body.decode("utf-8-sig")))
        records = tuple(to_record(spec, row) for row in rows)
        seen = max([cur["seen"], *(r.modified_ms for r in records)])
        locator = response.headers.get("sforce-locator", "null")
        if locator and locator != "null":
            return Page({**cur, "seen": seen, "locator": locator}, records)
        finished = {k: v for k, v in cur.items() if k not in ("job", "locator")}
        return Page(self._after_changes(spec, {**finished, "seen": seen}), records)

    async def _wait_for_job(self, job_id: str) -> None:
        while True:
            response = await self.client.request("GET", f"{self.cfg.api}/jobs/query/{job_id}")
            state = as_dict(response.json()).get("state")
            if state == "JobComplete":
                return
            if state in ("Failed", "Aborted"):
                raise PermanentError(f"salesforce: bulk query job {job_id} {state}")
            await self.client.sleep(self.cfg.bulk_poll_s)
