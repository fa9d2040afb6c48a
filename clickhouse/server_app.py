"""The ASGI application of `magpie clickhouse`: ClickHouse's HTTP interface in front of the embedded
engine. `/ping`, `/replicas_status` and a bare `GET /` answer "Ok."; every other request is a query,
authenticated first (only `default` exists, with MAGPIE_CLICKHOUSE_PASSWORD)."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

from clickhouse.server_codec import choose
from clickhouse.server_engine import Engine
from clickhouse.server_errors import ClickHouseError, error
from clickhouse.server_http import Body, ClientGone, Receive, Scope, Send, headers_of, send_error, send_text
from clickhouse.server_query import MAX_ACTIVE_QUERIES, MAX_QUERY_BYTES, Exchange, Runner
from clickhouse.server_request import (
    QueryRequest,
    authenticate,
    credentials,
    form_pairs,
    parse_params,
    query_pairs,
)
from clickhouse.server_sessions import Sessions

log = logging.getLogger(__name__)

SESSION_REAP_INTERVAL_S = 1.0
_NO_HANDLER = (
    "There is no handle {path}\n\nUse / or /ping for health checks.\n"
    "Or /replicas_status for more sophisticated health checks.\n\n"
    "Send queries from your program with POST method or GET /?query=...\n"
)


class ClickHouseApp:
    def __init__(self, engine: Engine, password: str) -> None:
        self.engine = engine
        self.sessions = Sessions()
        self.pool = ThreadPoolExecutor(MAX_ACTIVE_QUERIES + 4, thread_name_prefix="chdb")
        self.runner = Runner(engine, self.sessions, self.pool)
        self._password = password
        self._display_name = socket.gethostname()
        self._compression_default = self._setting_default("enable_http_compression") not in ("0", "false")
        self._reaper: asyncio.Task[None] | None = None

    def _setting_default(self, name: str) -> str:
        sql = f"SELECT value FROM system.settings WHERE name = '{name}'".encode()
        handle = self.engine.acquire()
        try:
            return bytes(self.engine.run(handle, sql, "TabSeparated", {}).bytes()).decode().strip()
        finally:
            if not self.engine.pool(handle):
                self.engine.discard(handle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                await self._http(scope, receive, send)
            except ClientGone:
                log.debug("client went away")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._reaper = asyncio.create_task(self._reap())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._reaper is not None:
                    self._reaper.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(SESSION_REAP_INTERVAL_S)
            for handle in self.sessions.expired():
                await self.runner.thread(self.engine.discard, handle)

    def close(self) -> None:
        """After the server stopped (running requests had the grace period to finish): cancel what
        still runs, wait for the engine calls to return, then close every handle."""
        try:
            self.engine.kill_all()
        except ClickHouseError as exc:
            log.warning("clickhouse: could not cancel running queries at shutdown: %s", exc.text)
        self.pool.shutdown(wait=True)
        for handle in self.sessions.drain():
            self.engine.discard(handle)
        self.engine.close()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        pairs = query_pairs(scope.get("query_string", b""))
        if path in ("/ping", "/replicas_status") or (
            path == "/" and method in ("GET", "HEAD") and not any(k == "query" for k, _ in pairs)
        ):
            await send_text(send, 200, "Ok.\n")
            return
        if path != "/" and not any(k == "query" for k, _ in pairs) and method in ("GET", "HEAD"):
            await send_text(send, 404, _NO_HANDLER.format(path=path))
            return
        await self._query(scope, receive, send, pairs)

    def _base_headers(self, query_id: str, req: QueryRequest | None) -> dict[str, str]:
        timezone = (req.settings.get("session_timezone") if req else "") or self.engine.timezone
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": timezone,
            "X-ClickHouse-Server-Display-Name": self._display_name,
        }

    async def _query(self, scope: Scope, receive: Receive, send: Send, pairs: list[tuple[str, str]]) -> None:
        headers = headers_of(scope)
        query_id = dict(pairs).get("query_id") or str(uuid.uuid4())
        base = self._base_headers(query_id, None)
        started = [False]
        try:
            ex = await self._exchange(scope, receive, send, headers, pairs, query_id, started)
            base = ex.headers
            await self.runner.handle(ex)
        except ClickHouseError as exc:
            if started[0]:
                raise
            await send_error(send, exc, self.engine.version, base)

    async def _exchange(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        pairs: list[tuple[str, str]],
        query_id: str,
        started: list[bool],
    ) -> Exchange:
        body = Body(receive, headers.get("content-encoding", ""))
        content_type = headers.get("content-type", "").lower()
        if scope["method"] == "POST" and content_type.startswith("multipart/form-data"):
            raw = bytearray()
            await body.read_into(raw, MAX_QUERY_BYTES)
            pairs = pairs + form_pairs(headers.get("content-type", ""), bytes(raw))
        for header, name in (
            ("x-clickhouse-database", "database"),
            ("x-clickhouse-format", "default_format"),
        ):
            if header in headers and not any(k == name for k, _ in pairs):
                pairs = [*pairs, (name, headers[header])]
        authenticate(self._password, *credentials(headers, pairs))
        req = parse_params(scope["method"], pairs)
        if req.internal_compression:
            raise error(
                "NOT_IMPLEMENTED", "compress=1/decompress=1 (ClickHouse's block compression) is not supported"
            )
        enabled = self._compression_default if req.compression is None else req.compression
        encoding = choose(headers.get("accept-encoding", "")) if enabled else None
        return Exchange(req, body, send, self._base_headers(query_id, req), encoding, started)


def _with_header_params(headers: dict[str, str], pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """X-ClickHouse-Database / X-ClickHouse-Format stand in for absent `database` / `default_format`."""
    for header, name in (("x-clickhouse-database", "database"), ("x-clickhouse-format", "default_format")):
        if header in headers and not any(k == name for k, _ in pairs):
            pairs = [*pairs, (name, headers[header])]
    return pairs
