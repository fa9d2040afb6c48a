"""HTTP plumbing shared by the audience routes: JSON answers, the error shape, limits and cursors."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from activation.admin.errors import ApiError

MAX_BODY_BYTES = 256 * 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


# Audience routes raise the admin API's own error type, so every endpoint answers the same shape.
HTTPProblem = ApiError


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def error(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> Response:
    return ApiError(status, code, message, fields).response()


async def json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPProblem(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPProblem(400, "invalid_json", "the body must be a JSON object")
    return data


def page_limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise HTTPProblem(400, "invalid_request", "bad limit", {"limit": f"an integer from 1 to {MAX_LIMIT}"})
    return int(raw)


def encode_cursor(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def decode_cursor(request: Request) -> str:
    """The key after which the page starts ('' for the first page)."""
    raw = request.query_params.get("cursor", "")
    try:
        padded = raw + "=" * (-len(raw) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode() if raw else ""
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HTTPProblem(
            400, "invalid_request", "bad cursor", {"cursor": "not a cursor from a previous page"}
        ) from None


def paged(items: list[Any], keys: list[str], limit: int) -> dict[str, Any]:
    """`{"data", "next_cursor"}` from up to `limit + 1` fetched items and their sort keys."""
    more = len(items) > limit
    return {"data": items[:limit], "next_cursor": encode_cursor(keys[limit - 1]) if more else None}
