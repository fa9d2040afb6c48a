"""Fake Salesforce org for CRM pulls and trait sync (REST query, Bulk API 2.0 query, getDeleted,
sObject Collections update/upsert, OAuth refresh).

Enforces: a current Bearer session (401 `INVALID_SESSION_ID` otherwise); `Sforce-Limit-Info:
api-usage=N/M` on every response and 403 `REQUEST_LIMIT_EXCEEDED` past M (never 429); SOQL over the
fields asked for, `SystemModstamp >=`/`<=`, `IsDeleted = true`, `MasterRecordId != null`, ORDER BY
SystemModstamp; `query` leaves deleted rows out, `queryAll` keeps them; pages of `batchSize`
(`Sforce-Query-Options`, 200..2000) with `nextRecordsUrl` locators (`expire_locators()` makes them
400 `INVALID_QUERY_LOCATOR`); bulk query jobs that complete after `bulk_polls` status reads, results
only when complete (412), CSV pages of `maxRecords` with `Sforce-Locator` (`null` at the end); getDeleted
only within 15 days (400 `INVALID_REPLICATION_DATE`); Collections of ≤ 200 records, each with
`attributes.type`, answered in request order with per-record errors (HTTP 200). Merges delete the
losers with `MasterRecordId` = the winner; deletions are logged for getDeleted.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

PREFIX = {"Contact": "003", "Lead": "00Q", "Account": "001", "Opportunity": "006"}
_SOQL = re.compile(
    r"^SELECT (?P<fields>.+?) FROM (?P<obj>\w+)(?: WHERE (?P<where>.+?))?(?: ORDER BY (?P<order>.+))?$"
)


def sf_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response([{"message": message, "errorCode": code}], status=status)


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("+0000", "+00:00"))


class FakeSalesforceCrm(FakeServer):
    def __init__(self, *, api_limit: int = 100_000, bulk_polls: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_limit, self.api_used, self.bulk_polls = api_limit, 0, bulk_polls
        self.records: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in PREFIX}
        self.deleted_log: list[tuple[str, str, datetime]] = []
        self.locators: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.clock = datetime.now(UTC) - timedelta(days=1)
        self.rotate_refresh = False
        self._seq = itertools.count(secrets.randbelow(10**9) * 1000 + 1)  # orgs' ids never collide

    # -- control API -------------------------------------------------------------------------------
    def _stamp(self) -> str:
        """The org's clock: real time (records changed in one burst share a millisecond)."""
        self.clock = max(self.clock, datetime.now(UTC))
        return iso(self.clock)

    def put(self, obj: str, **fields: Any) -> str:
        record_id = f"{PREFIX[obj]}{next(self._seq):012d}AAA"
        self.records[obj][record_id] = {"Id": record_id, **fields, "IsDeleted": False, "MasterRecordId": None,
                                        "SystemModstamp": self._stamp()}  # fmt: skip
        return record_id

    def update(self, obj: str, record_id: str, **fields: Any) -> None:
        self.records[obj][record_id].update(fields, SystemModstamp=self._stamp())

    def delete(self, obj: str, record_id: str, master: str | None = None) -> None:
        self.records[obj][record_id].update(
            IsDeleted=True, MasterRecordId=master, SystemModstamp=self._stamp()
        )
        self.deleted_log.append((obj, record_id, self.clock))

    def merge(self, obj: str, winner: str, loser: str) -> None:
        self.update(obj, winner)
        self.delete(obj, loser, master=winner)

    def expire_locators(self) -> None:
        self.locators.clear()

    def live(self, obj: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.records[obj].items() if not v["IsDeleted"]}

    # -- plumbing ------------------------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/services/oauth2/token", self.token)
        base = "/services/data/{version}"
        router.add_get(base + "/query", self.query)
        router.add_get(base + "/queryAll", self.query_all)
        router.add_get(base + "/query/{locator}", self.more)
        router.add_post(base + "/jobs/query", self.create_job)
        router.add_get(base + "/jobs/query/{job}", self.job_status)
        router.add_get(base + "/jobs/query/{job}/results", self.job_results)
        router.add_get(base + "/sobjects/{obj}/deleted/", self.get_deleted)
        router.add_patch(base + "/composite/sobjects", self.collection_update)
        router.add_patch(base + "/composite/sobjects/{obj}/{field}", self.collection_upsert)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    def auth_error_response(self) -> web.StreamResponse:
        return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def echo_response(self, text: str) -> web.StreamResponse:
        return sf_error(400, "INVALID_FIELD", text)

    def server_error_response(self) -> web.StreamResponse:
        return sf_error(503, "SERVER_UNAVAILABLE", "server unavailable")

    def _guard(self, request: web.Request) -> web.Response | None:
        if not self.bearer_ok(request):
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self.api_used += 1
        if self.api_used > self.api_limit:
            return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return None

    def _ok(self, body: Any, status: int = 200, **headers: str) -> web.Response:
        usage = {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}
        return web.json_response(body, status=status, headers={**usage, **headers})

    async def token(self, request: web.Request) -> web.StreamResponse:
        response = await self.token_endpoint(request)
        if response.status != 200:
            return response
        body = orjson.loads(response.body)  # type: ignore[attr-defined]
        doc = {"access_token": body["access_token"], "instance_url": self.base_url, "token_type": "Bearer",
               "issued_at": str(int(time.time() * 1000)), "signature": "c2ln"}  # fmt: skip
        if self.rotate_refresh:
            fresh = f"refresh-{next(self._seq)}"
            self.refresh_tokens = {fresh}
            doc["refresh_token"] = fresh
        return web.json_response(doc)

    # -- SOQL ----------------------------------------------------------------------------------------
    def _run_soql(self, soql: str, include_deleted: bool) -> tuple[list[str], list[dict[str, Any]]] | None:
        match = _SOQL.match(soql.strip())
        if match is None or match["obj"] not in self.records:
            return None
        fields = [f.strip() for f in match["fields"].split(",")]
        rows = [r for r in self.records[match["obj"]].values() if include_deleted or not r["IsDeleted"]]
        for condition in (match["where"] or "").split(" AND ") if match["where"] else []:
            rows = [r for r in rows if self._holds(r, condition.strip())]
        if match["order"]:
            rows.sort(key=lambda r: (parse_dt(r["SystemModstamp"]), r["Id"]))
        return fields, [{"attributes": {"type": match["obj"]}, **{f: r.get(f) for f in fields}} for r in rows]

    def _holds(self, row: dict[str, Any], condition: str) -> bool:
        name, op, value = condition.split(" ", 2)
        if value in ("true", "false"):
            return bool(row.get(name)) == (value == "true")
        if value == "null":
            return (row.get(name) is not None) == (op == "!=")
        left, right = parse_dt(row[name]), parse_dt(value)
        return {">=": left >= right, "<=": left <= right, ">": left > right, "<": left < right}[op]

    async def _query(self, request: web.Request, include_deleted: bool) -> web.StreamResponse:
        problem = self._guard(request)
        if problem is not None:
            return problem
        ran = self._run_soql(request.query.get("q", ""), include_deleted)
        if ran is None:
            return sf_error(400, "MALFORMED_QUERY", "unexpected token")
        options = request.headers.get("Sforce-Query-Options", "batchSize=2000")
        size = int(options.partition("=")[2] or 2000)
        if not 200 <= size <= 2000:
            return sf_error(400, "INVALID_BATCH_SIZE", "batchSize must be between 200 and 2000")
        return self._page(request, ran[1], 0, size)

    def _page(self, request: web.Request, rows: list[dict[str, Any]], offset: int, size: int) -> web.Response:
        chunk, rest = rows[offset : offset + size], offset + size < len(rows)
        doc: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": chunk}
        if rest:
            locator = f"01g{next(self._seq):012d}-{offset + size}"
            self.locators[locator] = (rows, offset + size)
            doc["nextRecordsUrl"] = f"/services/data/{request.match_info['version']}/query/{locator}"
            self.locators[locator + ":size"] = ([], size)
        return self._ok(doc)

    async def query(self, request: web.Request) -> web.StreamResponse:
        return await self._query(request, include_deleted=False)

    async def query_all(self, request: web.Request) -> web.StreamResponse:
        return await self._query(request, include_deleted=True)

    async def more(self, request: web.Request) -> web.StreamResponse:
        problem = self._guard(request)
        if problem is not None:
            return problem
        locator = request.match_info["locator"]
        if locator not in self.locators:
            return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        rows, offset = self.locators.pop(locator)
        size = self.locators.pop(locator + ":size", ([], 2000))[1]
        return self._page(request, rows, offset, size)

    # -- Bulk API 2.0 query --------------------------------------------------------------------------
    async def create_job(self, request: web.Request) -> web.StreamResponse:
        problem = self._guard(request)
        if problem is not None:
            return problem
        body = orjson.loads(await request.read() or b"{}")
        ran = self._run_soql(str(body.get("query", "")), body.get("operation") == "queryAll")
        if ran is None or body.get("operation") not in ("query", "queryAll"):
            return sf_error(400, "INVALIDJOB", "invalid query job")
        job_id = f"750{next(self._seq):012d}AAA"
        self.jobs[job_id] = {
            "fields": ran[0],
            "rows": ran[1],
            "polls": 0,
            "version": request.match_info["version"],
        }
        return self._ok({"id": job_id, "operation": body["operation"], "object": ran[1][0]["attributes"]["type"]
                         if ran[1] else "", "state": "UploadComplete", "contentType": "CSV", "lineEnding": "LF",
                         "columnDelimiter": "COMMA", "concurrencyMode": "Parallel"})  # fmt: skip

    def _job(self, request: web.Request) -> dict[str, Any] | None:
        return self.jobs.get(request.match_info["job"])

    async def job_status(self, request: web.Request) -> web.StreamResponse:
        problem, job = self._guard(request), self._job(request)
        if problem is not None or job is None:
            return problem or sf_error(404, "NOT_FOUND", "job not found")
        job["polls"] += 1
        state = "JobComplete" if job["polls"] >= self.bulk_polls else "InProgress"
        return self._ok(
            {"id": request.match_info["job"], "state": state, "numberRecordsProcessed": len(job["rows"])}
        )

    async def job_results(self, request: web.Request) -> web.StreamResponse:
        problem, job = self._guard(request), self._job(request)
        if problem is not None or job is None:
            return problem or sf_error(404, "NOT_FOUND", "job not found")
        if job["version"] != request.match_info["version"]:
            return sf_error(409, "INVALIDVERSION", "use the API version that created the job")
        if job["polls"] < self.bulk_polls:
            return sf_error(412, "JOB_NOT_COMPLETE", "job is not complete")
        offset, size = int(request.query.get("locator") or 0), int(request.query.get("maxRecords", "50000"))
        chunk = job["rows"][offset : offset + size]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(job["fields"])
        for row in chunk:
            writer.writerow(["" if row.get(f) is None else str(row[f]).lower() if isinstance(row[f], bool) else row[f]
                             for f in job["fields"]])  # fmt: skip
        locator = str(offset + size) if offset + size < len(job["rows"]) else "null"
        headers = {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(len(chunk)),
                   "Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}  # fmt: skip
        return web.Response(text=out.getvalue(), content_type="text/csv", headers=headers)

    # -- getDeleted ---------------------------------------------------------------------------------
    async def get_deleted(self, request: web.Request) -> web.StreamResponse:
        problem = self._guard(request)
        if problem is not None:
            return problem
        start, end = parse_dt(request.query["start"]), parse_dt(request.query["end"])
        if start < datetime.now(UTC) - timedelta(days=15):
            return sf_error(400, "INVALID_REPLICATION_DATE", "startDate must be within the last 15 days")
        obj = request.match_info["obj"]
        found = [
            {"id": rid, "deletedDate": iso(at)}
            for o, rid, at in self.deleted_log
            if o == obj and start <= at <= end
        ]
        return self._ok({"deletedRecords": found, "earliestDateAvailable": iso(datetime.now(UTC) - timedelta(days=15)),
                         "latestDateCovered": iso(end)})  # fmt: skip

    # -- sObject Collections ------------------------------------------------------------------------
    async def _collection(self, request: web.Request) -> tuple[web.Response | None, list[dict[str, Any]]]:
        problem = self._guard(request)
        if problem is not None:
            return problem, []
        body = orjson.loads(await request.read() or b"{}")
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not 1 <= len(records) <= 200:
            return sf_error(400, "INVALID_FIELD", "records: between 1 and 200 records"), []
        if any(not isinstance(r, dict) or not r.get("attributes", {}).get("type") for r in records):
            return sf_error(400, "INVALID_TYPE", "each record needs attributes.type"), []
        return None, records

    def _write(self, obj: str, record_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in fields.items() if k not in ("attributes", "Id")}
        refused = [v for v in values.values() if isinstance(v, str) and v.lower() in self.refused]
        if refused:
            return {"success": False, "errors": [{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                                  "message": "refused value", "fields": []}]}  # fmt: skip
        if record_id is None:
            if obj in ("Contact", "Lead") and not values.get("LastName"):
                return {"success": False, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING",
                                                      "message": "Required fields are missing: [LastName]",
                                                      "fields": ["LastName"]}]}  # fmt: skip
            record_id = self.put(obj, **values)
            return {"id": record_id, "success": True, "errors": [], "created": True}
        self.update(obj, record_id, **values)
        return {"id": record_id, "success": True, "errors": [], "created": False}

    async def collection_update(self, request: web.Request) -> web.StreamResponse:
        problem, records = await self._collection(request)
        if problem is not None:
            return problem
        results = []
        for record in records:
            obj, rid = record["attributes"]["type"], str(record.get("Id", ""))
            if rid not in self.live(obj):
                results.append({"id": rid, "success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED",
                                                                          "message": "entity is deleted", "fields": []}]})  # fmt: skip
            else:
                results.append(self._write(obj, rid, record))
        return self._ok(results)

    async def collection_upsert(self, request: web.Request) -> web.StreamResponse:
        problem, records = await self._collection(request)
        if problem is not None:
            return problem
        obj, field = request.match_info["obj"], request.match_info["field"]
        results = []
        for record in records:
            if "Id" in record or not record.get(field):
                results.append({"success": False, "errors": [{"statusCode": "INVALID_FIELD",
                                                              "message": f"{field} is required", "fields": [field]}]})  # fmt: skip
                continue
            match = [rid for rid, r in self.live(obj).items() if r.get(field) == record[field]]
            if len(match) > 1:
                results.append({"success": False, "errors": [{"statusCode": "DUPLICATE_EXTERNAL_ID",
                                                              "message": "more than one record", "fields": [field]}]})  # fmt: skip
                continue
            results.append(self._write(obj, match[0] if match else None, record))
        return self._ok(results)
