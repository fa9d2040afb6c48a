"""/healthz, /readyz and /metrics for the all-in-one and split processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

Check = Callable[[], Awaitable[None]]


def health_routes(
    checks: Mapping[str, Check],
    render_metrics: Callable[[], Awaitable[str]],
    draining: Callable[[], bool],
) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if draining():
            return JSONResponse({"status": "draining"}, 503)
        failures = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout=2.0)
            except Exception as exc:
                failures[name] = type(exc).__name__
        if failures:
            return JSONResponse({"status": "unavailable", "failing": failures}, 503)
        return JSONResponse({"status": "ready"})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(await render_metrics(), media_type="text/plain; version=0.0.4")

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
