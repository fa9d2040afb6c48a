"""Admin routes for identity (scope admin): rules, unmerge, import, proposals, computed traits, status."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from activation.admin.errors import json_response
from activation.identity import proposals, store
from activation.identity.cache import ProfileCache
from activation.identity.computed import DefinitionError, definition_from_dict
from activation.identity.http import ChProvider, Enqueue, Require, error, page_params
from activation.identity.jobs import RESTITCH_JOB, STITCH_JOB, STITCH_JOB_ID, restitch_job_id
from activation.identity.records import parse_records
from activation.identity.rules import RulesError, rules_from_dict
from activation.identity.unmerge import UnmergeError, unmerge

ADMIN_SCOPE = "admin"
MAX_BODY_BYTES = 20 * 1024 * 1024
StatusProvider = Callable[[], Awaitable[dict[str, str]]]
Handler = Callable[[Request], Awaitable[Response]]
_STATUS_FOR = {"not_found": 404, "conflict": 409, "invalid_request": 400}


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None


class _Handlers:
    """The admin endpoints; dependencies arrive through `routes`, never module globals."""

    def __init__(
        self,
        ch_provider: ChProvider,
        enqueue: Enqueue,
        status: StatusProvider | None,
        cache: ProfileCache | None,
    ) -> None:
        self.ch_provider, self.enqueue, self.status, self.cache = ch_provider, enqueue, status, cache

    async def profiles_changed(self) -> None:
        """Unmerges, imports and accepted proposals restitch inline: drop cached profile documents."""
        if self.cache:
            await self.cache.invalidate_all()

    def run(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return asyncio.to_thread(fn, self.ch_provider(), *args)

    async def get_rules(self, request: Request) -> Response:
        return json_response((await self.run(store.read_rules)).to_dict())

    async def put_rules(self, request: Request) -> Response:
        doc = await _json_body(request)
        if not isinstance(doc, dict):
            return error(400, "invalid_json", "body must be a JSON object")
        try:
            rules = rules_from_dict(doc)
        except RulesError as exc:
            return error(400, "invalid_rules", "identity rules do not validate", exc.fields)
        text = orjson.dumps(rules.to_dict(), option=orjson.OPT_SORT_KEYS).decode()
        await self.run(store.write_setting, store.RULES_KEY, text, datetime.now(UTC))
        await self.enqueue(RESTITCH_JOB, restitch_job_id(hashlib.sha256(text.encode()).hexdigest()[:16]))
        return json_response(rules.to_dict())

    async def unmerge(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            result = await self.run(unmerge, request.path_params["profile_id"], body, datetime.now(UTC))
        except UnmergeError as exc:
            return error(_STATUS_FOR.get(exc.code, 400), exc.code, str(exc), exc.fields)
        await self.profiles_changed()
        return json_response(result)

    async def import_records(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, "too_large", f"at most {MAX_BODY_BYTES} bytes per import")
        region = (await self.run(store.read_rules)).default_phone_region
        records, rejected = parse_records(body, request.headers.get("content-type", ""), region)
        batch_id = request.query_params.get("batch_id") or hashlib.sha256(body).hexdigest()[:16]
        summary = await self.run(proposals.import_records, records, batch_id, datetime.now(UTC))
        rejected_items = [{"index": r.index, "reason": r.reason} for r in rejected]
        await self.profiles_changed()
        return json_response({**summary, "batch_id": batch_id, "rejected": rejected_items})

    async def list_proposals(self, request: Request) -> Response:
        paging = page_params(request)
        if isinstance(paging, Response):
            return paging
        limit, cursor = paging
        status = request.query_params.get("status", "")
        rows = await self.run(proposals.list_proposals, status, cursor, limit)
        next_cursor = rows[-1]["proposal_id"] if len(rows) == limit else None
        return json_response({"data": rows, "next_cursor": next_cursor})

    def decide(self, accept: bool) -> Handler:
        async def handler(request: Request) -> Response:
            proposal_id = request.path_params["proposal_id"]
            try:
                row = await self.run(proposals.decide, proposal_id, accept, datetime.now(UTC))
            except proposals.ProposalError as exc:
                return error(_STATUS_FOR.get(exc.code, 400), exc.code, str(exc))
            await self.profiles_changed()
            return json_response(row)

        return handler

    async def list_computed(self, request: Request) -> Response:
        definitions = await self.run(store.read_definitions)
        return json_response({"data": [d.to_dict() for d in definitions], "next_cursor": None})

    async def put_computed(self, request: Request) -> Response:
        doc = await _json_body(request)
        if isinstance(doc, dict):
            doc = {**doc, "name": request.path_params["name"]}
        try:
            definition = definition_from_dict(doc)
        except DefinitionError as exc:
            return error(400, "invalid_definition", "computed trait does not validate", exc.fields)
        now = datetime.now(UTC)
        await self.run(store.write_definition, definition, now)
        await self.enqueue(RESTITCH_JOB, restitch_job_id(f"computed:{definition.name}:{now:%Y%m%d%H%M%S}"))
        return json_response(definition.to_dict())

    async def delete_computed(self, request: Request) -> Response:
        await self.run(store.write_definition, request.path_params["name"], datetime.now(UTC))
        return Response(status_code=204)

    async def get_status(self, request: Request) -> Response:
        stitch = await self.status() if self.status else {}
        return json_response({"stitch": stitch, "stitch_job": STITCH_JOB, "stitch_job_id": STITCH_JOB_ID})


def routes(
    ch_provider: ChProvider,
    enqueue: Enqueue,
    require: Require,
    status: StatusProvider | None = None,
    cache: ProfileCache | None = None,
) -> list[BaseRoute]:
    """Admin identity routes, each behind `require(request, "admin")`."""
    h = _Handlers(ch_provider, enqueue, status, cache)

    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            return await require(request, ADMIN_SCOPE) or await handler(request)

        return endpoint

    table: list[tuple[str, Handler, str]] = [
        ("/identity/rules", h.get_rules, "GET"),
        ("/identity/rules", h.put_rules, "PUT"),
        ("/identity/status", h.get_status, "GET"),
        ("/identity/proposals", h.list_proposals, "GET"),
        ("/identity/proposals/{proposal_id}/accept", h.decide(True), "POST"),
        ("/identity/proposals/{proposal_id}/reject", h.decide(False), "POST"),
        ("/identity/computed-traits", h.list_computed, "GET"),
        ("/identity/computed-traits/{name}", h.put_computed, "PUT"),
        ("/identity/computed-traits/{name}", h.delete_computed, "DELETE"),
        ("/profiles/import", h.import_records, "POST"),
        ("/profiles/{profile_id}/unmerge", h.unmerge, "POST"),
    ]
    return [Route(f"/admin/v1{path}", guarded(handler), methods=[method]) for path, handler, method in table]
