"""The admin HTTP toolkit, used by every admin route (sources, audiences, identity, syncs, privacy, CRM,
connections): the error shape `{"error": {"code", "message", "fields"}}`, JSON answers, the JSON body
reader and the `limit` rule; cursors in cursor.py, the scope check in auth.py (`TokenStore.require`)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}

    def response(self) -> Response:
        return json_response(
            {"error": {"code": self.code, "message": self.message, "fields": self.fields}}, self.status
        )


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, default=str), status, headers, media_type="application/json")


async def json_body(request: Request, max_bytes: int = 5 << 20) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > max_bytes:
        raise ApiError(413, "request_too_large", f"request body exceeds {max_bytes} bytes")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "request body must be a JSON object")
    return body


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def page_limit(request: Request, default: int = 100) -> int:
    raw = request.query_params.get("limit", str(default))
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", "limit must be an integer", {"limit": "not an integer"}
        ) from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "invalid_parameter", "limit must be 1..1000", {"limit": "out of range"})
    return limit
