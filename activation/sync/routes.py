"""Routes for /admin/v1/destinations and /admin/v1/syncs, built from an explicit `SyncContext`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from activation.admin.routes import guarded
from activation.sync import destinations_api as dst
from activation.sync import syncs_api as syn
from activation.sync.context import SyncContext

Handler = Callable[[Request], Awaitable[Response]]
Action = Callable[[SyncContext, Request], Awaitable[Response]]


def routes(ctx: SyncContext) -> list[BaseRoute]:
    def g(by_method: dict[str, Action]) -> Handler:
        async def endpoint(request: Request) -> Response:
            return await by_method[request.method](ctx, request)

        return guarded(ctx.tokens, endpoint)

    def route(path: str, name: str, by_method: dict[str, Action]) -> Route:
        return Route(path, g(by_method), methods=list(by_method), name=name)

    return [
        route("/admin/v1/destinations", "destinations", {"GET": dst.list_all, "POST": dst.create}),
        route(
            "/admin/v1/destinations/{id}",
            "destination",
            {"GET": dst.read, "PATCH": dst.update, "DELETE": dst.delete},
        ),
        route("/admin/v1/destinations/{id}/test", "test_destination_connection", {"POST": dst.test}),
        route("/admin/v1/syncs", "sync_runs", {"GET": syn.list_runs, "POST": syn.trigger}),
        route("/admin/v1/syncs/{id}", "sync_run_with_dead_letters", {"GET": syn.read_run}),
        route("/admin/v1/syncs/{id}/replay", "replay_dead_letters", {"POST": syn.replay}),
    ]
