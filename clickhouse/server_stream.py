"""Moving data through a borrowed handle in pieces: result blocks out of a chdb stream (compressed
on the way when asked), request data into a chdb streaming INSERT. Both run in worker threads;
neither holds more than a block or a megabyte of the data at once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from clickhouse.server_codec import Encoder
from clickhouse.server_errors import from_engine
from clickhouse.server_http import Body

log = logging.getLogger(__name__)

APPEND_BYTES = 1 << 20
Thread = Callable[..., Awaitable[Any]]


class Producer:
    """The pieces of a streaming result, each a block in the output format (maybe compressed)."""

    def __init__(self, stream: Any, compressor: Encoder | None) -> None:
        self._stream = stream
        self._compressor = compressor
        self._ended = False
        self.stats = {"read_rows": 0, "read_bytes": 0}

    def next(self) -> bytes | None:
        """The next non-empty piece, or None at the end; raises ClickHouseError on a failed block."""
        while not self._ended:
            try:
                chunk = self._stream.fetch()
            except Exception as exc:  # chdb's error for a block, with ClickHouse's text
                self._ended = True
                raise from_engine(exc) from None
            if chunk is None:
                self._ended = True
                tail = self._compressor.flush() if self._compressor else b""
                return tail or None
            self.stats["read_rows"] += int(chunk.storage_rows_read())  # from tables, not the result's
            self.stats["read_bytes"] += int(chunk.storage_bytes_read())
            data = chunk.bytes()
            if self._compressor is not None:
                data = self._compressor.compress(data)
            if data:
                return bytes(data)
        return None

    def fill(self, limit_bytes: int) -> tuple[list[bytes], bool]:
        """Pieces up to `limit_bytes` (or the end); True when the stream has ended."""
        pieces: list[bytes] = []
        size = 0
        while size < limit_bytes:
            piece = self.next()
            if piece is None:
                return pieces, True
            pieces.append(piece)
            size += len(piece)
        return pieces, False

    def wrap(self, block: bytes) -> bytes:
        """A final block (an exception) inside the same compressed stream."""
        if self._compressor is None:
            return block
        return self._compressor.compress(block) + self._compressor.flush()

    def cancel(self) -> None:
        try:
            self._stream.cancel()
        except Exception:
            log.exception("cancelling a chdb stream failed")

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:
            log.exception("closing a chdb stream failed")


def _append(inserter: Any, data: bytes) -> None:
    try:
        inserter.append(data)
    except Exception as exc:
        raise from_engine(exc) from None


def _finish(inserter: Any) -> Any:
    try:
        return inserter.finish()
    except Exception as exc:
        raise from_engine(exc) from None


def _cancel(inserter: Any) -> None:
    try:
        inserter.cancel()
    except Exception:
        log.exception("cancelling a chdb insert failed")


async def append_all(thread: Thread, inserter: Any, pending: bytearray, body: Body) -> Any:
    """Feed the rest of the request body into a streaming INSERT and commit it; cancel on failure."""
    try:
        while True:
            if pending and (len(pending) >= APPEND_BYTES or body.done):
                await thread(_append, inserter, bytes(pending))
                pending.clear()
            if body.done:
                break
            pending += await body.piece()
        return await thread(_finish, inserter)
    except BaseException:
        await thread(_cancel, inserter)
        raise
