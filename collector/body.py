"""Turning a request body into JSON: gzip with a cap, size limits, tolerant decoding.

Parsing is JSON whatever the Content-Type (analytics.js sends text/plain). Nothing here recurses
in Python: orjson parses (it refuses nesting beyond 1024 levels with a 400) and serialises (it
refuses beyond 255 levels, which `dump` turns into None for the caller to reject that one item).

Tolerance: invalid UTF-8 and lone UTF-16 surrogates become U+FFFD rather than costing the whole
batch, and NaN / ±Infinity become null. Numbers follow one rule on every path: integers in the
64-bit range (−2^63 … 2^64−1) are kept exactly; larger integers become the nearest double (as
orjson and JavaScript read them), and numbers beyond the double range become null. A single
event's raw copy keeps the digits as sent.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Any

import orjson

MAX_REQUEST_BYTES = 500 * 1024
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_EVENTS = 2500
MAX_DEPTH = 24
MAX_KEYS = 2000

# One pass over the text: a string literal (an unterminated one runs to the end, keeping the scan
# linear), a non-finite literal, or a number. Matching strings first keeps "NaN" inside them intact.
_TOKEN = re.compile(
    rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|-?Infinity|NaN|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?', re.DOTALL
)
_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\."
)
_LONGEST_FINITE_DIGITS = 309


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
    # Slow path: repair the text (UTF-8, surrogates, non-finite numbers), then parse it the same way.
    try:
        return orjson.loads(sanitise(body))
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc).lower():
            raise BodyError(400, "too_deep", "request body nests deeper than 1024 levels") from None
        raise BodyError(400, "invalid_json", "request body is not valid JSON") from None


def sanitise(body: bytes) -> bytes:
    """JSON text orjson accepts, with the tolerance rules of this module applied (a linear scan)."""
    text = body.decode("utf-8", errors="replace").encode("utf-8")
    return _TOKEN.sub(_repair_token, text)


def _repair_token(match: re.Match[bytes]) -> bytes:
    token = match.group()
    first = token[:1]
    if first == b'"':
        return _ESCAPE.sub(_repair_escape, token) if b"\\u" in token else token
    if first in b"NI" or token[1:2] == b"I":
        return b"null"
    if (len(token) >= _LONGEST_FINITE_DIGITS or b"e" in token or b"E" in token) and not math.isfinite(
        float(token)
    ):
        return b"null"
    return token


def _repair_escape(match: re.Match[bytes]) -> bytes:
    escape = match.group()
    if len(escape) == 6 and escape[1:2] == b"u":  # a surrogate without its partner
        return b"\\ufffd"
    return escape


def dump(value: Any) -> bytes | None:
    """orjson's serialisation, or None when orjson refuses the value (nesting beyond 255 levels)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return None


def pruned(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """A copy of `value` with containers nested deeper than `max_depth` replaced by "…" (iterative),
    so that a refused item can still be shown in rejected_events."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        node, parent, key, depth = stack.pop()
        if isinstance(node, dict | list) and depth >= max_depth:
            parent[key] = "…"
        elif isinstance(node, dict):
            parent[key] = mapping = dict.fromkeys(node)
            stack.extend((v, mapping, k, depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            parent[key] = items = [None] * len(node)
            stack.extend((v, items, i, depth + 1) for i, v in enumerate(node))
        else:
            parent[key] = node
    return root[0]
