"""What every audience route shares: its dependencies, the auth check and the error mapping."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from starlette.requests import Request
from starlette.responses import Response

from activation.audiences.computation import utc_now
from activation.audiences.errors import AudienceConflict, AudienceNotFound, InvalidDefinition
from activation.audiences.responses import HTTPProblem, error

Require = Callable[[Request, str], "Response | Awaitable[Response | None] | None"]
Enqueue = Callable[[str, str], Awaitable[Any]]
Handler = Callable[[Request], Awaitable[Response]]
# ClickHouse refusing a query over our limits: the definition is too expensive, not a server fault.
_LIMIT_ERRORS = ("TIMEOUT_EXCEEDED", "MEMORY_LIMIT_EXCEEDED", "TOO_MANY_ROWS_OR_BYTES")


@dataclass(frozen=True)
class Deps:
    ch: Callable[[], Client]
    enqueue: Enqueue
    require: Require
    clock: Callable[[], datetime] = utc_now

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(client, *args)` in a worker thread."""
        return await asyncio.to_thread(fn, self.ch(), *args)


def guarded(deps: Deps, scope: str, handler: Handler) -> Handler:
    """The handler behind `require(request, scope)`, with package errors turned into answers."""

    async def endpoint(request: Request) -> Response:
        denied = deps.require(request, scope)
        if inspect.isawaitable(denied):
            denied = await denied
        if denied is not None:
            return denied
        try:
            return await handler(request)
        except HTTPProblem as problem:
            return problem.response()
        except InvalidDefinition as invalid:
            return error(400, invalid.code, str(invalid), invalid.fields)
        except AudienceNotFound as missing:
            return error(404, missing.code, str(missing))
        except AudienceConflict as conflict:
            return error(409, conflict.code, str(conflict), conflict.fields)
        except DatabaseError as exc:
            if not any(name in str(exc) for name in _LIMIT_ERRORS):
                raise
            return error(422, "query_limit_exceeded", "the audience query hit a time, memory or size limit")

    return endpoint
