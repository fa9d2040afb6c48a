"""`POST /admin/v1/sources/{id}/pull` (202: a pull is queued) and `GET /admin/v1/sources/{id}/pulls`
(runs, newest first, with fetched/created/updated/merged/deleted/errors counts)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from activation.admin.auth import TokenStore
from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.errors import ApiError, json_response, not_found, page_limit
from activation.admin.routes import guarded
from activation.crm import store
from activation.crm.pull import JOB_NAME, pull_job_id
from activation.crm.sources import CrmSource, CrmSourceSettings
from activation.services import Services


async def _crm_source(services: Services, request: Request) -> CrmSource:
    source_id = request.path_params["id"]
    rows = await services.db.rows(
        "SELECT count() FROM sources FINAL WHERE id = {s:String} AND deleted = 0", {"s": source_id}
    )
    source = await CrmSourceSettings(services.db, services.secret_key, services.allow).get(source_id)
    if not rows[0][0]:
        raise not_found("source")
    if source is None:
        raise ApiError(400, "not_a_crm_source", "only hubspot and salesforce sources are pulled")
    return source


def routes(services: Services, tokens: TokenStore) -> list[BaseRoute]:
    async def pull(request: Request) -> Response:
        source = await _crm_source(services, request)
        job_id = pull_job_id(source.source_id, f"manual:{time.time_ns()}")  # an explicit request always runs
        queued = await services.enqueue(JOB_NAME, source.source_id, "manual", job_id=job_id)
        return json_response({"source_id": source.source_id, "job_id": job_id, "queued": bool(queued)}, 202)

    async def pulls(request: Request) -> Response:
        source = await _crm_source(services, request)
        limit = page_limit(request)
        key = decode_cursor(request.query_params.get("cursor"), 1)
        rows = await store.list_runs(services.db, source.source_id, str(key[0]) if key else None, limit)
        next_cursor = encode_cursor([rows[-1]["id"]]) if len(rows) == limit else None
        return json_response({"data": rows, "next_cursor": next_cursor})

    g: Callable[[Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]
    g = lambda handler: guarded(tokens, handler)  # noqa: E731
    return [
        Route("/admin/v1/sources/{id}/pull", g(pull), methods=["POST"], name="pull_crm_source"),
        Route("/admin/v1/sources/{id}/pulls", g(pulls), methods=["GET"], name="crm_pull_runs"),
    ]
