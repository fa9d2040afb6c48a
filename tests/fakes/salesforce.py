"""Fake Salesforce REST API: SOQL query (two shapes), sObject Collections create/delete, Campaign read,
OAuth refresh. Rules it enforces are listed in activation/destinations/README.md (Salesforce)."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")
BY_EMAIL = re.compile(
    r"SELECT Id, Email FROM (Contact|Lead) WHERE Email IN \((.*)\)( ORDER BY CreatedDate ASC)?", re.S
)
MEMBERS = re.compile(
    r"SELECT Id, (ContactId|LeadId) FROM CampaignMember WHERE CampaignId = '([^']*)' AND \1 IN \((.*)\)", re.S
)
PREFIX = {"Contact": "003", "Lead": "00Q", "CampaignMember": "00v", "Campaign": "701"}
REQUIRED = {"Contact": ("LastName",), "Lead": ("LastName", "Company"), "CampaignMember": ("CampaignId",)}
MAX_RECORDS = 200
MIN_VERSION = 42.0


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> web.Response:
    entry: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        entry["fields"] = fields
    return web.json_response([entry], status=status)


def failed(code: str, message: str, fields: list[str]) -> dict[str, Any]:
    return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": fields}]}


def literals(text: str) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", m) for m in LITERAL.findall(text)]


class FakeSalesforce(FakeServer):
    def __init__(self, *, page_size: int = 2000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.records: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.page_size = page_size
        self.pages: dict[str, list[dict[str, Any]]] = {}
        self._serial = 0

    # -- state helpers ---------------------------------------------------------------------------------
    def new_id(self, sobject: str) -> str:
        self._serial += 1
        return f"{PREFIX[sobject]}{self._serial:015d}"

    def add_record(self, sobject: str, **fields: Any) -> str:
        record_id = self.new_id(sobject)
        self.records[record_id] = {"type": sobject, **fields}
        return record_id

    def add_campaign(self, campaign_id: str, active: bool = True) -> None:
        self.records[campaign_id] = {"type": "Campaign", "IsActive": active}

    def campaign_emails(self, campaign_id: str) -> set[str]:
        found = set()
        for record in self.records.values():
            if record["type"] == "CampaignMember" and record["CampaignId"] == campaign_id:
                person = self.records.get(record.get("ContactId") or record.get("LeadId") or "")
                if person:
                    found.add(str(person.get("Email", "")).lower())
        return found

    def of_type(self, sobject: str) -> dict[str, dict[str, Any]]:
        return {rid: r for rid, r in self.records.items() if r["type"] == sobject}

    # -- routes and faults -----------------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        data = r"/services/data/{version:v\d+\.\d}"
        router.add_get(data + "/query", self.query)
        router.add_get(data + "/query/{locator}", self.query_more)
        router.add_post(data + "/composite/sobjects", self.create)
        router.add_delete(data + "/composite/sobjects", self.delete)
        router.add_get(data + "/sobjects/Campaign/{id}", self.get_campaign)
        router.add_post("/services/oauth2/token", self.token)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    def server_error_response(self) -> web.StreamResponse:
        return sf_error(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable.")

    def auth_error_response(self) -> web.StreamResponse:
        return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def echo_response(self, text: str) -> web.StreamResponse:
        return sf_error(400, "INVALID_FIELD", text)

    async def custom_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "lock_row":
            return sf_error(400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        return None

    def _check(self, request: web.Request) -> web.Response | None:
        if not self.bearer_ok(request):
            return self.auth_error_response()  # type: ignore[return-value]
        if float(request.match_info["version"][1:]) < MIN_VERSION:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        return None

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        valid = (
            form.get("grant_type") == "refresh_token"
            and (form.get("client_id"), form.get("client_secret")) == self.client
            and form.get("refresh_token") in self.refresh_tokens
        )
        if not valid:
            body = {"error": "invalid_grant", "error_description": "expired access/refresh token"}
            return web.json_response(body, status=400)
        self.refresh_calls += 1
        token = self.issue_token()
        body = {
            "access_token": token,
            "instance_url": self.base_url,
            "token_type": "Bearer",
            "signature": "x",
        }
        return web.json_response({**body, "id": f"{self.base_url}/id/00D/005", "issued_at": "1"})

    # -- SOQL ------------------------------------------------------------------------------------------
    async def query(self, request: web.Request) -> web.StreamResponse:
        problem = self._check(request)
        if problem is not None:
            return problem
        soql = request.query.get("q", "")
        rows = self._by_email(soql) if soql.startswith("SELECT Id, Email") else self._members(soql)
        if rows is None:
            return sf_error(400, "MALFORMED_QUERY", f"unexpected token in: {soql[:80]}")
        return web.json_response(self._page(rows, request.match_info["version"]))

    async def query_more(self, request: web.Request) -> web.StreamResponse:
        problem = self._check(request)
        if problem is not None:
            return problem
        rows = self.pages.pop(request.match_info["locator"], None)
        if rows is None:
            return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return web.json_response(self._page(rows, request.match_info["version"]))

    def _page(self, rows: list[dict[str, Any]], version: str) -> dict[str, Any]:
        page, rest = rows[: self.page_size], rows[self.page_size :]
        body: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": page}
        if rest:
            locator = f"01g{self.next_id()}-{self.page_size}"
            self.pages[locator] = rest
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}"
        return body

    def _row(self, record_id: str, sobject: str, **fields: Any) -> dict[str, Any]:
        url = f"/services/data/v62.0/sobjects/{sobject}/{record_id}"
        return {"attributes": {"type": sobject, "url": url}, "Id": record_id, **fields}

    def _by_email(self, soql: str) -> list[dict[str, Any]] | None:
        match = BY_EMAIL.fullmatch(soql)
        if match is None:
            return None
        wanted = {e.lower() for e in literals(match.group(2))}
        found = self.of_type(match.group(1)).items()
        return [
            self._row(rid, match.group(1), Email=r.get("Email"))
            for rid, r in found
            if str(r.get("Email", "")).lower() in wanted
        ]

    def _members(self, soql: str) -> list[dict[str, Any]] | None:
        match = MEMBERS.fullmatch(soql)
        if match is None:
            return None
        field, campaign, wanted = match.group(1), match.group(2), set(literals(match.group(3)))
        members = self.of_type("CampaignMember").items()
        return [
            self._row(rid, "CampaignMember", **{field: r.get(field)})
            for rid, r in members
            if r["CampaignId"] == campaign and r.get(field) in wanted
        ]

    # -- sObject Collections ---------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.StreamResponse:
        problem = self._check(request)
        if problem is not None:
            return problem
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return sf_error(400, "JSON_PARSER_ERROR", "Unexpected character")
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return sf_error(400, "INVALID_FIELD", "records: required")
        if len(records) > MAX_RECORDS:
            return sf_error(
                400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records"
            )
        if any(not isinstance(r, dict) or not isinstance(r.get("attributes"), dict) for r in records):
            return sf_error(400, "INVALID_TYPE", "Must send a concrete entity type.")
        return web.json_response([self._create_one(dict(r)) for r in records])

    def _create_one(self, record: dict[str, Any]) -> dict[str, Any]:
        sobject = str(record.pop("attributes").get("type"))
        if sobject not in REQUIRED:
            return failed("INVALID_TYPE", f"sObject type '{sobject}' is not supported", [])
        if "Id" in record:
            return failed("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"])
        missing = [f for f in REQUIRED[sobject] if not record.get(f)]
        if missing:
            return failed("REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", missing)
        if sobject == "CampaignMember":
            problem = self._member_problem(record)
            if problem is not None:
                return problem
        elif not EMAIL.match(str(record.get("Email", ""))):
            return failed(
                "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {record.get('Email')}", ["Email"]
            )
        record_id = self.new_id(sobject)
        self.records[record_id] = {"type": sobject, **record}
        return {"id": record_id, "success": True, "errors": []}

    def _member_problem(self, record: dict[str, Any]) -> dict[str, Any] | None:
        campaign = self.records.get(str(record["CampaignId"]))
        if campaign is None or campaign["type"] != "Campaign":
            return failed("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["CampaignId"])
        people = [f for f in ("ContactId", "LeadId") if record.get(f)]
        if len(people) != 1:
            return failed(
                "REQUIRED_FIELD_MISSING", "exactly one of ContactId or LeadId", ["ContactId", "LeadId"]
            )
        person = self.records.get(str(record[people[0]]))
        if person is None or person["type"] != people[0][:-2]:
            return failed("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", people)
        if str(person.get("Email", "")).lower() in self.refused:
            return failed("FIELD_CUSTOM_VALIDATION_EXCEPTION", "This person may not join campaigns.", [])
        for existing in self.of_type("CampaignMember").values():
            if (
                existing["CampaignId"] == record["CampaignId"]
                and existing.get(people[0]) == record[people[0]]
            ):
                return failed("DUPLICATE_VALUE", "Already a campaign member.", [])
        return None

    async def delete(self, request: web.Request) -> web.StreamResponse:
        problem = self._check(request)
        if problem is not None:
            return problem
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not ids:
            return sf_error(400, "MISSING_ARGUMENT", "ids: required")
        if len(ids) > MAX_RECORDS:
            return sf_error(400, "EXCEEDED_ID_LIMIT", "cannot delete more than 200 records")
        results = []
        for record_id in ids:
            if record_id in self.records:
                del self.records[record_id]
                self.deleted.add(record_id)
                results.append({"id": record_id, "success": True, "errors": []})
            elif record_id in self.deleted:
                results.append({"id": record_id, **failed("ENTITY_IS_DELETED", "entity is deleted", [])})
            else:
                results.append(failed("MALFORMED_ID", f"malformed id {record_id}", []))
        return web.json_response(results)

    async def get_campaign(self, request: web.Request) -> web.StreamResponse:
        problem = self._check(request)
        if problem is not None:
            return problem
        campaign = self.records.get(request.match_info["id"])
        if campaign is None or campaign["type"] != "Campaign":
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        return web.json_response(
            {
                "attributes": {"type": "Campaign"},
                "Id": request.match_info["id"],
                "IsActive": campaign["IsActive"],
            }
        )
