"""Admin routes for audiences: create, list, read, update, delete, run — and, from `inspection`,
preview, members, explain, history and runs. Built from plain values: `routes(ch_provider,
enqueue, require)`; every ClickHouse call runs in a thread (the client is synchronous)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from activation.audiences import freshness, membership, payload, store, streaming
from activation.audiences.endpoint import Deps, Enqueue, Handler, Require, guarded
from activation.audiences.errors import AudienceConflict, InvalidDefinition
from activation.audiences.inspection import Inspection
from activation.audiences.payload import read_definition, reject
from activation.audiences.references import check_computed, check_references, defined_computed, live_lookup
from activation.audiences.responses import JSONResponse, decode_cursor, json_body, page_limit, paged
from activation.audiences.store import Audience
from activation.audiences.tree import Node, referenced_audiences

BASE = "/admin/v1/audiences"


def routes(ch_provider: Callable[[], Client], enqueue: Enqueue, require: Require) -> list[BaseRoute]:
    deps = Deps(ch_provider, enqueue, require)
    crud, views = Audiences(deps), Inspection(deps)
    table: list[tuple[str, str, str, Handler]] = [
        ("POST", BASE, "admin", crud.create),
        ("GET", BASE, "read", crud.list),
        ("POST", f"{BASE}/preview", "read", views.preview_definition),
        ("GET", f"{BASE}/{{audience_id}}", "read", crud.read),
        ("PATCH", f"{BASE}/{{audience_id}}", "admin", crud.update),
        ("DELETE", f"{BASE}/{{audience_id}}", "admin", crud.delete),
        ("POST", f"{BASE}/{{audience_id}}/run", "admin", crud.run),
        ("GET", f"{BASE}/{{audience_id}}/preview", "read", views.preview),
        ("GET", f"{BASE}/{{audience_id}}/members", "read", views.members),
        ("GET", f"{BASE}/{{audience_id}}/explain", "read", views.explain),
        ("GET", f"{BASE}/{{audience_id}}/history", "read", views.history),
        ("GET", f"{BASE}/{{audience_id}}/runs", "read", views.runs),
    ]
    return [
        Route(path, guarded(deps, scope, fn), methods=[method], name=f"audiences:{fn.__name__}")
        for method, path, scope, fn in table
    ]


class Audiences:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def create(self, request: Request) -> Response:
        body = await json_body(request)
        fields, errors = payload.changes(body, creating=True)
        before = len(errors)
        node = read_definition(body, errors, required=True)
        reject(errors, len(errors) > before or node is None)
        assert node is not None
        saved = await self.deps.run(_create, fields, node, self.deps.clock())
        return JSONResponse((await self.deps.run(described, [saved]))[0], status_code=201)

    async def list(self, request: Request) -> Response:
        limit, after = page_limit(request), decode_cursor(request)
        found: list[Audience] = await self.deps.run(store.page, after, limit + 1)
        docs = await self.deps.run(described, found)
        return JSONResponse(paged(docs, [a.id for a in found], limit))

    async def read(self, request: Request) -> Response:
        audience = await self.deps.run(store.fetch, request.path_params["audience_id"])
        last = await self.deps.run(membership.runs, audience.id, 1)
        doc = (await self.deps.run(described, [audience]))[0]
        return JSONResponse({**doc, "last_run": last[0] if last else None})

    async def update(self, request: Request) -> Response:
        body = await json_body(request)
        fields, errors = payload.changes(body, creating=False)
        before = len(errors)
        node = read_definition(body, errors, required=False)
        reject(errors, len(errors) > before)
        audience_id = request.path_params["audience_id"]
        saved = await self.deps.run(_update, audience_id, fields, node, self.deps.clock())
        return JSONResponse((await self.deps.run(described, [saved]))[0])

    async def delete(self, request: Request) -> Response:
        audience = await self.deps.run(_delete, request.path_params["audience_id"], self.deps.clock())
        await self.deps.enqueue("compute_audience", audience.id)  # its members exit
        return JSONResponse({"id": audience.id, "deleted": True})

    async def run(self, request: Request) -> Response:
        audience = await self.deps.run(store.fetch, request.path_params["audience_id"])
        await self.deps.enqueue("compute_audience", audience.id)
        return JSONResponse({"id": audience.id, "status": "queued"}, status_code=202)


def described(ch: Client, audiences: list[Audience]) -> list[dict[str, Any]]:
    """The JSON of each audience with its mode (`streaming`, or `batch` and the reason) and lag."""
    modes = streaming.modes(store.live(ch))
    fresh = freshness.read(ch, [a.id for a in audiences])
    docs = []
    for audience in audiences:
        mode = modes.get(audience.id, streaming.Mode(streaming.BATCH, "the audience is deleted"))
        extra = {"mode": mode.mode, "batch_reason": mode.reason, "freshness": fresh.get(audience.id)}
        docs.append({**payload.as_json(audience), **extra})
    return docs


def _check(ch: Client, audiences: list[Audience], key: str, node: Node) -> None:
    definitions = {a.key: a.definition for a in audiences}
    errors = check_references(key, node, live_lookup(definitions, key, node))
    errors.update(check_computed(node, defined_computed(ch)))
    if errors:
        raise InvalidDefinition(errors)


def _create(ch: Client, fields: dict[str, Any], node: Node, now: datetime) -> Audience:
    audiences = store.live(ch)
    if any(a.key == fields["key"] for a in audiences):
        raise AudienceConflict("an audience with this key exists", {"key": "already used"})
    _check(ch, audiences, fields["key"], node)
    attributes = payload.attributes(fields)
    attributes.setdefault("schedule_every_s", payload.DEFAULT_EVERY_S)
    audience = Audience(id=f"aud_{uuid.uuid4().hex}", definition=node, created_at=now, **attributes)
    return store.save(ch, audience, now)


def _update(
    ch: Client, audience_id: str, fields: dict[str, Any], node: Node | None, now: datetime
) -> Audience:
    audience = store.fetch(ch, audience_id)
    if node is not None:
        _check(ch, store.live(ch), audience.key, node)
        audience = replace(audience, definition=node)
    return store.save(ch, replace(audience, **payload.attributes(fields)), now)


def _delete(ch: Client, audience_id: str, now: datetime) -> Audience:
    audience = store.fetch(ch, audience_id)
    users = sorted(a.key for a in store.live(ch) if audience.key in referenced_audiences(a.definition))
    if users:
        message = f"audiences {', '.join(users)} refer to this one"
        raise AudienceConflict(message, {"key": f"used by {', '.join(users)}"})
    return store.save(ch, replace(audience, deleted=True), now)
