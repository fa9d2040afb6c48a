"""Handlers for /admin/v1/syncs: the run log, one run with its dead letters, replay, manual trigger."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.errors import ApiError, json_body, json_response, not_found, page_limit
from activation.sync import runs, state
from activation.sync.context import SyncContext
from activation.sync.engine import JOB_NAME, sync_job_id
from activation.sync.state import Pair

FILTERS = ("destination_id", "audience_id")
MAX_LETTERS = 1000
RESET = {"entered": "absent", "exited": "present"}


async def list_runs(ctx: SyncContext, request: Request) -> Response:
    limit = page_limit(request)
    key = decode_cursor(request.query_params.get("cursor"), 1)
    filters = {k: request.query_params[k] for k in FILTERS if request.query_params.get(k)}
    rows = await runs.list_runs(ctx.db, filters, str(key[0]) if key else None, limit)
    next_cursor = encode_cursor([rows[-1]["id"]]) if len(rows) == limit else None
    return json_response({"data": rows, "next_cursor": next_cursor})


async def read_run(ctx: SyncContext, request: Request) -> Response:
    run = await runs.get_run(ctx.db, request.path_params["id"])
    if run is None:
        raise not_found("sync run")
    letters = await runs.dead_letters(ctx.db, run["id"])
    body = {**run, "dead_letters": letters[:MAX_LETTERS], "dead_letters_total": len(letters)}
    return json_response(body)


async def replay(ctx: SyncContext, request: Request) -> Response:
    """Re-enqueue the run's open dead letters: permanent ones are cleared from the skip list, and a
    sync of the destination × audience is queued (it sends whatever is still not confirmed)."""
    run = await runs.get_run(ctx.db, request.path_params["id"])
    if run is None:
        raise not_found("sync run")
    letters = await runs.dead_letters(ctx.db, run["id"], status="open")
    pair = Pair(run["destination_id"], run["audience_id"])
    reset = [(d["profile_id"], RESET[d["change"]]) for d in letters if d["permanent"]]
    await state.record(ctx.db, pair, f"replay:{run['id']}", reset)
    await runs.mark_replayed(ctx.db, letters)
    job_id = sync_job_id(pair.destination_id, pair.audience_id, f"replay:{run['id']}:{time.time_ns()}")
    queued = await ctx.enqueue(JOB_NAME, pair.destination_id, pair.audience_id, "replay", job_id=job_id)
    body = {"run_id": run["id"], "replayed": len(letters), "job_id": job_id, "queued": bool(queued)}
    return json_response(body, 202)


async def trigger(ctx: SyncContext, request: Request) -> Response:
    """POST /admin/v1/syncs {"destination_id", "audience_id"}: queue a sync now."""
    body = await json_body(request)
    errors = {k: "is required" for k in FILTERS if not isinstance(body.get(k), str) or not body.get(k)}
    if errors:
        raise ApiError(400, "invalid_sync", "destination_id and audience_id are required", errors)
    if await ctx.store().get(body["destination_id"]) is None:
        raise not_found("destination")
    tag = f"manual:{int(time.time()) // 10}"
    job_id = sync_job_id(body["destination_id"], body["audience_id"], tag)
    queued = await ctx.enqueue(JOB_NAME, body["destination_id"], body["audience_id"], "manual", job_id=job_id)
    return json_response({"job_id": job_id, "queued": bool(queued)}, 202)
