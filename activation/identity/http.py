"""What identity's HTTP routes (and the Profile API above it) share: the dependency types handed in by
the composition root, the error shape and the admin toolkit's page rule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from clickhouse_connect.driver.client import Client
from starlette.requests import Request
from starlette.responses import Response

from activation.admin.errors import ApiError, page_limit

ChProvider = Callable[[], Client]
Enqueue = Callable[[str, str], Awaitable[Any]]
Require = Callable[[Request, str], Awaitable[Response | None]]


def error(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> Response:
    return ApiError(status, code, message, fields).response()


def page_params(request: Request) -> tuple[int, str] | Response:
    """The admin toolkit's limit rule; the cursor is decoded by the caller (its own key shape)."""
    try:
        return page_limit(request), request.query_params.get("cursor", "")
    except ApiError as exc:
        return exc.response()
