"""`/admin/v1/privacy/suppressions`: list (hashes + created_at), suppress, and unsuppress one identifier.

Suppression alone (Segment's SUPPRESS_ONLY) keeps the person's history and drops their new events at
every collector; `POST /admin/v1/privacy/deletions` with mode `suppress`/`delete_and_suppress` uses
the same `suppress`. Plain values never come back: the list holds keyed hashes only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.errors import ApiError, json_body, json_response, not_found, page_limit
from activation.identity.identifiers import Identifier, identifier_problem, parse_identifier
from activation.privacy.suppressions import identifier_hash, list_suppressions, suppress, unsuppress
from activation.services import Services

Require = Callable[[Request, str], Awaitable[Response | None]]
SCOPE = "admin"
BASE = "/admin/v1/privacy/suppressions"
MAX_IDENTIFIERS = 5000


def parse_identifiers(body: dict[str, Any]) -> list[Identifier]:
    """`{"identifiers": [{"type", "value"}, ...]}` → normalised identifiers; 400 naming each bad one."""
    raw = body.get("identifiers")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_IDENTIFIERS:
        fields = {"identifiers": f"a list of 1 to {MAX_IDENTIFIERS} {{type, value}} objects"}
        raise ApiError(400, "invalid_identifiers", "identifiers are required", fields)
    found, errors = [], {}
    for index, item in enumerate(raw):
        text = f"{item.get('type')}:{item.get('value')}" if isinstance(item, dict) else ""
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and isinstance(item.get("value"), str)
        )
        identifier = parse_identifier(text) if ok else None
        if identifier is None:
            errors[f"identifiers[{index}]"] = (
                identifier_problem(text) if ok else "must be {type, value} strings"
            )
        else:
            found.append(identifier)
    if errors:
        raise ApiError(400, "invalid_identifiers", "some identifiers are not usable", errors)
    return found


def routes(services: Services, require: Require) -> list[BaseRoute]:
    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            denied = await require(request, SCOPE)
            if denied is not None:
                return denied
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()

        return endpoint

    async def listing(request: Request) -> Response:
        limit = page_limit(request)
        cursor = decode_cursor(request.query_params.get("cursor"), 1)
        rows = await list_suppressions(services, str(cursor[0]) if cursor else "", limit)
        next_cursor = encode_cursor([rows[-1]["hash"]]) if len(rows) == limit else None
        return json_response({"data": rows, "next_cursor": next_cursor})

    async def create(request: Request) -> Response:
        identifiers = parse_identifiers(await json_body(request))
        added = await suppress(services, identifiers)
        hashes = sorted({identifier_hash(services.secret_key, i) for i in identifiers})
        return json_response({"suppressed": added, "hashes": hashes})

    async def delete(request: Request) -> Response:
        text = request.path_params["identifier"]
        identifier = parse_identifier(text)
        if identifier is None:
            problem = identifier_problem(text)
            raise ApiError(400, "invalid_identifier", "expected {type}:{value}", {"identifier": problem})
        if not await unsuppress(services, identifier):
            raise not_found("suppression")
        return json_response({"hash": identifier_hash(services.secret_key, identifier), "suppressed": False})

    return [
        Route(BASE, guarded(listing), methods=["GET"]),
        Route(BASE, guarded(create), methods=["POST"]),
        Route(BASE + "/{identifier:path}", guarded(delete), methods=["DELETE"]),
    ]
