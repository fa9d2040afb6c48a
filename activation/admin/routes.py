"""Admin API routes for tokens, sources, the debugger and the snippet (base /admin/v1)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from activation.admin.auth import TokenStore
from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.debugger import list_events, list_rejected
from activation.admin.errors import ApiError, json_body, json_response, not_found, page_limit
from activation.admin.sources import SourceStore, public
from activation.db import Database

Handler = Callable[[Request], Awaitable[Response]]
SourceLister = Callable[[Database, str, str | None, int], Awaitable[dict[str, Any]]]


@dataclass
class AdminContext:
    db: Database
    tokens: TokenStore
    sources: SourceStore
    public_url: str
    snippet_template: str
    tag_path: str = "/tag.js"


def guarded(tokens: TokenStore, handler: Handler, scope: str | None = None) -> Handler:
    """Check the bearer token (GET needs `read`, everything else `admin`) and map ApiError to JSON."""

    async def endpoint(request: Request) -> Response:
        try:
            await tokens.require(request, scope or ("read" if request.method == "GET" else "admin"))
            return await handler(request)
        except ApiError as exc:
            return exc.response()

    return endpoint


JobFailures = Callable[[], Awaitable[list[dict[str, Any]]]]


def admin_routes(ctx: AdminContext, job_failures: JobFailures) -> list[BaseRoute]:
    def g(handler: Handler) -> Handler:
        return guarded(ctx.tokens, handler)

    return [
        Route("/admin/v1/tokens", g(_tokens(ctx)), methods=["GET", "POST"]),
        Route("/admin/v1/tokens/{id}", g(_revoke_token(ctx)), methods=["DELETE"]),
        Route("/admin/v1/sources", g(_sources(ctx)), methods=["GET", "POST"]),
        Route("/admin/v1/sources/{id}", g(_source(ctx)), methods=["GET", "PATCH", "DELETE"]),
        Route("/admin/v1/sources/{id}/rotate-key", g(_rotate(ctx)), methods=["POST"]),
        Route("/admin/v1/sources/{id}/events", g(_source_page(ctx, list_events)), methods=["GET"]),
        Route("/admin/v1/sources/{id}/rejected", g(_source_page(ctx, list_rejected)), methods=["GET"]),
        Route("/admin/v1/sources/{id}/snippet", g(_snippet(ctx)), methods=["GET"]),
        Route("/admin/v1/jobs/failed", g(_failed_jobs(job_failures)), methods=["GET"]),
    ]


def _failed_jobs(job_failures: JobFailures) -> Handler:
    async def handler(request: Request) -> Response:
        return json_response({"data": await job_failures(), "next_cursor": None})

    return handler


def _tokens(ctx: AdminContext) -> Handler:
    async def handler(request: Request) -> Response:
        if request.method == "GET":
            return json_response({"data": await ctx.tokens.list(), "next_cursor": None})
        body = await json_body(request)
        scopes = body.get("scopes", ["read"])
        if not isinstance(scopes, list):
            raise ApiError(400, "invalid_scopes", "scopes must be a list", {"scopes": "must be a list"})
        id_, secret = await ctx.tokens.create(str(body.get("name", "")), scopes)
        return json_response({"id": id_, "token": secret, "scopes": scopes}, 201)

    return handler


def _revoke_token(ctx: AdminContext) -> Handler:
    async def handler(request: Request) -> Response:
        if not await ctx.tokens.revoke(request.path_params["id"]):
            raise not_found("token")
        return Response(status_code=204)

    return handler


def _sources(ctx: AdminContext) -> Handler:
    async def handler(request: Request) -> Response:
        if request.method == "POST":
            return json_response(public(await ctx.sources.create(await json_body(request))), 201)
        limit = page_limit(request)
        key = decode_cursor(request.query_params.get("cursor"), 1)
        rows = await ctx.sources.list(str(key[0]) if key else "", limit)
        next_cursor = encode_cursor([rows[-1]["id"]]) if len(rows) == limit else None
        return json_response({"data": [public(r) for r in rows], "next_cursor": next_cursor})

    return handler


def _source(ctx: AdminContext) -> Handler:
    async def handler(request: Request) -> Response:
        source_id = request.path_params["id"]
        if request.method == "GET":
            return json_response(public(await ctx.sources.get(source_id)))
        if request.method == "PATCH":
            return json_response(public(await ctx.sources.update(source_id, await json_body(request))))
        await ctx.sources.delete(source_id)
        return Response(status_code=204)

    return handler


def _rotate(ctx: AdminContext) -> Handler:
    async def handler(request: Request) -> Response:
        return json_response(public(await ctx.sources.rotate_key(request.path_params["id"])))

    return handler


def _source_page(ctx: AdminContext, lister: SourceLister) -> Handler:
    """A source's stored or rejected events, newest first, cursor-paged."""

    async def handler(request: Request) -> Response:
        source = await ctx.sources.get(request.path_params["id"])
        cursor = request.query_params.get("cursor")
        return json_response(await lister(ctx.db, source["id"], cursor, page_limit(request)))

    return handler


def render_snippet(template: str, write_key: str, host: str, tag_path: str) -> str:
    """Fill the snippet template; values are JSON-encoded for the script and HTML-safe."""

    def js(value: str) -> str:
        return json.dumps(value)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e")

    filled = template.replace("{{WRITE_KEY}}", js(write_key)).replace("{{HOST}}", js(host))
    return filled.replace(js(host) + "/tag.js", js(host) + tag_path) if tag_path != "/tag.js" else filled


def _snippet(ctx: AdminContext) -> Handler:
    async def handler(request: Request) -> Response:
        source = await ctx.sources.get(request.path_params["id"])
        body = render_snippet(ctx.snippet_template, source["write_key"], ctx.public_url, ctx.tag_path)
        return HTMLResponse(body)

    return handler
