"""Raw ASGI plumbing for `magpie clickhouse`: reading (and decompressing) a request body in pieces,
response headers, and whole or streamed responses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from clickhouse.server_codec import Decoder
from clickhouse.server_errors import ClickHouseError, error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TEXT = "text/plain; charset=UTF-8"
SEND_CHUNK_BYTES = 1 << 20


class ClientGone(Exception):
    """The client closed the connection before the request was handled."""


class Body:
    """The request body as decompressed pieces, read on demand."""

    def __init__(self, receive: Receive, encoding: str) -> None:
        self._receive = receive
        self._decoder = Decoder(encoding) if encoding and encoding.lower() != "identity" else None
        self.done = False

    async def piece(self) -> bytes:
        """The next non-empty piece, or b"" once the body has ended."""
        while not self.done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            data = message.get("body", b"")
            self.done = not message.get("more_body", False)
            if self._decoder is not None:
                data = self._decoder.feed(data)
                if self.done:
                    self._decoder.finish()
            if data:
                return bytes(data)
        return b""

    async def read_into(self, buffer: bytearray, limit_bytes: int) -> None:
        while not self.done:
            buffer += await self.piece()
            if len(buffer) > limit_bytes:
                raise error("QUERY_IS_TOO_LARGE", f"The query is larger than {limit_bytes} bytes")

    async def wait_disconnect(self) -> None:
        """After the body: return when the client goes away."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return


class Watch:
    """Runs `on_gone` if the client disconnects before `stop()` (the request body must be read)."""

    def __init__(self, body: Body, on_gone: Callable[[], Awaitable[None]]) -> None:
        self.gone = False
        self._stopped = False
        self._on_gone = on_gone
        self._task = asyncio.create_task(self._run(body))

    async def _run(self, body: Body) -> None:
        await body.wait_disconnect()
        self.gone = True
        if not self._stopped:
            await self._on_gone()

    def stop(self) -> None:
        """The query is over: a disconnect from now on is no reason to cancel anything."""
        self._stopped = True
        if not self.gone:
            self._task.cancel()


def headers_of(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def summary(stats: Mapping[str, int]) -> str:
    keys = ("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read")
    values = {key: str(stats.get(key, 0)) for key in keys}
    for key in ("result_rows", "result_bytes", "elapsed_ns"):
        if key in stats:
            values[key] = str(stats[key])
    return json.dumps(values, separators=(",", ":"))


def stats_of(result: Any) -> dict[str, int]:
    """The counters of a chdb result (query or insert) under ClickHouse's summary names. chdb's
    `rows_read` counts the result's rows; what was read from storage is `storage_rows_read`."""
    stats: dict[str, int] = {}
    for key, attr in (
        ("read_rows", "storage_rows_read"),  # rows read from tables, as ClickHouse reports them
        ("read_bytes", "storage_bytes_read"),
        ("written_rows", "rows_written"),
    ):
        method = getattr(result, attr, None)
        if callable(method):
            stats[key] = int(method())
    method = getattr(result, "bytes_written", None)
    if callable(method):
        stats["written_bytes"] = int(method())
    elapsed = getattr(result, "elapsed", None)
    if callable(elapsed):
        stats["elapsed_ns"] = int(elapsed() * 1e9)
    return stats


def encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers.items()]


async def start(send: Send, status: int, headers: Mapping[str, str]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": encode_headers(headers)})


async def send_whole(send: Send, status: int, headers: Mapping[str, str], body: bytes | memoryview) -> None:
    """A complete response with Content-Length, sent in 1 MiB slices (a memoryview is not copied whole)."""
    await start(send, status, {**headers, "Content-Length": str(len(body))})
    view = memoryview(body)
    for offset in range(0, len(view), SEND_CHUNK_BYTES):
        more = offset + SEND_CHUNK_BYTES < len(view)
        await send(
            {
                "type": "http.response.body",
                "body": bytes(view[offset : offset + SEND_CHUNK_BYTES]),
                "more_body": more,
            }
        )
    if not view:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def send_text(send: Send, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
    await send_whole(send, status, {"Content-Type": TEXT, **(headers or {})}, text.encode())


async def send_error(send: Send, exc: ClickHouseError, version: str, headers: Mapping[str, str]) -> None:
    extra = {"Content-Type": TEXT, "X-ClickHouse-Exception-Code": str(exc.code)}
    await send_whole(send, exc.status, {**headers, **extra}, exc.body(version))


def exception_block(exc: ClickHouseError, version: str, tag: str) -> bytes:
    """An error after the 200 went out, framed the way ClickHouse 25.11+ frames it for clients."""
    message = exc.body(version)
    return b"__exception__\r\n%s\r\n%s%d %s\r\n__exception__\r\n" % (
        tag.encode(),
        message,
        len(message),
        tag.encode(),
    )
