"""Handing out engine handles to requests, each ready for its request: the database chosen, exactly
its URL settings applied. A sessionless request borrows a pooled handle, a session request its
session's, and a request with `readonly` a throwaway one (ClickHouse cannot reset `readonly`).
The hot path costs one worker-thread hop: an idle handle that needs no preparation (same database,
same settings) is taken on the event loop; otherwise the handle is taken and prepared in one call
on a worker thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from clickhouse.server_engine import Engine, Handle
from clickhouse.server_request import QueryRequest
from clickhouse.server_sessions import Sessions
from clickhouse.server_sql import Statement

Thread = Callable[..., Awaitable[Any]]


def _stateful(stmt: Statement | None) -> bool:
    """Statements that leave state on their handle (a pooled handle must not pass it on)."""
    if stmt is None:
        return False
    return stmt.kind in ("SET", "USE") or (stmt.kind, stmt.second) == ("CREATE", "TEMPORARY")


class Lender:
    def __init__(self, engine: Engine, sessions: Sessions, thread: Thread) -> None:
        self.engine = engine
        self.sessions = sessions
        self._thread = thread

    @asynccontextmanager
    async def borrow(self, req: QueryRequest, stmt: Statement | None) -> AsyncIterator[Handle]:
        settings = dict(req.settings)
        readonly = settings.pop("readonly", "0")
        readonly = "" if readonly in ("0", "") else readonly
        if req.session_id and not readonly:
            async with self._session(req, stmt, settings) as handle:
                yield handle
            return
        ready = None if readonly or _stateful(stmt) else self.engine.take_ready(req.database, settings)
        handle = ready or await self._thread(self._ready_pooled, req.database, settings, readonly, stmt)
        try:
            yield handle
        finally:
            if not self.engine.pool(handle):
                await self._thread(self.engine.discard, handle)

    @asynccontextmanager
    async def _session(
        self, req: QueryRequest, stmt: Statement | None, settings: Mapping[str, str]
    ) -> AsyncIterator[Handle]:
        session = await self.sessions.claim(req.session_id, req.session_timeout_s, req.session_check)
        try:
            if session.handle is None:
                session.handle = await self._thread(self.engine.open, True)
            handle = session.handle
            await self._thread(self._prepare, handle, req.database, settings, "", stmt)
            try:
                yield handle
            finally:
                if stmt is not None and stmt.kind == "USE":
                    handle.database = None  # whatever it switched to, ask again next time
        finally:
            if session.handle is None:
                self.sessions.abandon(req.session_id)
            else:
                self.sessions.give_back(req.session_id)

    def _prepare(
        self,
        handle: Handle,
        database: str | None,
        settings: Mapping[str, str],
        readonly: str,
        stmt: Statement | None,
    ) -> None:
        if handle.session and stmt is not None and stmt.kind == "SET":
            self.engine.forget_session_settings(handle)  # the session's own SET becomes its baseline
        else:
            self.engine.prepare(handle, database, settings)
        if readonly:
            self.engine.lock_readonly(handle, readonly)

    def _ready_pooled(
        self, database: str | None, settings: Mapping[str, str], readonly: str, stmt: Statement | None
    ) -> Handle:
        handle = self.engine.open() if readonly else self.engine.acquire()
        handle.dirty = handle.dirty or bool(readonly) or _stateful(stmt)
        try:
            self._prepare(handle, database, settings, readonly, stmt)
        except BaseException:
            if not self.engine.pool(handle):
                self.engine.discard(handle)
            raise
        return handle
