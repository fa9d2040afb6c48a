"""Fake Meta Graph API for Custom Audiences: POST/DELETE /{version}/{audience_id}/users, GET audience.

Enforces: a valid access_token (query, body or Authorization header) and, when `app_secret` is set, a
matching appsecret_proof; a known schema without duplicates; rows aligned with the schema; ≤ 10,000
rows per request; hashed columns must be "" or 64-char lower-case hex, MADID lower-case. Invalid rows
are only counted (`num_invalid_entries`), as the real API does. Errors use the Graph error shape;
throttling is HTTP 400 with code 80003 (or 4/17/613) plus an X-Business-Use-Case-Usage header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

KNOWN = {"EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST", "ZIP"}
KNOWN |= {"MADID", "COUNTRY", "LOOKALIKE_VALUE"}
UNHASHED = {"MADID", "EXTERN_ID", "LOOKALIKE_VALUE"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_ROWS = 10_000


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    kind: str = "OAuthException",
    **extra: Any,
) -> web.Response:
    error: dict[str, Any] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": secrets.token_hex(6),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return web.json_response({"error": {**error, **extra}}, status=status)


class FakeMeta(FakeServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audiences: dict[str, set[str]] = {}
        self.blocked: set[str] = set()
        self.app_secret: str | None = None

    def add_audience(self, audience_id: str) -> None:
        self.audiences[audience_id] = set()

    def members(self, audience_id: str, column: str = "EMAIL") -> set[str]:
        prefix = column + ":"
        return {m[len(prefix) :] for m in self.audiences[audience_id] if m.startswith(prefix)}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("POST", r"/{version:v\d+\.\d+}/{audience:\d+}/users", self.users)
        router.add_route("DELETE", r"/{version:v\d+\.\d+}/{audience:\d+}/users", self.users)
        router.add_get(r"/{version:v\d+\.\d+}/{audience:\d+}", self.read_audience)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        code = int(fault.params.get("code", 80003))
        minutes = int(fault.params.get("regain_minutes", 2))
        response = graph_error(400, code, "There have been too many calls to this ad-account. Wait a bit.")
        usage = {
            "act_1": [
                {"type": "custom_audience", "call_count": 100, "estimated_time_to_regain_access": minutes}
            ]
        }
        response.headers["X-Business-Use-Case-Usage"] = orjson.dumps(usage).decode()
        return response

    def server_error_response(self) -> web.StreamResponse:
        message = "An unexpected error has occurred. Please retry your request later."
        return graph_error(500, 2, message, is_transient=True)

    def echo_response(self, text: str) -> web.StreamResponse:
        return graph_error(400, 200, text, kind="OAuthException")

    def auth_error_response(self) -> web.StreamResponse:
        return graph_error(400, 190, "Error validating access token: Session has expired.", subcode=463)

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if request.content_type == "application/json" and raw:
            body = orjson.loads(raw)
            params.update(body if isinstance(body, dict) else {})
        elif raw:
            params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        header = request.headers.get("Authorization", "")
        if header.startswith(("Bearer ", "OAuth ")) and "access_token" not in params:
            params["access_token"] = header.split(" ", 1)[1]
        return params

    def _auth_problem(self, params: dict[str, Any]) -> web.Response | None:
        token = params.get("access_token")
        if not token:
            return graph_error(400, 104, "An access token is required to request this resource.")
        if token not in self.tokens:
            return self.auth_error_response()  # type: ignore[return-value]
        if self.app_secret is not None:
            proof = hmac.new(self.app_secret.encode(), str(token).encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(proof, str(params.get("appsecret_proof", ""))):
                return graph_error(
                    400,
                    100,
                    "Invalid appsecret_proof provided in the API argument",
                    kind="GraphMethodException",
                )
        return None

    def _audience_problem(self, audience: str) -> web.Response | None:
        if audience not in self.audiences:
            message = f"Unsupported post request. Object with ID '{audience}' does not exist"
            return graph_error(400, 100, message, subcode=33, kind="GraphMethodException")
        if audience in self.blocked:
            return graph_error(400, 100, "Audience Upload Blocked", subcode=1713230)
        return None

    async def users(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        audience = request.match_info["audience"]
        problem = self._auth_problem(params) or self._audience_problem(audience)
        if problem is not None:
            return problem
        raw_payload = params.get("payload")
        payload: Any = orjson.loads(raw_payload) if isinstance(raw_payload, str) else raw_payload
        shape = check_payload(payload)
        if shape is not None:
            return graph_error(400, 100, f"(#100) {shape}")
        schema, rows = payload["schema"], payload["data"]
        schema = [schema] if isinstance(schema, str) else schema
        invalid: dict[str, str] = {}
        for row in rows:
            if {str(v) for v in row} & self.refused:
                invalid[f"row{len(invalid)}"] = "refused"
                continue
            keys = row_keys(schema, row, invalid)
            if keys and request.method == "POST":
                self.audiences[audience].update(keys)
            elif keys:
                self.audiences[audience].difference_update(keys)
        return web.json_response(
            {
                "audience_id": audience,
                "session_id": str(secrets.randbits(53)),
                "num_received": len(rows),
                "num_invalid_entries": len(invalid),
                "invalid_entry_samples": dict(list(invalid.items())[:10]),
            }
        )

    async def read_audience(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        audience = request.match_info["audience"]
        problem = self._auth_problem(params) or self._audience_problem(audience)
        if problem is not None:
            return problem
        status = {"code": 200, "description": "Normal"}
        return web.json_response({"id": audience, "name": f"Audience {audience}", "operation_status": status})


def check_payload(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "param payload must be an object"
    schema, data = payload.get("schema"), payload.get("data")
    schema = [schema] if isinstance(schema, str) else schema
    if not isinstance(schema, list) or not schema or any(s not in KNOWN for s in schema):
        return "Invalid schema"
    if len(set(schema)) != len(schema):
        return "Duplicate schema keys"
    if not isinstance(data, list) or not data:
        return "param payload.data must be a non-empty array"
    if len(data) > MAX_ROWS:
        return f"Too many users in the payload: at most {MAX_ROWS} per request"
    if any(not isinstance(row, list) or len(row) != len(schema) for row in data):
        return "Each data row must have one value per schema key"
    return None


def row_keys(schema: list[str], row: list[Any], invalid: dict[str, str]) -> set[str]:
    """The membership keys a row sets; an invalid row is recorded and sets nothing."""
    keys: set[str] = set()
    for column, value in zip(schema, row, strict=True):
        text = str(value) if value is not None else ""
        if text == "":
            continue
        if column not in UNHASHED and not HEX64.match(text):
            invalid[text[:64]] = f"{column} is not a lower-case SHA-256 hex digest"
            return set()
        if column == "MADID" and text != text.lower():
            invalid[text[:64]] = "MADID must be lower-case"
            return set()
        keys.add(f"{column}:{text}")
    if not keys:
        invalid[f"row{len(invalid)}"] = "empty row"
    return keys
