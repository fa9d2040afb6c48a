"""Outbound HTTP for destinations: vetted DNS, pinned addresses, manual redirects, sanitised errors.

The connector's resolver checks every address a name resolves to and hands aiohttp only those vetted
addresses, so the check and the connection use the same DNS answer (no rebinding window). IP literals
never reach the resolver, so each hop's URL is checked first. Redirects are followed by hand, at most
`max_redirects` times, each hop checked again; credentials are dropped when the origin changes.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from activation.net.allowlist import AllowList
from activation.net.guard import Resolve, UnsafeDestination, check_url_syntax, system_resolve, vet_addresses

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "developer-token"})


class TransportError(Exception):
    """The request did not complete (timeout, refused connection, reset). Never carries the URL."""

    def __init__(self, kind: str, host: str) -> None:
        super().__init__(f"{kind} contacting host {host!r}")
        self.kind = kind
        self.host = host


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        """The decoded body, or None when the body is empty or not JSON."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None


class HttpClient(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float | None = None,
    ) -> HttpResponse: ...


class VettedResolver(AbstractResolver):
    """Resolves, refuses if any address is unsafe, and returns only the vetted addresses."""

    def __init__(self, allow: AllowList, resolve: Resolve = system_resolve) -> None:
        self._allow = allow
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        vetted = vet_addresses(host, port, await self._resolve(host, port), self._allow)
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=port,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in vetted
        ]

    async def close(self) -> None:
        return None


class SafeSession:
    """An `HttpClient` that only reaches vetted addresses. Use as `async with safe_session(allow) as s`."""

    def __init__(
        self,
        allow: AllowList,
        *,
        resolve: Resolve = system_resolve,
        timeout_s: float = 30.0,
        max_redirects: int = 5,
        max_body_bytes: int = 16 * 1024 * 1024,
        connection_limit: int = 32,
    ) -> None:
        self.allow = allow
        self._resolve = resolve
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self._max_body_bytes = max_body_bytes
        self._limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=VettedResolver(self.allow, self._resolve), use_dns_cache=False, limit=self._limit
            )
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float | None = None,
    ) -> HttpResponse:
        current = _build_url(url, params)
        hop_headers = dict(headers or {})
        for _ in range(self._max_redirects + 1):
            check_url_syntax(current, self.allow)
            response, location = await self._send(method, current, hop_headers, body, timeout_s)
            if location is None:
                return response
            target = current.join(URL(location))
            if target.origin() != current.origin():
                hop_headers = {k: v for k, v in hop_headers.items() if k.lower() not in SENSITIVE_HEADERS}
            if response.status == 303 or (response.status in (301, 302) and method.upper() == "POST"):
                method, body = "GET", None
                hop_headers = {k: v for k, v in hop_headers.items() if k.lower() != "content-type"}
            current = target
        raise UnsafeDestination("too_many_redirects", f"more than {self._max_redirects} redirects")

    async def _send(
        self, method: str, url: URL, headers: dict[str, str], body: bytes | None, timeout_s: float | None
    ) -> tuple[HttpResponse, str | None]:
        timeout = aiohttp.ClientTimeout(total=timeout_s if timeout_s is not None else self._timeout_s)
        host = url.host or ""
        try:
            async with self._client().request(
                method, url, headers=headers, data=body, allow_redirects=False, timeout=timeout
            ) as raw:
                data = await self._read(raw, host)
                response = HttpResponse(raw.status, {k.lower(): v for k, v in raw.headers.items()}, data)
        except TimeoutError:
            raise TransportError("timeout", host) from None
        except aiohttp.ClientError as exc:
            raise TransportError(type(exc).__name__, host) from None
        location = response.headers.get("location") if response.status in REDIRECT_STATUSES else None
        return response, location

    async def _read(self, raw: aiohttp.ClientResponse, host: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in raw.content.iter_chunked(65536):
            size += len(chunk)
            if size > self._max_body_bytes:
                raise TransportError("response_too_large", host)
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SafeSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def safe_session(
    allow: AllowList, *, resolve: Resolve = system_resolve, timeout_s: float = 30.0
) -> SafeSession:
    """The send-time client factory: one per worker (or per destination), closed at shutdown."""
    return SafeSession(allow, resolve=resolve, timeout_s=timeout_s)


def _build_url(url: str, params: Mapping[str, str] | None) -> URL:
    try:
        parsed = URL(url)
    except ValueError:
        raise UnsafeDestination("invalid_url", "URL cannot be parsed") from None
    return parsed.update_query(dict(params)) if params else parsed
