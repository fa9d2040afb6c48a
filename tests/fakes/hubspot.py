"""Fake HubSpot CRM v3: contacts batch upsert/read, GDPR delete, static list membership, OAuth refresh.

Enforces: a current Bearer token (401 EXPIRED_AUTHENTICATION otherwise); ≤ 100 inputs per batch call;
no duplicate ids in one batch; valid email values (per-input failure as HTTP 207 with
errors[].context.objectWriteTraceId); list edits only by record id and only on MANUAL/SNAPSHOT lists.
Throttling is 429 with errorType RATE_LIMIT and a policyName (TEN_SECONDLY_ROLLING or DAILY).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_INPUTS = 100
UNIQUE_PROPERTIES = {"email", "hs_object_id"}


def hs_error(status: int, category: str, message: str, **extra: Any) -> web.Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    return web.json_response({**body, **extra}, status=status)


def invalid_email_detail(value: str) -> str:
    detail = {"isValid": False, "message": f"Email address {value} is invalid", "error": "INVALID_EMAIL"}
    return orjson.dumps([{**detail, "name": "email"}]).decode()


class FakeHubSpot(FakeServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contacts: dict[str, dict[str, str]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self.gdpr_deleted: list[str] = []  # objectIds of every accepted gdpr-delete call
        self.blocklisted: set[str] = set()

    def add_list(self, list_id: str, processing_type: str = "MANUAL") -> None:
        self.lists[list_id] = {"processingType": processing_type, "members": set()}

    def add_contact(self, email: str) -> str:
        record_id = str(self.next_id())
        self.contacts[record_id] = {"email": email.lower()}
        return record_id

    def list_emails(self, list_id: str) -> set[str]:
        return {self.contacts[r]["email"] for r in self.lists[list_id]["members"] if r in self.contacts}

    def find(self, prop: str, value: str) -> str | None:
        wanted = value.lower() if prop == "email" else value
        return next((rid for rid, props in self.contacts.items() if props.get(prop) == wanted), None)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/crm/v3/objects/contacts/batch/upsert", self.upsert)
        router.add_post("/crm/v3/objects/contacts/batch/read", self.read)
        router.add_post("/crm/v3/objects/contacts/gdpr-delete", self.gdpr_delete)
        router.add_put("/crm/v3/lists/{list_id}/memberships/add-and-remove", self.membership)
        router.add_get("/crm/v3/lists/{list_id}", self.get_list)
        router.add_post("/oauth/v1/token", self.token_endpoint)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        policy = str(fault.params.get("policy", "TEN_SECONDLY_ROLLING"))
        window = "ten_secondly_rolling" if policy == "TEN_SECONDLY_ROLLING" else "daily"
        response = hs_error(
            429,
            "RATE_LIMITS",
            f"You have reached your {window} limit.",
            errorType="RATE_LIMIT",
            policyName=policy,
            requestId=str(uuid.uuid4()),
        )
        response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = "10000"
        response.headers["X-HubSpot-RateLimit-Max"] = "100"
        response.headers["X-HubSpot-RateLimit-Remaining"] = "0"
        return response

    def server_error_response(self) -> web.StreamResponse:
        return hs_error(500, "INTERNAL_ERROR", "internal error")

    def echo_response(self, text: str) -> web.StreamResponse:
        return hs_error(403, "MISSING_SCOPES", text)

    def auth_error_response(self) -> web.StreamResponse:
        message = "The OAuth token used to make this call expired 2 minute(s) ago."
        return hs_error(
            401, "EXPIRED_AUTHENTICATION", message, context={"expire time": ["2026-11-22T07:00:00Z"]}
        )

    async def _body(self, request: web.Request) -> tuple[web.Response | None, dict[str, Any]]:
        if not self.bearer_ok(request):
            return self.auth_error_response(), {}  # type: ignore[return-value]
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return hs_error(400, "VALIDATION_ERROR", "Invalid input JSON"), {}
        if not isinstance(body, dict):
            return hs_error(400, "VALIDATION_ERROR", "Invalid input JSON"), {}
        return None, body

    def _inputs_problem(self, inputs: Any, key: str = "id") -> web.Response | None:
        if not isinstance(inputs, list) or not inputs:
            return hs_error(400, "VALIDATION_ERROR", "inputs must be a non-empty array")
        if len(inputs) > MAX_INPUTS:
            return hs_error(400, "VALIDATION_ERROR", f"inputs: size must be between 1 and {MAX_INPUTS}")
        ids = [str(i.get(key, "")).lower() for i in inputs if isinstance(i, dict)]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            return hs_error(400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {duplicates}")
        return None

    async def upsert(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._body(request)
        inputs: Any = body.get("inputs")
        problem = problem or self._inputs_problem(inputs)
        if problem is not None:
            return problem
        refused = [str(i.get("id")) for i in inputs if str(i.get("id", "")).lower() in self.refused]
        if refused:  # a property value HubSpot refuses fails the whole batch, not just its input
            detail = f"Property values were not valid: {refused[0]} was not one of the allowed options"
            return hs_error(400, "VALIDATION_ERROR", detail)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            outcome = self._upsert_one(item)
            (errors if outcome.get("status") == "error" else results).append(outcome)
        payload = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": "2026-11-22T07:00:00Z",
            "completedAt": "2026-11-22T07:00:01Z",
        }
        if errors:
            return web.json_response({**payload, "errors": errors, "numErrors": len(errors)}, status=207)
        return web.json_response(payload)

    def _upsert_one(self, item: dict[str, Any]) -> dict[str, Any]:
        prop, value, trace = item.get("idProperty"), str(item.get("id", "")), item.get("objectWriteTraceId")
        properties = item.get("properties") or {}
        context = {"objectWriteTraceId": [trace]} if trace else {"ids": [value]}
        if prop not in UNIQUE_PROPERTIES or not value:
            return {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": f"{prop} is not a unique property",
                "context": context,
            }
        if prop == "email" and not EMAIL.match(value):
            return {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "context": context,
                "message": "Property values were not valid: " + invalid_email_detail(value),
            }
        record_id = self.find(prop, value)
        created = record_id is None
        record_id = record_id or str(self.next_id())
        stored = self.contacts.setdefault(record_id, {})
        stored.update({k: str(v) for k, v in properties.items()})
        stored[prop] = value.lower() if prop == "email" else value
        result = {
            "id": record_id,
            "properties": dict(stored),
            "new": created,
            "createdAt": "2026-11-22T07:00:00Z",
        }
        return {**result, "objectWriteTraceId": trace} if trace else result

    async def read(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._body(request)
        inputs: Any = body.get("inputs")
        prop = body.get("idProperty", "hs_object_id")
        problem = problem or self._inputs_problem(inputs)
        if problem is not None:
            return problem
        results, missing = [], []
        for item in inputs:
            value = str(item.get("id", ""))
            record_id = value if prop == "hs_object_id" and value in self.contacts else self.find(prop, value)
            if record_id is None:
                missing.append(value)
            else:
                results.append({"id": record_id, "properties": dict(self.contacts[record_id])})
        if not missing:
            return web.json_response({"status": "COMPLETE", "results": results})
        error = {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "context": {"ids": missing},
            "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
        }
        return web.json_response(
            {"status": "COMPLETE", "results": results, "errors": [error], "numErrors": 1}, status=207
        )

    async def membership(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._body(request)
        if problem is not None:
            return problem
        target = self.lists.get(request.match_info["list_id"])
        if target is None:
            return hs_error(404, "OBJECT_NOT_FOUND", f"List {request.match_info['list_id']} does not exist")
        if target["processingType"] not in ("MANUAL", "SNAPSHOT"):
            return hs_error(
                400, "VALIDATION_ERROR", "List membership can only be edited on MANUAL or SNAPSHOT lists"
            )
        add, remove = body.get("recordIdsToAdd", []), body.get("recordIdsToRemove", [])
        if not all(isinstance(r, str) and r.isdigit() for r in [*add, *remove]):
            return hs_error(400, "VALIDATION_ERROR", "record ids must be numeric strings (not emails)")
        missing = [r for r in [*add, *remove] if r not in self.contacts]
        added = [r for r in add if r in self.contacts and r not in target["members"]]
        removed = [r for r in remove if r in target["members"]]
        target["members"].update(added)
        target["members"].difference_update(removed)
        return web.json_response(
            {"recordIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing}
        )

    async def get_list(self, request: web.Request) -> web.StreamResponse:
        if not self.bearer_ok(request):
            return self.auth_error_response()
        target = self.lists.get(request.match_info["list_id"])
        if target is None:
            return hs_error(404, "OBJECT_NOT_FOUND", "List does not exist")
        info = {
            "listId": request.match_info["list_id"],
            "name": "Fake",
            "processingType": target["processingType"],
            "objectTypeId": "0-1",
            "size": len(target["members"]),
        }
        return web.json_response({"list": info})

    async def gdpr_delete(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._body(request)
        if problem is not None:
            return problem
        object_id, id_property = body.get("objectId"), body.get("idProperty", "hs_object_id")
        if not isinstance(object_id, str) or not object_id or not isinstance(id_property, str):
            return hs_error(400, "VALIDATION_ERROR", "objectId must be a non-empty string")
        if id_property not in ("hs_object_id", "email"):
            return hs_error(400, "VALIDATION_ERROR", f"Unknown idProperty {id_property}")
        self.gdpr_deleted.append(object_id)
        record_id = self.find(id_property, object_id)
        if record_id is None and id_property == "email":
            self.blocklisted.add(object_id.lower())  # documented: an unknown email is blocklisted
            return web.Response(status=204)
        if record_id is None:
            return hs_error(404, "OBJECT_NOT_FOUND", "Object not found")
        del self.contacts[record_id]
        for target in self.lists.values():
            target["members"].discard(record_id)
        return web.Response(status=204)
