"""The audience routes' view of the admin HTTP toolkit (activation/admin/errors.py, cursor.py): one
error shape, one JSON body reader, one limit rule and one cursor format for every admin route."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from activation.admin.cursor import decode_cursor as admin_decode_cursor
from activation.admin.cursor import encode_cursor
from activation.admin.errors import ApiError
from activation.admin.errors import json_body as admin_json_body
from activation.admin.errors import page_limit as admin_page_limit

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
    """The admin toolkit's JSON body reader, with the audience routes' smaller size cap."""
    return await admin_json_body(request, MAX_BODY_BYTES)


def page_limit(request: Request) -> int:
    return admin_page_limit(request, DEFAULT_LIMIT)


def decode_cursor(request: Request) -> str:
    """The key after which the page starts ('' for the first page); the admin API's cursor format."""
    key = admin_decode_cursor(request.query_params.get("cursor"), 1)
    return str(key[0]) if key else ""


def paged(items: list[Any], keys: list[str], limit: int) -> dict[str, Any]:
    """`{"data", "next_cursor"}` from up to `limit + 1` fetched items and their sort keys."""
    more = len(items) > limit
    return {"data": items[:limit], "next_cursor": encode_cursor([keys[limit - 1]]) if more else None}
