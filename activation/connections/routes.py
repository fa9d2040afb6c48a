"""Routes of event forwarding, built from the services and the token store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from activation.admin.auth import TokenStore
from activation.admin.routes import guarded
from activation.connections import api, replays_api
from activation.services import Services

Action = Callable[[Services, Request], Awaitable[Response]]


def routes(services: Services, tokens: TokenStore) -> list[BaseRoute]:
    def route(path: str, name: str, by_method: dict[str, Action]) -> Route:
        async def endpoint(request: Request) -> Response:
            return await by_method[request.method](services, request)

        return Route(path, guarded(tokens, endpoint), methods=list(by_method), name=name)

    dst = "/admin/v1/destinations/{id}"
    return [
        route("/admin/v1/connections", "connections", {"GET": api.list_all, "POST": api.create}),
        route(
            "/admin/v1/connections/{id}",
            "connection",
            {"GET": api.read, "PATCH": api.update, "DELETE": api.delete},
        ),
        route(dst + "/replay", "replay_events", {"POST": replays_api.start}),
        route(
            dst + "/replays/{rid}", "event_replay", {"GET": replays_api.read, "DELETE": replays_api.cancel}
        ),
        route(dst + "/event-dead-letters", "event_dead_letters", {"GET": replays_api.dead_letters}),
        route(
            dst + "/event-dead-letters/replay",
            "replay_event_dead_letters",
            {"POST": replays_api.replay_dead_letters},
        ),
    ]
