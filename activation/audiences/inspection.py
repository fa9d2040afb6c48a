"""Read-only audience routes: preview, members, history, explain and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from starlette.requests import Request
from starlette.responses import Response

from activation.audiences import membership, store
from activation.audiences.codec import parse_time
from activation.audiences.compiler import compile_audience
from activation.audiences.endpoint import Deps
from activation.audiences.errors import InvalidDefinition
from activation.audiences.explain import explain
from activation.audiences.limits import select
from activation.audiences.payload import read_definition, reject
from activation.audiences.references import check_computed, check_references, defined_computed, live_lookup
from activation.audiences.responses import (
    HTTPProblem,
    JSONResponse,
    decode_cursor,
    json_body,
    page_limit,
    paged,
)
from activation.audiences.tree import Node
from activation.identity.identifiers import parse_identifier
from activation.identity.lookup import lookup

SAMPLE_SIZE = 20


def preview(ch: Client, node: Node, now: datetime) -> dict[str, Any]:
    """Size, a sample of members and the generated SQL with its parameters, computed now."""
    sql, params = compile_audience(node, now)
    sampled = f"SELECT count(), groupArray({SAMPLE_SIZE})(profile_id) FROM ({sql})"
    size, sample = select(ch, sampled, params)[0]
    return {"size": int(size), "sample": sorted(sample), "sql": sql, "params": params}


def _preview_new(ch: Client, node: Node, now: datetime) -> dict[str, Any]:
    definitions = {a.key: a.definition for a in store.live(ch)}
    errors = check_references("", node, live_lookup(definitions, "", None))
    errors.update(check_computed(node, defined_computed(ch)))
    if errors:
        raise InvalidDefinition(errors)
    return preview(ch, node, now)


def _explain(ch: Client, audience_id: str, profile: str, now: datetime) -> dict[str, Any]:
    audience = store.fetch(ch, audience_id)
    profile_id = _profile_id(ch, profile)
    result = explain(ch, audience.definition, now, profile_id)
    return {**result, "in_latest_run": membership.is_member(ch, audience.id, profile_id)}


def _profile_id(ch: Client, profile: str) -> str:
    """A profile id, or the profile a `type:value` identifier belongs to (as in the Profile API)."""
    if ":" not in profile:
        return profile
    identifier = parse_identifier(profile)
    if identifier is None:
        fields = {"profile": "a profile id, or type:value with a known identifier type and a valid value"}
        raise HTTPProblem(400, "invalid_identifier", "bad profile identifier", fields)
    profile_id = lookup(ch, identifier)
    if not profile_id:
        raise HTTPProblem(404, "not_found", "no profile for this identifier")
    return profile_id


def _required(request: Request, name: str, meaning: str) -> str:
    value = request.query_params.get(name, "")
    if not value:
        raise HTTPProblem(400, "invalid_request", f"{name} is required", {name: meaning})
    return value


class Inspection:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def preview(self, request: Request) -> Response:
        audience = await self.deps.run(store.fetch, request.path_params["audience_id"])
        return JSONResponse(await self.deps.run(preview, audience.definition, self.deps.clock()))

    async def preview_definition(self, request: Request) -> Response:
        body = await json_body(request)
        errors = {field: "unknown field" for field in body if field not in ("query", "definition")}
        node = read_definition(body, errors, required=True)
        reject(errors, node is None)
        return JSONResponse(await self.deps.run(_preview_new, node, self.deps.clock()))

    async def members(self, request: Request) -> Response:
        return await self._members(request, None)

    async def history(self, request: Request) -> Response:
        raw = _required(request, "at", "an ISO 8601 date or date-time")
        try:
            at = parse_time(raw)
        except ValueError:
            raise HTTPProblem(
                400, "invalid_request", "bad at", {"at": "an ISO 8601 date or date-time"}
            ) from None
        return await self._members(request, at)

    async def _members(self, request: Request, at: datetime | None) -> Response:
        limit, after = page_limit(request), decode_cursor(request)
        audience = await self.deps.run(store.fetch, request.path_params["audience_id"])
        ids: list[str] = await self.deps.run(membership.members, audience.id, after, limit + 1, at)
        page = paged([{"profile_id": pid} for pid in ids], ids, limit)
        return JSONResponse({**page, "at": at} if at else page)

    async def explain(self, request: Request) -> Response:
        profile_id = _required(request, "profile", "a profile id or type:value (user_id:u1)")
        audience_id = request.path_params["audience_id"]
        return JSONResponse(await self.deps.run(_explain, audience_id, profile_id, self.deps.clock()))

    async def runs(self, request: Request) -> Response:
        limit = page_limit(request)
        audience = await self.deps.run(store.fetch, request.path_params["audience_id"])
        return JSONResponse({"data": await self.deps.run(membership.runs, audience.id, limit)})
