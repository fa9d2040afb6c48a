"""Fake TikTok Marketing API v1.3: `segment/mapping/` (add/delete hashed users) and
`dmp/custom_audience/get/`.

Enforces: the `Access-Token` header (no `Bearer`; 40104 when missing, 40105 when unknown or revoked);
advertisers the token may act for (40001) and audiences of that advertiser (40007, checked after the users' shape); `action` ∈ add,
delete; `id_schema` of known, distinct values; one positional cell per schema entry in every user,
each `{}` or `{"id", "audience_ids"}` with a lower-case hex digest of the schema's length (64 for
SHA256, 32 for MD5) and the audience ids of the call; no user without any id; at most 1000 users
per call (40002). Every answer is HTTP 200 with `{"code", "message", "request_id", "data"}`: one
refused user fails the whole call (40002), as the real API is all-or-nothing. Throttling is code
40100; `error500` is code 50000.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

SCHEMAS = {"EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256", "IDFA_MD5", "AAID_MD5"}
HEX = {64: re.compile(r"^[0-9a-f]{64}$"), 32: re.compile(r"^[0-9a-f]{32}$")}
MAX_USERS = 1000
PREFIX = "/open_api/v1.3"


def envelope(code: int, message: str, data: Any = None) -> web.Response:
    body = {"code": code, "message": message, "request_id": secrets.token_hex(10), "data": data or {}}
    return web.json_response(body)


class FakeTikTok(FakeServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audiences: dict[str, dict[str, set[str]]] = {}  # advertiser → audience → "SCHEMA:hash"

    def add_audience(self, advertiser_id: str, audience_id: str) -> None:
        self.audiences.setdefault(advertiser_id, {})[audience_id] = set()

    def members(self, advertiser_id: str, audience_id: str, schema: str = "EMAIL_SHA256") -> set[str]:
        prefix = schema + ":"
        held = self.audiences[advertiser_id][audience_id]
        return {m[len(prefix) :] for m in held if m.startswith(prefix)}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"{PREFIX}/segment/mapping/", self.mapping)
        router.add_get(f"{PREFIX}/dmp/custom_audience/get/", self.get_audiences)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        code = int(fault.params.get("code", 40100))
        return envelope(code, "Requests made too frequently. Please try again later.")

    def server_error_response(self) -> web.StreamResponse:
        return envelope(50000, "System error. Please try again later.")

    def echo_response(self, text: str) -> web.StreamResponse:
        return envelope(40002, text)

    def auth_error_response(self) -> web.StreamResponse:
        return envelope(40105, "Access token is incorrect or has been revoked.")

    def _auth_problem(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("Access-Token")
        if not token:
            return envelope(
                40104, "Access token is null, you should set it in http header with key Access-Token."
            )
        if token not in self.tokens:
            return self.auth_error_response()  # type: ignore[return-value]
        return None

    async def mapping(self, request: web.Request) -> web.StreamResponse:
        problem = self._auth_problem(request)
        if problem is not None:
            return problem
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return envelope(40002, "Request body is not valid JSON.")
        shape = self._check(body if isinstance(body, dict) else {})
        if shape is not None:
            return shape
        advertiser = self.audiences[body["advertiser_ids"][0]]
        for user in body["batch_data"]:
            for schema, cell in zip(body["id_schema"], user, strict=True):
                for audience_id in cell.get("audience_ids", []):
                    held = advertiser[audience_id]
                    key = f"{schema}:{cell['id']}"
                    held.add(key) if body["action"] == "add" else held.discard(key)
        return envelope(0, "OK")

    def _check(self, body: dict[str, Any]) -> web.Response | None:
        advertisers, schema, users = body.get("advertiser_ids"), body.get("id_schema"), body.get("batch_data")
        if not isinstance(advertisers, list) or len(advertisers) != 1 or advertisers[0] not in self.audiences:
            return envelope(40001, "No permission to operate advertiser(s) {advertisers}.")
        if body.get("action") not in ("add", "delete"):
            return envelope(40002, "action: must be one of add, delete.")
        if (
            not isinstance(schema, list)
            or not schema
            or set(schema) - SCHEMAS
            or len(set(schema)) != len(schema)
        ):
            return envelope(40002, f"id_schema: values must be distinct members of {sorted(SCHEMAS)}.")
        if not isinstance(users, list) or not 1 <= len(users) <= MAX_USERS:
            return envelope(40002, f"batch_data: between 1 and {MAX_USERS} users per request.")
        for index, user in enumerate(users):
            problem = self._user_problem(schema, user)
            if problem is not None:
                return envelope(40002, f"batch_data[{index}]: {problem}")
        named = {a for user in users for cell in user if cell for a in cell["audience_ids"]}
        missing = sorted(named - set(self.audiences[advertisers[0]]))
        if missing:
            return envelope(40007, f"Custom audience {missing[0]} does not exist.")
        return None

    def _user_problem(self, schema: list[str], user: Any) -> str | None:
        if not isinstance(user, list) or len(user) != len(schema):
            return "each user needs one entry per id_schema value"
        if not any(cell for cell in user if isinstance(cell, dict)):
            return "a user needs at least one id"
        for column, cell in zip(schema, user, strict=True):
            if cell == {}:
                continue
            if not isinstance(cell, dict) or set(cell) != {"id", "audience_ids"}:
                return f"{column}: cells are {{}} or {{id, audience_ids}}"
            digest = HEX[32 if column.endswith("MD5") else 64]
            if not isinstance(cell["id"], str) or not digest.match(cell["id"]):
                return f"{column}: id must be a lower-case hex digest"
            if cell["id"] in self.refused:
                return f"{column}: id {cell['id'][:12]}… is not accepted"
            audiences = cell["audience_ids"]
            if not isinstance(audiences, list) or not audiences:
                return "audience_ids must be a non-empty array"
        return None

    async def get_audiences(self, request: web.Request) -> web.StreamResponse:
        problem = self._auth_problem(request)
        if problem is not None:
            return problem
        advertiser = request.query.get("advertiser_id", "")
        if advertiser not in self.audiences:
            return envelope(40001, f"No permission to operate advertiser {advertiser}.")
        try:
            wanted = orjson.loads(request.query.get("custom_audience_ids", "[]"))
        except orjson.JSONDecodeError:
            return envelope(40002, "custom_audience_ids must be a JSON array.")
        found = [
            {"audience_details": {"audience_id": a, "name": f"Audience {a}", "is_valid": True}}
            for a in wanted
            if a in self.audiences[advertiser]
        ]
        return envelope(0, "OK", {"list": found})
