"""Handlers for replays (`POST /admin/v1/destinations/{id}/replay`, `GET`/`DELETE .../replays/{rid}`)
and event dead letters (`GET .../event-dead-letters`, `POST .../event-dead-letters/replay`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.errors import ApiError, json_body, json_response, not_found, page_limit
from activation.connections import letters, queue, replay
from activation.connections.reader import wake
from activation.connections.routing import destinations
from activation.connections.rules import read_filter
from activation.connections.store import ConnectionStore
from activation.destinations.events import EVENT_REGISTRY
from activation.services import Services
from activation.sync.store import DestinationRecord

MAX_REPLAYED = 10_000


def _moment(raw: Any, name: str, errors: dict[str, str]) -> datetime:
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if not 1971 <= moment.year <= 2299:
            raise ValueError(raw)
        return moment.astimezone(UTC)
    except ValueError:
        errors[name] = "must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z"
        return datetime(1970, 1, 1, tzinfo=UTC)


async def _event_destination(services: Services, destination_id: str) -> DestinationRecord:
    record = await destinations(services).get(destination_id)
    if record is None:
        raise not_found("destination")
    if record.type not in EVENT_REGISTRY:
        message = f"a {record.type} destination does not receive events"
        raise ApiError(409, "not_an_event_destination", message)
    return record


async def start(services: Services, request: Request) -> Response:
    record = await _event_destination(services, request.path_params["id"])
    body = await json_body(request)
    errors = {k: "unknown field" for k in body if k not in ("from", "to", "filter")}
    from_ts, to_ts = _moment(body.get("from"), "from", errors), _moment(body.get("to"), "to", errors)
    filter_, problems = read_filter(body.get("filter"))
    errors.update(problems)
    if not errors and from_ts >= to_ts:
        errors["to"] = "must be after from"
    if errors:
        raise ApiError(400, "invalid_replay", "the replay has invalid fields", errors)
    connections = await ConnectionStore(services.db).of_destination(record.id)
    if not connections:
        raise ApiError(409, "no_connection", "no enabled connection leads to this destination")
    sources = sorted({c.source_id for c in connections})
    total = await replay.count_window(services.db, sources, from_ts, to_ts)
    new = replay.Replay(
        replay.new_id(), record.id, from_ts, to_ts, filter_, total=total, created_at=datetime.now(UTC)
    )
    saved = await replay.save(services.db, new)
    await services.enqueue(replay.JOB, saved.id, job_id=saved.id)
    return json_response(saved.public(), 202)


async def _replay_of(services: Services, request: Request) -> replay.Replay:
    found = await replay.get(services.db, request.path_params["rid"])
    if found is None or found.destination_id != request.path_params["id"]:
        raise not_found("replay")
    return found


async def read(services: Services, request: Request) -> Response:
    return json_response((await _replay_of(services, request)).public())


async def cancel(services: Services, request: Request) -> Response:
    """Ask a queued or running replay to stop; a finished one is returned unchanged."""
    found = await _replay_of(services, request)
    if found.status in replay.FINISHED:
        return json_response(found.public())
    await services.redis.set(replay.cancel_key(found.id), "1", ex=7 * 86400)
    if found.status == "queued":
        found = await replay.save(services.db, replace(found, status="cancelled"))
    return json_response({**found.public(), "cancel_requested": True}, 202)


async def dead_letters(services: Services, request: Request) -> Response:
    record = await _event_destination(services, request.path_params["id"])
    limit = page_limit(request)
    key = decode_cursor(request.query_params.get("cursor"), 1)
    status = request.query_params.get("status", "")
    if status not in ("", "open", "replayed"):
        raise ApiError(400, "invalid_parameter", "status must be open or replayed", {"status": "unknown"})
    rows = await letters.page(services.db, record.id, status, str(key[0]) if key else "", limit)
    next_cursor = encode_cursor([rows[-1]["id"]]) if len(rows) == limit else None
    return json_response({"data": [letters.public(r) for r in rows], "next_cursor": next_cursor})


async def replay_dead_letters(services: Services, request: Request) -> Response:
    """Re-queue the open dead letters (oldest first, up to 10,000 per call) at the tail of the
    destination's queue, as they were refused, and mark them replayed."""
    record = await _event_destination(services, request.path_params["id"])
    rows = await letters.page(services.db, record.id, "open", "", MAX_REPLAYED)
    events = [queue.decode(r["item"]) for r in rows]
    full = await queue.push(services.redis, record.id, events, 10 * MAX_REPLAYED + len(events))
    await letters.mark(services.db, rows[: len(rows) - len(full)], "replayed")
    await wake(services, record.id)
    return json_response({"destination_id": record.id, "replayed": len(rows) - len(full)}, 202)
