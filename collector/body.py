"""Turning a request body into JSON: gzip with a cap, size limits, tolerant decoding.

Parsing is JSON whatever the Content-Type (analytics.js sends text/plain). Invalid UTF-8 and
lone UTF-16 surrogates are replaced rather than refused, so one odd character in a property
does not cost the whole batch.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson

MAX_REQUEST_BYTES = 500 * 1024
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_EVENTS = 2500
MAX_DEPTH = 24
MAX_KEYS = 2000


class BodyError(Exception):
    """The whole request is unusable: `status` is 400 or 413, `code` names the reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def decompress(body: bytes, encoding: str, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """Inflate gzip/deflate bodies, refusing more than `limit` bytes of output (gzip bombs)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise BodyError(413, "request_too_large", f"request body exceeds {limit} bytes")
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(400, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError(400, "bad_encoding", f"body is not valid {encoding}: {exc}") from None
    if len(out) > limit:
        raise BodyError(413, "request_too_large", f"decompressed body exceeds {limit} bytes")
    return out


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # Slow path for invalid UTF-8, lone surrogates or NaN: decode leniently, then scrub.
    try:
        value = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        raise BodyError(400, "invalid_json", "request body is not valid JSON") from None
    return _scrub(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def shape_problem(value: Any, raw: bytes = b"") -> str | None:
    """Return a reason code if `value` nests deeper than MAX_DEPTH or holds more than MAX_KEYS keys.

    Counting brackets and colons in the raw JSON bounds depth and key count from above, so the
    walk is skipped for ordinary events (the common case costs two C-speed byte counts).
    """
    if raw and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH and raw.count(b":") <= MAX_KEYS:
        return None
    stack: list[tuple[Any, int]] = [(value, 0)]
    keys = 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return "too_deep"
        if isinstance(node, dict):
            keys += len(node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        if keys > MAX_KEYS:
            return "too_many_keys"
    return None
