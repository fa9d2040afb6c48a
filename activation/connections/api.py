"""Handlers for /admin/v1/connections, /admin/v1/destinations/{id}/replay(s) and event dead letters.

A connection needs an existing source and an event destination (a type in EVENT_REGISTRY); its
source and destination cannot change (create another connection). Every response of a connection
carries its delivery stats. Bad input is a 400 naming each field; unknown ids are 404s.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.errors import ApiError, json_body, json_response, not_found, page_limit
from activation.connections import queue
from activation.connections.routing import destinations, routes_changed
from activation.connections.rules import read_filter, read_mapping
from activation.connections.store import ConnectionRecord, ConnectionStore
from activation.destinations.events import EVENT_REGISTRY
from activation.services import Services

FIELDS = ("source_id", "destination_id", "filter", "mapping", "enabled")


def invalid(fields: dict[str, str]) -> ApiError:
    return ApiError(400, "invalid_connection", "the connection has invalid fields", fields)


async def view(services: Services, record: ConnectionRecord) -> dict[str, Any]:
    stats = await queue.stats(services.redis, record.id, record.destination_id)
    return {**record.public(), "stats": stats}


async def _load(services: Services, connection_id: str) -> ConnectionRecord:
    record = await ConnectionStore(services.db).get(connection_id)
    if record is None:
        raise not_found("connection")
    return record


def _read(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    errors = {k: "unknown field" for k in body if k not in FIELDS}
    if not creating:
        errors.update({k: "cannot be changed; create a new connection" for k in FIELDS[:2] if k in body})
    for key in FIELDS[:2] if creating else ():
        if not isinstance(body.get(key), str) or not body.get(key):
            errors[key] = "is required"
    filter_, problems = read_filter(body.get("filter"))
    mapping, more = read_mapping(body.get("mapping"))
    errors.update(problems | more)
    if "enabled" in body and not isinstance(body["enabled"], bool):
        errors["enabled"] = "must be true or false"
    if errors:
        raise invalid(errors)
    return {**{k: v for k, v in body.items() if k in FIELDS}, "filter": filter_, "mapping": mapping}


async def _check_ends(services: Services, source_id: str, destination_id: str) -> None:
    errors: dict[str, str] = {}
    sql = "SELECT count() FROM sources FINAL WHERE id = {id:String} AND deleted = 0"
    if not (await services.db.rows(sql, {"id": source_id}))[0][0]:
        errors["source_id"] = "no such source"
    record = await destinations(services).get(destination_id)
    if record is None:
        errors["destination_id"] = "no such destination"
    elif record.type not in EVENT_REGISTRY:
        kinds = ", ".join(sorted(EVENT_REGISTRY))
        errors["destination_id"] = f"a {record.type} destination cannot receive events (event types: {kinds})"
    if errors:
        raise invalid(errors)


async def create(services: Services, request: Request) -> Response:
    fields = _read(await json_body(request), creating=True)
    await _check_ends(services, fields["source_id"], fields["destination_id"])
    record = ConnectionRecord(
        id=f"con_{time.time_ns():016x}{uuid.uuid4().hex[:8]}",
        source_id=fields["source_id"],
        destination_id=fields["destination_id"],
        filter=fields["filter"],
        mapping=fields["mapping"],
        enabled=fields.get("enabled", True),
        created_at=datetime.now(UTC),
    )
    saved = await ConnectionStore(services.db).save(record)
    await routes_changed(services)
    return json_response(await view(services, saved), 201)


async def update(services: Services, request: Request) -> Response:
    body = await json_body(request)
    fields = _read(body, creating=False)
    record = await _load(services, request.path_params["id"])
    changed = replace(
        record,
        filter=fields["filter"] if "filter" in body else record.filter,
        mapping=fields["mapping"] if "mapping" in body else record.mapping,
        enabled=fields.get("enabled", record.enabled),
    )
    saved = await ConnectionStore(services.db).save(changed)
    await routes_changed(services)
    return json_response(await view(services, saved))


async def read(services: Services, request: Request) -> Response:
    return json_response(await view(services, await _load(services, request.path_params["id"])))


async def delete(services: Services, request: Request) -> Response:
    record = await _load(services, request.path_params["id"])
    await ConnectionStore(services.db).save(replace(record, deleted=True, enabled=False))
    await routes_changed(services)
    return Response(status_code=204)


async def list_all(services: Services, request: Request) -> Response:
    limit = page_limit(request)
    key = decode_cursor(request.query_params.get("cursor"), 1)
    records = await ConnectionStore(services.db).page(str(key[0]) if key else "", limit)
    next_cursor = encode_cursor([records[-1].id]) if len(records) == limit else None
    return json_response({"data": [await view(services, r) for r in records], "next_cursor": next_cursor})
