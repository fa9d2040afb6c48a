"""Fake Customer.io Track API: v2 batch identify/delete, manual segment add/remove, region lookup,
v1 customer deletion (`DELETE /api/v1/customers/{id | email | cio_…}`).

Enforces: HTTP Basic `site_id:api_key` (401 otherwise); `id_type` ∈ id, email, cio_id; 1–1000 string
`ids` per segment call; segments must exist and be manual (data-driven ones answer 400); ids that
belong to nobody are ignored, as the real API does; v2 bodies ≤ 500 KB (413) with entries ≤ 32 KB, a
known `type`/`action` and exactly one identifier (per-entry errors as HTTP 207 with
`errors[{batch_index, reason, field, message}]`); an `email` attribute must look like an address.
Errors are `{"meta": {"error": "..."}}`; throttling is 429 with Retry-After.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ID_TYPES = {"id", "email", "cio_id"}
MAX_IDS = 1000
MAX_BODY_BYTES = 500_000
MAX_ENTRY_BYTES = 32_000


def cio_error(status: int, message: str) -> web.Response:
    return web.json_response({"meta": {"error": message}}, status=status)


class FakeCustomerIo(FakeServer):
    uses_tokens = False
    site_id = "site-1"
    api_key = "track-key-1"

    def __init__(self, *, region: str = "us", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.region = region
        self.people: dict[str, dict[str, str]] = {}  # cio_id → identifiers and attributes
        self.segments: dict[str, dict[str, Any]] = {}

    def add_segment(self, segment_id: str, kind: str = "manual") -> None:
        self.segments[segment_id] = {"type": kind, "members": set()}

    def find(self, id_type: str, value: str) -> str | None:
        wanted = value.lower() if id_type == "email" else value
        return next((cid for cid, p in self.people.items() if p.get(id_type) == wanted), None)

    def segment_emails(self, segment_id: str) -> set[str]:
        members = self.segments[segment_id]["members"]
        return {self.people[c].get("email", "") for c in members if c in self.people}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/v1/segments/{segment}/add_customers", self.add_customers)
        router.add_post("/api/v1/segments/{segment}/remove_customers", self.remove_customers)
        router.add_post("/api/v2/batch", self.batch)
        router.add_get("/api/v1/accounts/region", self.account_region)
        router.add_delete("/api/v1/customers/{identifier}", self.delete_customer)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        response = cio_error(429, "rate limit exceeded")
        response.headers["Retry-After"] = str(fault.params.get("retry_after_s", 2))
        return response

    def server_error_response(self) -> web.StreamResponse:
        return cio_error(500, "internal server error")

    def echo_response(self, text: str) -> web.StreamResponse:
        return cio_error(400, text)

    def auth_error_response(self) -> web.StreamResponse:
        return cio_error(401, "Unauthorized request")

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            site, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (site, key) == (self.site_id, self.api_key)

    async def _json(self, request: web.Request) -> tuple[web.Response | None, dict[str, Any]]:
        if not self._authorised(request):
            return self.auth_error_response(), {}  # type: ignore[return-value]
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return cio_error(400, "invalid JSON body"), {}
        return (None, body) if isinstance(body, dict) else (cio_error(400, "body must be an object"), {})

    async def _segment_call(self, request: web.Request) -> tuple[web.Response | None, set[str], str]:
        problem, body = await self._json(request)
        if problem is not None:
            return problem, set(), ""
        id_type = request.query.get("id_type", "id")
        segment = self.segments.get(request.match_info["segment"])
        ids = body.get("ids")
        if id_type not in ID_TYPES:
            return cio_error(400, f"invalid id_type {id_type!r}: use id, email or cio_id"), set(), ""
        if segment is None:
            return cio_error(404, "segment not found"), set(), ""
        if segment["type"] != "manual":
            return cio_error(400, "people can only be added to manual segments"), set(), ""
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS:
            return cio_error(400, f"ids must be an array of 1 to {MAX_IDS} identifiers"), set(), ""
        if not all(isinstance(i, str) and i for i in ids):
            return cio_error(400, "ids must be non-empty strings"), set(), ""
        found = {self.find(id_type, i) for i in ids}
        return None, {c for c in found if c is not None}, request.match_info["segment"]

    async def add_customers(self, request: web.Request) -> web.StreamResponse:
        problem, people, segment = await self._segment_call(request)
        if problem is not None:
            return problem
        self.segments[segment]["members"].update(people)
        return web.json_response({})

    async def remove_customers(self, request: web.Request) -> web.StreamResponse:
        problem, people, segment = await self._segment_call(request)
        if problem is not None:
            return problem
        self.segments[segment]["members"].difference_update(people)
        return web.json_response({})

    async def batch(self, request: web.Request) -> web.StreamResponse:
        if len(await request.read()) > MAX_BODY_BYTES:
            return cio_error(413, f"request body exceeds {MAX_BODY_BYTES} bytes")
        problem, body = await self._json(request)
        if problem is not None:
            return problem
        entries = body.get("batch")
        if not isinstance(entries, list) or not entries:
            return cio_error(400, "batch must be a non-empty array")
        errors = []
        for index, entry in enumerate(entries):
            error = self._apply(entry)
            if error is not None:
                errors.append({"batch_index": index, **error})
        if errors:
            return web.json_response({"errors": errors}, status=207)
        return web.json_response({})

    def _apply(self, entry: Any) -> dict[str, str] | None:
        if not isinstance(entry, dict) or len(orjson.dumps(entry)) > MAX_ENTRY_BYTES:
            return {
                "reason": "invalid",
                "field": "",
                "message": f"entries must be objects ≤ {MAX_ENTRY_BYTES} B",
            }
        identifiers = entry.get("identifiers")
        if entry.get("type") != "person" or entry.get("action") not in ("identify", "delete"):
            return {"reason": "invalid", "field": "action", "message": "unsupported type or action"}
        if not isinstance(identifiers, dict) or len(identifiers) != 1 or not set(identifiers) <= ID_TYPES:
            return {
                "reason": "invalid",
                "field": "identifiers",
                "message": "exactly one of id, email, cio_id",
            }
        ((kind, value),) = identifiers.items()
        attributes = entry.get("attributes") or {}
        email = str(attributes.get("email", value if kind == "email" else ""))
        if (email and not EMAIL.match(email)) or str(value).lower() in self.refused or email in self.refused:
            return {"reason": "invalid", "field": "email", "message": f"{email!r} is not a valid email"}
        existing = self.find(kind, str(value))
        if entry["action"] == "delete":
            self._forget(existing)
            return None
        cio_id = existing or f"cio_{self.next_id()}"
        person = self.people.setdefault(cio_id, {"cio_id": cio_id})
        person[kind] = str(value).lower() if kind == "email" else str(value)
        person.update({k: str(v).lower() if k == "email" else str(v) for k, v in attributes.items()})
        return None

    def _forget(self, cio_id: str | None) -> None:
        if cio_id is None:
            return
        self.people.pop(cio_id, None)
        for segment in self.segments.values():
            segment["members"].discard(cio_id)

    async def account_region(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self.auth_error_response()
        host = "track-eu" if self.region == "eu" else "track"
        return web.json_response({"url": f"https://{host}.customer.io", "data_center": self.region})

    async def delete_customer(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self.auth_error_response()
        identifier = request.match_info["identifier"]  # an id, an email or a cio_-prefixed cio_id
        if identifier.startswith("cio_") and identifier in self.people:
            found: str | None = identifier
        elif "@" in identifier:
            found = self.find("email", identifier)
        else:
            found = self.find("id", identifier)
        self._forget(found)
        return web.json_response({})
