"""Profile API: GET /v1/profiles/{type}:{value} (+ /events, /identities). Scope profiles:read.

It sits above identity and audiences and reads both (the document names the profile's audiences).

`routes(ch_provider, enqueue, require)` takes its dependencies explicitly: a callable returning
the ClickHouse client, the job enqueuer (unused here, same signature as the admin routes) and
`require(request, scope)`, which returns an error response when the caller may not proceed.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from activation.admin.errors import json_response
from activation.identity.cache import ProfileCache
from activation.identity.http import ChProvider, Enqueue, Require, error, page_params
from activation.identity.identifiers import Identifier, identifier_problem, parse_identifier
from activation.identity.lookup import lookup
from activation.identity.store import read_rules
from activation.profiles_api import documents, history
from activation.profiles_api.fills import DEFAULT_LIMITS, Busy, Filled, FillLimits, Fills

READ_SCOPE = "profiles:read"
RETRY_AFTER_S = 1


class _Handlers:
    def __init__(
        self, ch_provider: ChProvider, require: Require, cache: ProfileCache | None, limits: FillLimits
    ) -> None:
        self.ch_provider, self.require, self.cache = ch_provider, require, cache
        self.names = documents.AudienceNames()
        generation = cache.generation if cache else None
        self.fills = Fills(self._read_document, self._store if cache else None, limits, generation)

    def _read_document(self, identifier: Identifier, generation: int) -> Filled | None:
        """The stored document (one primary-key read) when it may be served; else the document built
        now. A read never stores what it built: a privacy erasure could land between its reads and
        its write (the jobs' writes hold the documents' lock for that; documents.DocumentWriter), and
        the documents a new generation lacks are rebuilt by the worker (documents.rebuild_profile_documents,
        ensure_profile_documents)."""
        ch = self.ch_provider()
        document = documents.stored(ch, identifier, generation) if self.cache else None
        if document is None:
            profile_id = lookup(ch, identifier)
            document = documents.build(ch, [profile_id]).get(profile_id) if profile_id else None
            if document is None:
                return None
        names = self.names.get(ch, [a["id"] for a in document["audiences"]])
        return Filled(document["profile_id"], orjson.dumps(documents.served(document, names)))

    async def _store(self, identifier: Identifier, filled: Filled) -> None:
        assert self.cache is not None
        await self.cache.put(identifier, filled.profile_id, filled.body)

    async def identify(self, request: Request) -> Identifier | Response:
        denied = await self.require(request, READ_SCOPE)
        if denied is not None:
            return denied
        key = request.path_params["key"]
        identifier = parse_identifier(key)
        if identifier is None and key.startswith("phone:"):  # maybe a national number: the rules say
            rules = await asyncio.to_thread(read_rules, self.ch_provider())
            identifier = parse_identifier(key, rules.default_phone_region)
        if identifier is None:
            problem = identifier_problem(key)
            message = (
                problem if problem.startswith("not a valid") else "expected {type}:{value} with a known type"
            )
            return error(400, "invalid_identifier", message, {"key": problem})
        return identifier

    async def resolve(self, request: Request) -> str | Response:
        identifier = await self.identify(request)
        if isinstance(identifier, Response):
            return identifier
        profile_id = await asyncio.to_thread(lookup, self.ch_provider(), identifier)
        return profile_id or error(404, "not_found", "no profile for this identifier")

    async def get_profile(self, request: Request) -> Response:
        identifier = await self.identify(request)
        if isinstance(identifier, Response):
            return identifier
        cached = await self.cache.get(identifier) if self.cache else None
        if cached is not None:
            return Response(cached, media_type="application/json")
        try:
            filled = await self.fills.get(identifier)
        except Busy:
            busy = error(503, "busy", "too many profile reads in progress; retry shortly")
            busy.headers["Retry-After"] = str(RETRY_AFTER_S)
            return busy
        if filled is None:
            return error(404, "not_found", "no profile for this identifier")
        return Response(filled.body, media_type="application/json")

    async def get_events(self, request: Request) -> Response:
        found = await self.resolve(request)
        if isinstance(found, Response):
            return found
        paging = page_params(request)
        if isinstance(paging, Response):
            return paging
        limit, cursor = paging
        try:
            events, next_cursor = await asyncio.to_thread(
                history.profile_events, self.ch_provider(), found, cursor, limit
            )
        except ValueError:
            return error(
                400, "invalid_request", "bad cursor", {"cursor": "use next_cursor from a previous page"}
            )
        return json_response({"data": events, "next_cursor": next_cursor})

    async def get_identities(self, request: Request) -> Response:
        found = await self.resolve(request)
        if isinstance(found, Response):
            return found
        return json_response(await asyncio.to_thread(history.profile_identities, self.ch_provider(), found))


def routes(
    ch_provider: ChProvider,
    enqueue: Enqueue,
    require: Require,
    cache: ProfileCache | None = None,
    limits: FillLimits = DEFAULT_LIMITS,
) -> list[BaseRoute]:
    """Profile read routes; with a cache, profile documents are served from Redis when fresh, and a
    document missing from it is read under `limits` (profiles_api.fills)."""
    h = _Handlers(ch_provider, require, cache, limits)
    return [
        Route("/v1/profiles/{key:path}/events", h.get_events, methods=["GET"]),
        Route("/v1/profiles/{key:path}/identities", h.get_identities, methods=["GET"]),
        Route("/v1/profiles/{key:path}", h.get_profile, methods=["GET"]),
    ]
