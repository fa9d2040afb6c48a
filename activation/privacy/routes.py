"""`/admin/v1/privacy/deletions`, `/exports` and `/audit` (SPEC §9). Requests and reads need the
`admin` scope (they concern personal data); each request is audited with the asking token's id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from activation.admin.auth import Token, TokenStore
from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.errors import ApiError, json_body, json_response, not_found, page_limit
from activation.identity.identifiers import Identifier
from activation.privacy import audit, requests
from activation.privacy.deletion import JOB as DELETE_JOB
from activation.privacy.deletion import MODES
from activation.privacy.deletion import job_id as delete_job_id
from activation.privacy.export import JOB as EXPORT_JOB
from activation.privacy.export import document_path
from activation.privacy.identifiers_body import parse_identifier_body, parse_identifiers_body
from activation.privacy.person import Person
from activation.privacy.requests import PrivacyRequest
from activation.privacy.wiring import PrivacyWiring
from activation.services import Services

Handler = Callable[[Request, Token], Awaitable[Response]]
BASE = "/admin/v1/privacy"


class PrivacyApi:
    def __init__(self, services: Services, wiring: PrivacyWiring) -> None:
        self.services, self.wiring = services, wiring

    async def create_deletion(self, request: Request, token: Token) -> Response:
        body = await json_body(request)
        identifiers = parse_identifiers_body(body)
        mode = body.get("mode")
        if mode not in MODES:
            raise ApiError(400, "invalid_mode", f"mode must be one of {list(MODES)}", {"mode": "invalid"})
        created = await _create(self.services, "deletion", str(mode), identifiers, token)
        await self.services.enqueue(DELETE_JOB, created.id, job_id=delete_job_id(created.id))
        return json_response({"id": created.id, "status": created.status}, 202)

    async def retry_deletion(self, request: Request, token: Token) -> Response:
        """Re-run a failed deletion: the destination steps that failed (kept sealed), then every
        table and Redis again (no-ops where nothing is left)."""
        found = await requests.get(self.services.db, request.path_params["id"], "deletion")
        if found is None:
            raise not_found("deletion request")
        if found.status != "failed":
            message = f"only a failed deletion can be retried; this one is {found.status}"
            raise ApiError(409, "not_retryable", message, {"status": found.status})
        saved = await requests.save(self.services.db, replace(found, status="pending", error=""))
        await audit.record(
            self.services.db, self.services.clock(), found.id, "deletion", "retry_requested",
            token_id=token.id, identifier_hashes=found.identifier_hashes, mode=found.mode,
        )  # fmt: skip
        job = f"{delete_job_id(found.id)}:retry:{saved.version}"  # arq keeps the first run's job id
        await self.services.enqueue(DELETE_JOB, found.id, job_id=job)
        return json_response({"id": found.id, "status": saved.status}, 202)

    async def create_export(self, request: Request, token: Token) -> Response:
        identifier = parse_identifier_body(await json_body(request))
        created = await _create(self.services, "export", "", [identifier], token)
        await self.services.enqueue(EXPORT_JOB, created.id, job_id=f"{EXPORT_JOB}:{created.id}")
        return json_response({"id": created.id, "status": created.status}, 202)

    def listing(self, kind: str) -> Handler:
        async def handler(request: Request, token: Token) -> Response:
            limit = page_limit(request)
            cursor = decode_cursor(request.query_params.get("cursor"), 1)
            rows = await requests.page(self.services.db, kind, str(cursor[0]) if cursor else "", limit)
            next_cursor = encode_cursor([rows[-1].id]) if len(rows) == limit else None
            return json_response({"data": [r.public() for r in rows], "next_cursor": next_cursor})

        return handler

    async def read_deletion(self, request: Request, token: Token) -> Response:
        found = await requests.get(self.services.db, request.path_params["id"], "deletion")
        if found is None:
            raise not_found("deletion request")
        return json_response(found.public())

    async def read_export(self, request: Request, token: Token) -> Response:
        """The status until the document is ready, then the document itself, streamed from its file."""
        found = await requests.get(self.services.db, request.path_params["id"], "export")
        if found is None:
            raise not_found("export request")
        path = document_path(self.wiring, found.id)
        if found.status == "completed" and path.exists():
            return FileResponse(path, media_type="application/json")
        return json_response(found.public())

    async def read_audit(self, request: Request, token: Token) -> Response:
        limit = page_limit(request)
        cursor = decode_cursor(request.query_params.get("cursor"), 2)
        before = (datetime.fromisoformat(str(cursor[0])), str(cursor[1])) if cursor else None
        rows = await audit.page(self.services.db, before, limit)
        last = rows[-1] if len(rows) == limit else None
        next_cursor = encode_cursor([last["at"], last["request_id"]]) if last else None
        return json_response({"data": rows, "next_cursor": next_cursor})


def routes(services: Services, tokens: TokenStore, wiring: PrivacyWiring) -> list[BaseRoute]:
    api = PrivacyApi(services, wiring)

    def g(by_method: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                token = await tokens.require(request, "admin")  # personal data: admin only, GET too
                return await by_method[request.method](request, token)
            except ApiError as exc:
                return exc.response()

        return endpoint

    def route(path: str, name: str, by_method: dict[str, Handler]) -> Route:
        return Route(f"{BASE}{path}", g(by_method), methods=list(by_method), name=name)

    return [
        route(
            "/deletions", "privacy_deletions", {"GET": api.listing("deletion"), "POST": api.create_deletion}
        ),
        route("/deletions/{id}", "privacy_deletion", {"GET": api.read_deletion}),
        route("/deletions/{id}/retry", "privacy_deletion_retry", {"POST": api.retry_deletion}),
        route("/exports", "privacy_exports", {"GET": api.listing("export"), "POST": api.create_export}),
        route("/exports/{id}", "privacy_export", {"GET": api.read_export}),
        route("/audit", "privacy_audit", {"GET": api.read_audit}),
    ]


async def _create(
    services: Services, kind: str, mode: str, identifiers: list[Identifier], token: Token
) -> PrivacyRequest:
    named = Person(
        frozenset(i.value for i in identifiers if i.type == "profile"),
        frozenset(i for i in identifiers if i.type != "profile"),
    )
    hashes = tuple(audit.hashes(services.secret_key, identifiers))
    now = services.clock()
    request = PrivacyRequest(
        requests.new_id("del" if kind == "deletion" else "exp"), kind, mode, "pending",
        requests.person_json(named), hashes, token.id, now,
    )  # fmt: skip
    saved = await requests.save(services.db, request)
    await audit.record(
        services.db, now, saved.id, kind, "requested", token_id=token.id, identifier_hashes=hashes, mode=mode
    )
    return saved
