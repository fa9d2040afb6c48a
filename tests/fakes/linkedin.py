"""Fake LinkedIn Marketing API: DMP segment users (BATCH_CREATE), segment read, OAuth refresh.

Enforces: a current Bearer token (401 otherwise); `LinkedIn-Version: YYYYMM` (400 when missing or
malformed, 426 for a sunset version older than `oldest_version`); `X-Restli-Protocol-Version: 2.0.0`
and `X-RestLi-Method: BATCH_CREATE` on the users call; a known USER segment (404); 1–5000 elements
(400 for the whole call otherwise). Each element needs `action` ADD or REMOVE and `userIds` of
`{idType, idValue}` with idType SHA256_EMAIL (64 hex), SHA512_EMAIL (128 hex) or GOOGLE_AID; a bad
element gets its own `{"status": 400, "error": {...}}` in the per-element answer (HTTP 200, request
order) while the others apply. Throttling is 429 with serviceErrorCode 101. `/oauth/v2/accessToken`
takes the refresh_token grant.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

HEX = {"SHA256_EMAIL": re.compile(r"^[0-9a-f]{64}$"), "SHA512_EMAIL": re.compile(r"^[0-9a-f]{128}$")}
ID_TYPES = {"SHA256_EMAIL", "SHA512_EMAIL", "GOOGLE_AID"}
MAX_ELEMENTS = 5000


def li_error(status: int, message: str, code: str = "", service_code: int = 0) -> web.Response:
    body: dict[str, Any] = {"status": status, "message": message}
    if code:
        body["code"] = code
    if service_code:
        body["serviceErrorCode"] = service_code
    return web.json_response(body, status=status)


class FakeLinkedIn(FakeServer):
    oldest_version = "202505"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.segments: dict[str, dict[str, Any]] = {}

    def add_segment(self, segment_id: str, kind: str = "USER") -> None:
        self.segments[segment_id] = {"type": kind, "members": set()}

    def members(self, segment_id: str, id_type: str = "SHA256_EMAIL") -> set[str]:
        prefix = id_type + ":"
        return {m[len(prefix) :] for m in self.segments[segment_id]["members"] if m.startswith(prefix)}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/rest/dmpSegments/{segment}/users", self.users)
        router.add_get("/rest/dmpSegments/{segment}", self.read_segment)
        router.add_post("/oauth/v2/accessToken", self.token_endpoint)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        response = li_error(429, "Resource level throttle limit for calls to this resource is reached.",
                            "TOO_MANY_REQUESTS", 101)  # fmt: skip
        if "retry_after_s" in fault.params:
            response.headers["Retry-After"] = str(fault.params["retry_after_s"])
        return response

    def server_error_response(self) -> web.StreamResponse:
        return li_error(500, "Internal Server Error", "INTERNAL_SERVER_ERROR")

    def echo_response(self, text: str) -> web.StreamResponse:
        return li_error(400, text, "ILLEGAL_ARGUMENT")

    def auth_error_response(self) -> web.StreamResponse:
        return li_error(401, "The token used in the request has expired", "EXPIRED_ACCESS_TOKEN", 65601)

    def _prelude(self, request: web.Request) -> web.Response | None:
        if not self.bearer_ok(request):
            return self.auth_error_response()  # type: ignore[return-value]
        version = request.headers.get("LinkedIn-Version", "")
        if not re.fullmatch(r"20\d{4}", version):
            return li_error(400, "A version must be present. Please specify a version by adding the "
                                 "LinkedIn-Version header.", "VERSION_MISSING")  # fmt: skip
        if version < self.oldest_version:
            return li_error(426, f"Requested version {version} is not active", "NONEXISTENT_VERSION")
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            return li_error(400, "X-Restli-Protocol-Version 2.0.0 is required", "ILLEGAL_ARGUMENT")
        segment = self.segments.get(request.match_info["segment"])
        if segment is None or segment["type"] != "USER":
            return li_error(
                404, f"Could not find DMP segment with ID {request.match_info['segment']}", "NOT_FOUND"
            )
        return None

    async def users(self, request: web.Request) -> web.StreamResponse:
        problem = self._prelude(request)
        if problem is not None:
            return problem
        if request.headers.get("X-RestLi-Method") != "BATCH_CREATE":
            return li_error(
                400, "X-RestLi-Method BATCH_CREATE is required for batch calls", "ILLEGAL_ARGUMENT"
            )
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return li_error(400, "Invalid JSON body", "ILLEGAL_ARGUMENT")
        elements = body.get("elements") if isinstance(body, dict) else None
        if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ELEMENTS:
            return li_error(400, f"elements must hold 1 to {MAX_ELEMENTS} entries", "ILLEGAL_ARGUMENT")
        held = self.segments[request.match_info["segment"]]["members"]
        return web.json_response({"elements": [self._apply(e, held) for e in elements]})

    def _apply(self, item: Any, held: set[str]) -> dict[str, Any]:
        problem = element_problem(item, self.refused)
        if problem is not None:
            return {"status": 400, "error": {"message": problem, "status": 400}}
        keys = {f"{u['idType']}:{u['idValue']}" for u in item["userIds"]}
        held.update(keys) if item["action"] == "ADD" else held.difference_update(keys)
        return {"status": 201}

    async def read_segment(self, request: web.Request) -> web.StreamResponse:
        if not self.bearer_ok(request):
            return self.auth_error_response()
        segment = self.segments.get(request.match_info["segment"])
        if segment is None:
            return li_error(404, "Not found", "NOT_FOUND")
        return web.json_response({"id": int(request.match_info["segment"]), "type": segment["type"],
                                  "name": "Fake", "sourcePlatform": "MAGPIE"})  # fmt: skip


def element_problem(item: Any, refused: set[str]) -> str | None:
    if not isinstance(item, dict) or item.get("action") not in ("ADD", "REMOVE"):
        return "action must be ADD or REMOVE"
    ids = item.get("userIds")
    if not isinstance(ids, list) or not ids:
        return "userIds must be a non-empty array"
    for user_id in ids:
        kind, value = (
            (user_id.get("idType"), user_id.get("idValue")) if isinstance(user_id, dict) else (None, None)
        )
        if kind not in ID_TYPES or not isinstance(value, str) or not value:
            return "each userId needs an idType of SHA256_EMAIL, SHA512_EMAIL or GOOGLE_AID and an idValue"
        if kind in HEX and not HEX[kind].match(value):
            return f"idValue is not a lower-case {kind.split('_')[0]} hex digest"
        if value in refused:
            return f"idValue {value[:12]}… was refused"
    return None
