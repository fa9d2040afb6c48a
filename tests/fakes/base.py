"""Shared machinery for fake SaaS servers: an aiohttp app on 127.0.0.1, fault injection, OAuth tokens.

Usage: `async with FakeHubSpot() as fake: ... fake.base_url ...`. Faults are queued with
`fake.inject(kind, times=1, path="...")`; each matching request consumes one. Kinds every fake knows:
`throttle`, `error500`, `hang` (until the server stops) and `auth_expired` (token fakes revoke every
access token at once, so only a refreshed token works; key-based fakes answer 401 `times` times).
The `echo` fault (param `form`: header, base64, basic, urlencoded, percent) answers with the platform's
error shape quoting the credential the request presented, in that form, as careless platforms do.
`fake.refuse(value)` makes the platform refuse one record (an identifier value as the platform sees
it: a hash for Google and Meta, an email for Mailchimp and HubSpot, a profile id for webhooks) with
that platform's own signal — a per-operation error, a counted invalid row, a per-member 400, or a
whole-request 400/422.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    kind: str
    times: int | None
    path: str | None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class FakeServer:
    uses_tokens = True

    def __init__(self, *, latency_s: float = 0.0, max_connections: int | None = None) -> None:
        self.latency_s = latency_s
        self.max_connections = max_connections
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.tokens: set[str] = {"access-1"}
        self.refresh_tokens: set[str] = {"refresh-1"}
        self.client = ("client-id", "client-secret")
        self.refresh_calls = 0
        self.refused: set[str] = set()
        self._ids = itertools.count(1000)
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self.add_routes(self.app.router)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    # -- control API -------------------------------------------------------------------------------
    def inject(self, kind: str, times: int | None = 1, *, path: str | None = None, **params: Any) -> None:
        if kind == "auth_expired" and self.uses_tokens:
            self.tokens.clear()
            return
        self.faults.append(Fault(kind, times, path, params))

    def refuse(self, *values: str) -> None:
        self.refused.update(values)

    def next_id(self) -> int:
        return next(self._ids)

    def requests_to(self, fragment: str) -> list[Recorded]:
        return [r for r in self.requests if fragment in r.path]

    # -- platform-specific responses (overridden) --------------------------------------------------
    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        raise NotImplementedError

    def server_error_response(self) -> web.StreamResponse:
        return web.json_response({"error": "internal"}, status=500)

    def auth_error_response(self) -> web.StreamResponse:
        raise NotImplementedError

    def echo_response(self, text: str) -> web.StreamResponse:
        """An error in the platform's shape whose message is `text`."""
        raise NotImplementedError

    async def custom_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        """Faults a subclass understands; None lets the request through (the fault is still consumed)."""
        return None

    # -- helpers for handlers ----------------------------------------------------------------------
    def bearer_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[len("Bearer ") :] in self.tokens

    def issue_token(self) -> str:
        token = f"access-{secrets.token_hex(4)}"
        self.tokens.add(token)
        return token

    async def token_endpoint(self, request: web.Request) -> web.StreamResponse:
        """OAuth2 refresh_token grant (form-encoded), shared by Google and HubSpot fakes."""
        form = await request.post()
        valid = (
            form.get("grant_type") == "refresh_token"
            and (form.get("client_id"), form.get("client_secret")) == self.client
            and form.get("refresh_token") in self.refresh_tokens
        )
        if not valid:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Bad request"}, status=400
            )
        self.refresh_calls += 1
        body = {"access_token": self.issue_token(), "expires_in": 1800, "token_type": "Bearer"}
        return web.json_response({**body, "refresh_token": form["refresh_token"]})

    # -- plumbing ----------------------------------------------------------------------------------
    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.path is not None and fault.path not in request.path:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.max_connections is not None and self.in_flight > self.max_connections:
                return self.throttle_response(Fault("throttle", 1, None, {"reason": "connections"}))
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            fault = self._take_fault(request)
            if fault is not None:
                response = await self._fault_response(fault, request)
                if response is not None:
                    return response
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _fault_response(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "hang":
            await self._release.wait()
            return web.Response(status=504)
        if fault.kind == "error500":
            return self.server_error_response()
        if fault.kind == "throttle":
            return self.throttle_response(fault)
        if fault.kind == "auth_expired":
            return self.auth_error_response()
        if fault.kind == "echo":
            text = echo_text(request.headers.get("Authorization", ""), await request.read())
            return self.echo_response(f"ECHO {fault.params['form']}: {text[fault.params['form']]}")
        return await self.custom_fault(fault, request)

    async def __aenter__(self) -> Self:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site.port}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()


def echo_text(authorization: str, body: bytes) -> dict[str, str]:
    """The presented credential (bearer token, Basic password or Meta's body `access_token`) in the
    forms a platform might quote it in."""
    scheme, _, value = authorization.partition(" ")
    secret = value
    if scheme == "Basic":
        secret = base64.b64decode(value).decode().partition(":")[2]
    elif not authorization:
        parsed = orjson.loads(body) if body.startswith(b"{") else {}
        secret = str(parsed.get("access_token", "")) if isinstance(parsed, dict) else ""
    return {
        "header": authorization or f"access_token={secret}",
        "base64": base64.b64encode(secret.encode()).decode(),
        "basic": base64.b64encode(f"magpie:{secret}".encode()).decode(),
        "urlencoded": urllib.parse.quote_plus(f"magpie:{secret}"),
        "percent": "".join(f"%{byte:02X}" for byte in secret.encode()),
    }
