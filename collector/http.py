"""The tracking endpoints as a raw ASGI app (the hot path skips Starlette's request objects).

POST /v1/{identify,track,page,screen,group,alias,batch}, the short forms /v1/{i,t,p,s,g,a,b},
/v1/import and /beacon/v1/batch. Auth by Basic write key, body `writeKey` or `?writeKey=`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import Message, Receive, Scope, Send

from collector.body import MAX_REQUEST_BYTES, BodyError, decompress, parse_json
from collector.enrich.ip import client_ip
from collector.ingest import Ingestor, Intake
from collector.metrics import Metrics
from collector.normalize import SHORT_TYPES, TYPES
from collector.pipeline import RequestFacts
from collector.ratelimit import RateLimiter
from collector.settings import CollectorSettings
from collector.sources import Source, SourceCache
from collector.spool import SpoolBroken, SpoolFull
from collector.store import StoreUnavailable

log = logging.getLogger("magpie.collector")
BATCH_KINDS = {"batch", "b", "import"}
CORS_ALLOW_HEADERS = b"authorization, content-type, content-encoding, x-retry-count, anonymousid"
RETRY_AFTER_UNAVAILABLE_S = 5


_TRACKING_KINDS = frozenset({*TYPES, *SHORT_TYPES, *BATCH_KINDS})


def tracking_kind(path: str) -> str | None:
    """The endpoint kind if `path` is a tracking endpoint (`/v1/t`, `/v1/batch`, `/beacon/v1/batch`…)."""
    if path == "/beacon/v1/batch":
        return "batch"
    if path.startswith("/v1/"):
        kind = path[4:]
        return kind if kind in _TRACKING_KINDS else None
    return None


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


# The only request headers the tracking endpoints read (names as ASGI servers give them: lower case).
_HEADERS = {
    name.encode(): name
    for name in ("authorization", "origin", "content-encoding", "user-agent", "x-forwarded-for")
}


def request_headers(scope: Scope) -> dict[str, str]:
    """The headers the tracking endpoints read (the last one wins when repeated), decoded."""
    headers = {}
    for name, value in scope["headers"]:
        wanted = _HEADERS.get(name)
        if wanted is not None:
            headers[wanted] = value.decode("latin-1")
    return headers


def basic_write_key(authorization: str) -> str:
    if not authorization.lower().startswith("basic "):
        return ""
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
    return decoded.split(":", 1)[0]


def cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    if not origin:
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1", "replace")),
        (b"access-control-expose-headers", b"Retry-After"),  # the tag must see it on 429/503
        (b"vary", b"Origin"),
    ]


async def send_json(
    send: Send, status: int, body: Any, origin: str = "", extra: dict[str, str] | None = None
) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += cors_headers(origin)
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "client_disconnected", "the client went away mid-request")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "request_too_large", f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class TrackingApp:
    """ASGI app for every JSON tracking endpoint. `kind` comes from the route's path."""

    def __init__(
        self,
        settings: CollectorSettings,
        sources: SourceCache,
        ingestor: Ingestor,
        limiter: RateLimiter,
        metrics: Metrics,
    ) -> None:
        self.settings, self.sources, self.ingestor = settings, sources, ingestor
        self.limiter, self.metrics = limiter, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = request_headers(scope)
        origin = headers.get("origin", "")
        if scope["method"] == "OPTIONS":
            await self._preflight(send, origin)
            return
        if scope["method"] != "POST":
            await send_json(
                send, 405, _error("method_not_allowed", "use POST"), origin, {"Allow": "POST, OPTIONS"}
            )
            return
        try:
            status, body, extra = await self._handle(scope, receive, headers)
        except HttpError as exc:
            status, body, extra = exc.status, _error(exc.code, exc.message), exc.headers
        except BodyError as exc:
            status, body, extra = exc.status, _error(exc.code, exc.message), {}
        self.metrics.inc("magpie_requests_total", status=str(status))
        await send_json(send, status, body, origin, extra)

    async def _preflight(self, send: Send, origin: str) -> None:
        headers = [
            *cors_headers(origin),
            (b"access-control-allow-methods", b"POST, OPTIONS"),
            (b"access-control-allow-headers", CORS_ALLOW_HEADERS),
            (b"access-control-max-age", b"86400"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _handle(
        self, scope: Scope, receive: Receive, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        kind = scope.get("path_params", {}).get("kind") or tracking_kind(scope["path"]) or "batch"
        path_type = None if kind in BATCH_KINDS else SHORT_TYPES.get(kind, kind)
        if path_type is not None and path_type not in TYPES:
            raise HttpError(404, "not_found", f"unknown endpoint /v1/{kind}")
        raw = await read_body(receive, MAX_REQUEST_BYTES)
        decompressed = _decompress(raw, headers.get("content-encoding", ""))
        body = parse_json(decompressed)
        key = basic_write_key(headers.get("authorization", "")) or _body_key(body) or _query_key(scope)
        source = await self.authorize(key, headers.get("origin", ""))
        browser = bool(headers.get("origin")) or scope["path"].startswith("/beacon/")
        facts = self.facts(scope, headers, source, browser)
        intake = Intake(body, facts, path_type, decompressed, historical=kind == "import")
        verdict = await self.durable(self.ingestor.intake(intake))
        if path_type is not None and verdict.rejected:
            reason = verdict.rejected[0]["reason"]
            return 400, _error(reason, f"event rejected: {reason}"), {}
        return 200, verdict.body(), {}

    async def authorize(self, write_key: str, origin: str) -> Source:
        try:
            source = await self.sources.lookup(write_key) if write_key else None
        except StoreUnavailable:
            raise HttpError(
                503,
                "sources_unavailable",
                "cannot check the write key right now; retry later",
                {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
            ) from None
        if source is None:
            raise HttpError(401, "invalid_write_key", "unknown or disabled write key")
        if origin and not source.allows_origin(origin):
            raise HttpError(403, "origin_not_allowed", "this source does not accept events from this origin")
        wait_s = self.limiter.allow(source.id, source.rate_limit_per_s)
        if wait_s:
            raise HttpError(
                429, "rate_limited", "source rate limit exceeded", {"Retry-After": f"{wait_s:.0f}"}
            )
        return source

    def facts(self, scope: Scope, headers: dict[str, str], source: Source, browser: bool) -> RequestFacts:
        """Request facts; `browser` says the User-Agent header is the end user's (see RequestFacts)."""
        peer = (scope.get("client") or ("", 0))[0] or ""
        ip = client_ip(peer, headers.get("x-forwarded-for", ""), self.settings.trusted_proxies)
        return RequestFacts(ip, headers.get("user-agent", ""), source, browser)

    async def durable(self, pending: Any) -> Any:
        """Await the spool write; durability problems become 503 with Retry-After."""
        try:
            return await pending
        except SpoolFull:
            raise HttpError(
                503,
                "spool_full",
                "events cannot be made durable right now; retry later",
                {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
            ) from None
        except SpoolBroken as exc:
            log.error("spool write failed: %s", exc)
            raise HttpError(
                503,
                "spool_unavailable",
                "events cannot be made durable right now; retry later",
                {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
            ) from None


def _decompress(raw: bytes, encoding: str) -> bytes:
    try:
        return decompress(raw, encoding)
    except BodyError as exc:
        raise HttpError(exc.status, exc.code, exc.message) from None


def _body_key(body: Any) -> str:
    key = body.get("writeKey") if isinstance(body, dict) else None
    return key if isinstance(key, str) else ""


def _query_key(scope: Scope) -> str:
    raw = scope.get("query_string", b"")
    values = parse_qs(raw.decode("latin-1")).get("writeKey") if raw else None
    return values[0] if values else ""


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
