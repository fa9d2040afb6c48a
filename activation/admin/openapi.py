"""The OpenAPI document of the admin, profile and tracking APIs (hand-kept, checked by a test
that every admin route appears in it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

_ERROR = {"$ref": "#/components/schemas/Error"}
PATHS: dict[str, dict[str, str]] = {
    "/admin/v1/tokens": {"get": "List tokens", "post": "Create a token (the secret is returned once)"},
    "/admin/v1/tokens/{id}": {"delete": "Revoke a token"},
    "/admin/v1/sources": {"get": "List sources", "post": "Create a source"},
    "/admin/v1/sources/{id}": {
        "get": "Get a source",
        "patch": "Update a source",
        "delete": "Delete a source",
    },
    "/admin/v1/sources/{id}/rotate-key": {"post": "Rotate the write key"},
    "/admin/v1/sources/{id}/events": {"get": "Debugger: stored events, newest first"},
    "/admin/v1/sources/{id}/rejected": {"get": "Rejected events with reasons"},
    "/admin/v1/sources/{id}/snippet": {"get": "HTML snippet for the source"},
    "/v1/{type}": {
        "post": "Segment-compatible tracking call (identify, track, page, screen, group, alias, batch)"
    },
    "/v1/import": {"post": "Historical import (no clock-skew correction)"},
    "/v1/projects/{writeKey}/settings": {"get": "analytics.js settings document"},
    "/beacon/v1/batch": {"post": "sendBeacon batch (writeKey in the query)"},
    "/pixel/v1/{kind}": {"get": "1×1 GIF tracking pixel (track, page)"},
    "/healthz": {"get": "Liveness"},
    "/readyz": {"get": "Readiness (ClickHouse and Redis reachable)"},
    "/metrics": {"get": "Prometheus metrics"},
}


def document(paths: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for path, methods in (paths or PATHS).items():
        operations[path] = {
            method: {
                "summary": summary,
                "responses": {
                    "200": {"description": "OK"},
                    "4XX": {
                        "description": "Client error",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                },
            }
            for method, summary in methods.items()
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Magpie API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "fields": {"type": "object"},
                            },
                        }
                    },
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": operations,
    }


def paths_of(routes: Sequence[BaseRoute]) -> dict[str, dict[str, str]]:
    """Every mounted route and method, summarised from PATHS or the route's name."""
    found: dict[str, dict[str, str]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        known = PATHS.get(route.path, {})
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            verb = method.lower()
            found.setdefault(route.path, {})[verb] = known.get(verb, route.name.replace("_", " "))
    return found


def openapi_route(routes: Sequence[BaseRoute] = ()) -> Route:
    """The document covers PATHS plus every route passed in (so nothing mounted goes undocumented)."""
    mounted = paths_of(routes)
    body = document({**PATHS, **mounted})

    async def endpoint(request: Request) -> Response:
        return JSONResponse(body)

    return Route("/admin/v1/openapi.json", endpoint, methods=["GET"])
