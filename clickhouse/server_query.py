"""Running one HTTP query on the engine: borrow a handle (pooled, session or throwaway), then an
INSERT with inline data streams its body into chdb, a result query streams its blocks out (or is
answered whole when it fits the buffer or its format cannot be cut into blocks), and anything else
runs to completion."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clickhouse.server_borrow import Lender
from clickhouse.server_codec import encoder
from clickhouse.server_engine import Engine, Handle, marker_comment
from clickhouse.server_errors import ClickHouseError, error
from clickhouse.server_http import Body, Watch, exception_block, send_whole, start, stats_of, summary
from clickhouse.server_request import QueryRequest
from clickhouse.server_sessions import Sessions
from clickhouse.server_sql import (
    NEED_MORE,
    READ_KINDS,
    RESULT_KINDS,
    STREAM_KINDS,
    InlineInsert,
    Statement,
    analyze,
    find_inline_insert,
)
from clickhouse.server_stream import Producer, append_all

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ACTIVE_QUERIES = 64
MAX_QUERY_BYTES = 16 << 20  # query text read whole (inline INSERT data streams and has no limit)
HEADER_SCAN_BYTES = 1 << 20  # an INSERT's header must end within this much of the text
STREAM_BUFFER_BYTES = 1 << 20  # results up to this size are answered whole, with a summary
# Formats whose per-block outputs concatenate into one valid stream (no global header or footer).
STREAMABLE = frozenset(
    [
        "Native",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "Raw",
        "CSV",
        "RowBinary",
        "JSONEachRow",
        "JSONLines",
        "NDJSON",
        "JSONCompactEachRow",
        "JSONStringsEachRow",
        "JSONCompactStringsEachRow",
        "LineAsString",
        "RawBLOB",
    ]
)
_READONLY_GET = (
    "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. "
    "You should use method POST for modifying queries"
)


@dataclass
class Exchange:
    """One request in flight: what was asked, how to answer, and the headers every answer carries."""

    req: QueryRequest
    body: Body
    send: Callable[[Any], Any]
    headers: dict[str, str]
    encoding: str | None  # response Content-Encoding, None for identity
    started: list[bool] = field(default_factory=lambda: [False])
    watch: Watch | None = None  # cancels a read query whose client went away

    def query_done(self) -> None:
        if self.watch is not None:
            self.watch.stop()


class Runner:
    def __init__(self, engine: Engine, sessions: Sessions, pool: ThreadPoolExecutor) -> None:
        self.engine = engine
        self.sessions = sessions
        self._pool = pool
        self._slots = asyncio.Semaphore(MAX_ACTIVE_QUERIES)
        self.lender = Lender(engine, sessions, self.thread)

    async def thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def handle(self, ex: Exchange) -> None:
        text = bytearray(ex.req.query)
        inline = await self._read_header(ex, text)
        if inline is not None and ex.req.method in ("GET", "HEAD"):
            raise error("READONLY", _READONLY_GET)
        if inline is not None and not ex.req.params:
            await self._insert(ex, text, inline)
            return
        while not ex.body.done:
            await self._add_piece(ex, text)
            if len(text) > MAX_QUERY_BYTES:
                raise error("QUERY_IS_TOO_LARGE", f"The query is larger than {MAX_QUERY_BYTES} bytes")
        await self._statement(ex, bytes(text))

    async def _add_piece(self, ex: Exchange, text: bytearray) -> None:
        piece = await ex.body.piece()
        if piece and ex.req.query and len(text) == len(ex.req.query):
            text += b"\n"  # ClickHouse joins the `query` parameter and the body with a newline
        text += piece

    async def _read_header(self, ex: Exchange, text: bytearray) -> InlineInsert | None:
        while True:
            found = find_inline_insert(bytes(text), ex.body.done)
            if found != NEED_MORE:
                return found if isinstance(found, InlineInsert) else None
            if ex.body.done or len(text) > HEADER_SCAN_BYTES:
                return None
            await self._add_piece(ex, text)

    async def _statement(self, ex: Exchange, text: bytes) -> None:
        stmt = analyze(text)
        if not stmt.kind:
            raise error("SYNTAX_ERROR", "Empty query")
        if stmt.multiple:
            raise error("SYNTAX_ERROR", "Multi-statements are not allowed")
        if ex.req.method in ("GET", "HEAD") and stmt.kind not in READ_KINDS:
            raise error("READONLY", _READONLY_GET)
        fmt, streamable = self._format(stmt, ex.req) if stmt.kind in RESULT_KINDS else ("", False)
        if (
            fmt
        ):  # a read: cancelled when its client disconnects (cancel_http_readonly_queries_on_client_close)
            marker = uuid.uuid4().hex
            text += b"\n" + marker_comment(marker).encode()
            ex.watch = Watch(ex.body, lambda: self.thread(self.engine.kill, marker))
        try:
            await self._run_statement(ex, stmt, text, fmt, streamable)
        finally:
            ex.query_done()

    async def _run_statement(
        self, ex: Exchange, stmt: Statement, text: bytes, fmt: str, streamable: bool
    ) -> None:
        async with self._slots, self.lender.borrow(ex.req, stmt) as handle:
            # wait_end_of_query=1 (clickhouse-connect's query()) asks for the result buffered whole:
            # chdb's own buffer is sent as is, never copied.
            if streamable and stmt.kind in STREAM_KINDS and not ex.req.wait_end_of_query:
                await self._stream(ex, handle, text, fmt)
            else:
                await self._whole(ex, handle, text, fmt)

    def _format(self, stmt: Statement, req: QueryRequest) -> tuple[str, bool]:
        """The output format and whether its blocks can be streamed one by one."""
        formats = self.engine.formats
        if stmt.output_format:
            exact = formats.get(stmt.output_format)
            if exact is not None and exact.is_output:
                return exact.name, exact.name in STREAMABLE
            folded = {name.lower(): name for name, f in formats.items() if f.is_output}
            if stmt.output_format.lower() in folded:
                return folded[stmt.output_format.lower()], False
        default = formats.get(req.default_format)
        if default is None or not default.is_output:
            raise error("UNKNOWN_FORMAT", f"Unknown output format {req.default_format}")
        return default.name, default.name in STREAMABLE and not stmt.output_format

    def _result_headers(self, ex: Exchange, fmt: str) -> dict[str, str]:
        known = self.engine.formats.get(fmt)
        content_type = known.content_type if known and known.content_type else "text/plain; charset=UTF-8"
        headers = {**ex.headers, "Content-Type": content_type, "X-ClickHouse-Format": fmt}
        if ex.encoding:
            headers["Content-Encoding"] = ex.encoding
        return headers

    async def _whole(self, ex: Exchange, handle: Handle, text: bytes, fmt: str) -> None:
        result = await self.thread(self.engine.run, handle, text, fmt or ex.req.default_format, ex.req.params)
        ex.query_done()
        stats = stats_of(result)
        if not fmt:  # DDL, INSERT ... SELECT, SET...: no result set, no X-ClickHouse-Format
            headers = {**ex.headers, "Content-Type": "text/plain; charset=UTF-8"}
            await send_whole(ex.send, 200, {**headers, "X-ClickHouse-Summary": summary(stats)}, b"")
            return
        body: bytes | memoryview = result.get_memview().view()
        stats["result_bytes"] = len(body)
        if ex.encoding:
            body = await self.thread(_compress_all, ex.encoding, body)
        headers = {**self._result_headers(ex, fmt), "X-ClickHouse-Summary": summary(stats)}
        ex.started[0] = True
        await send_whole(ex.send, 200, headers, body)

    async def _stream(self, ex: Exchange, handle: Handle, text: bytes, fmt: str) -> None:
        producer, pieces, ended = await self.thread(self._begin, handle, text, fmt, ex, STREAM_BUFFER_BYTES)
        if ended or (ex.watch is not None and ex.watch.gone):
            await self.thread(producer.close)
        if ended:  # the whole result fit the buffer: one response with Content-Length and summary
            headers = {**self._result_headers(ex, fmt), "X-ClickHouse-Summary": summary(producer.stats)}
            ex.started[0] = True
            await send_whole(ex.send, 200, headers, b"".join(pieces))
            return
        if ex.watch is not None and ex.watch.gone:
            return
        try:
            tag = secrets.token_hex(8)
            ex.started[0] = True
            await start(ex.send, 200, {**self._result_headers(ex, fmt), "X-ClickHouse-Exception-Tag": tag})
            for piece in pieces:
                await ex.send({"type": "http.response.body", "body": piece, "more_body": True})
            del pieces[:]
            await self._stream_rest(ex, producer, tag)
        finally:
            await self.thread(producer.close)

    def _begin(
        self, handle: Handle, text: bytes, fmt: str, ex: Exchange, threshold: int
    ) -> tuple[Producer, list[bytes], bool]:
        """Start the stream and buffer up to `threshold` bytes of it, in one worker-thread call."""
        stream = self.engine.stream(handle, text, fmt, ex.req.params)
        producer = Producer(stream, encoder(ex.encoding) if ex.encoding else None)
        try:
            pieces, ended = producer.fill(threshold)
        except BaseException:
            producer.close()
            raise
        return producer, pieces, ended

    async def _stream_rest(self, ex: Exchange, producer: Producer, tag: str) -> None:
        while not (ex.watch is not None and ex.watch.gone):
            try:
                piece = await self.thread(producer.next)
            except ClickHouseError as exc:
                piece = await self.thread(producer.wrap, exception_block(exc, self.engine.version, tag))
                await ex.send({"type": "http.response.body", "body": piece, "more_body": True})
                break
            if piece is None:
                break
            await ex.send({"type": "http.response.body", "body": piece, "more_body": True})
        ex.query_done()
        if ex.watch is None or not ex.watch.gone:
            await ex.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _insert(self, ex: Exchange, text: bytearray, inline: InlineInsert) -> None:
        async with self._slots, self.lender.borrow(ex.req, None) as handle:
            inserter = await self.thread(self.engine.insert, handle, inline.header, inline.fmt)
            pending = bytearray(text[inline.data_offset :])
            del text[:]
            result = await append_all(self.thread, inserter, pending, ex.body)
        stats = {"written_rows": result.rows_written, "written_bytes": result.bytes_written}
        headers = {
            **ex.headers,
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Summary": summary(stats),
        }
        await send_whole(ex.send, 200, headers, b"")


def _compress_all(name: str, body: bytes | memoryview) -> bytes:
    """Compress in 1 MiB slices so the uncompressed result is never copied whole."""
    comp, view, step = encoder(name), memoryview(body), 1 << 20
    return b"".join([*(comp.compress(view[i : i + step]) for i in range(0, len(view), step)), comp.flush()])
