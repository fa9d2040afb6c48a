"""HTTP compression the way ClickHouse speaks it: request bodies in any `Content-Encoding` it
accepts (clickhouse-connect sends one lz4/zstd frame per block, so bodies are concatenated frames),
and responses compressed with the method ClickHouse would pick from `Accept-Encoding` when
`enable_http_compression` is on."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Protocol

import lz4.frame
from backports import zstd

from clickhouse.server_errors import error

ZLIB_LEVEL = 3  # ClickHouse's http_zlib_compression_level default

_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "x-gzip": lambda: zlib.decompressobj(wbits=31),
    "deflate": lambda: zlib.decompressobj(wbits=15),
    "zstd": zstd.ZstdDecompressor,
    "lz4": lz4.frame.LZ4FrameDecompressor,
}
# ClickHouse's order of preference (chooseHTTPCompressionMethod); brotli is not installed here.
_PREFERENCE = ("zstd", "lz4", "gzip", "deflate")


class Decoder:
    """Streaming decompression of a request body made of one or more frames (members)."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding not in _DECOMPRESSORS:
            raise error("UNKNOWN_COMPRESSION_METHOD", f"Unknown compression method '{encoding}'")
        self._new = _DECOMPRESSORS[encoding]
        self._current = self._new()
        self._started = False

    def feed(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                self._started = True
                out.append(self._current.decompress(data))
                if not self._current.eof:
                    break
                data, self._current, self._started = self._current.unused_data, self._new(), False
        except (zlib.error, zstd.ZstdError, RuntimeError) as exc:
            raise error("CANNOT_DECOMPRESS", f"Cannot decompress the request body: {exc}") from None
        return b"".join(out)

    def finish(self) -> None:
        if self._started and not self._current.eof:
            raise error("CANNOT_DECOMPRESS", "The compressed request body is truncated")


class Encoder(Protocol):
    def compress(self, data: bytes | memoryview, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _Lz4:
    def __init__(self) -> None:
        self._comp = lz4.frame.LZ4FrameCompressor()
        self._header: bytes = self._comp.begin()

    def compress(self, data: bytes | memoryview, /) -> bytes:
        header, self._header = self._header, b""
        return header + bytes(self._comp.compress(data))

    def flush(self) -> bytes:
        header, self._header = self._header, b""
        return header + bytes(self._comp.flush())


def choose(accept_encoding: str) -> str | None:
    """The response encoding for an Accept-Encoding header, or None for identity."""
    offered = set()
    for item in accept_encoding.lower().split(","):
        name, _, quality = item.strip().partition(";")
        if quality.strip().replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            offered.add(name.strip())
    return next((name for name in _PREFERENCE if name in offered), None)


def encoder(name: str) -> Encoder:
    if name == "gzip":
        return zlib.compressobj(ZLIB_LEVEL, wbits=31)
    if name == "deflate":
        return zlib.compressobj(ZLIB_LEVEL)
    if name == "zstd":
        return zstd.ZstdCompressor()
    return _Lz4()
