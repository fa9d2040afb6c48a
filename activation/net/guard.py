"""Decide whether an outbound URL may be contacted: syntax first, then every resolved address.

`check_url` is what create / update / test call. At send time the same rules run inside the session's
resolver (see `session.py`), so the addresses that were checked are the ones connected to.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from yarl import URL

from activation.net.addresses import (
    IPAddress,
    forbidden_reason,
    is_localhost_name,
    is_metadata_hostname,
    is_numeric_encoded,
    parse_ip,
)
from activation.net.allowlist import AllowList

Resolve = Callable[[str, int], Awaitable[list[str]]]
ALLOWED_SCHEMES = frozenset({"http", "https"})


class UnsafeDestination(Exception):
    """A URL or address that outbound requests refuse. Messages name the host, never the full URL."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"unsafe destination ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    ip: IPAddress | None


async def system_resolve(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for `host` (A and AAAA)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeDestination("unresolvable", f"cannot resolve host {host!r}") from None
    return [str(info[4][0]) for info in infos]


def check_url_syntax(url: str | URL, allow: AllowList) -> Target:
    """Checks that need no DNS: scheme, credentials in the URL, encoded hosts, literal addresses."""
    parsed = _parse(url)
    scheme = (parsed.scheme or "").lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeDestination("scheme", f"scheme {scheme!r} is not http or https")
    if parsed.user is not None or parsed.password is not None:
        raise UnsafeDestination("userinfo", "credentials inside the URL are not allowed")
    host = (parsed.host or "").lower()
    port = parsed.port or (443 if scheme == "https" else 80)
    if not host:
        raise UnsafeDestination("no_host", "URL has no host")
    return Target(scheme, host, port, check_host(host, port, allow))


def check_host(host: str, port: int, allow: AllowList) -> IPAddress | None:
    """Refuse a host string on its own; returns the address when the host is an IP literal."""
    if is_metadata_hostname(host):
        raise UnsafeDestination("cloud_metadata", f"host {host!r} is a cloud metadata service")
    ip = parse_ip(host)
    if ip is not None:
        vet_addresses(host, port, [str(ip)], allow)
        return ip
    if is_numeric_encoded(host) or "%" in host:
        raise UnsafeDestination("numeric_encoded_host", f"host {host!r} is an encoded IP address")
    if is_localhost_name(host) and not allow.permits_name(host, port):
        raise UnsafeDestination("loopback", f"host {host!r} is loopback")
    return None


def vet_addresses(host: str, port: int, addresses: Sequence[str], allow: AllowList) -> list[IPAddress]:
    """Every address must be public or allow-listed; one bad address refuses the host."""
    if not addresses:
        raise UnsafeDestination("unresolvable", f"host {host!r} has no addresses")
    named = parse_ip(host) is None and allow.permits_name(host, port)
    vetted: list[IPAddress] = []
    for text in addresses:
        ip = parse_ip(text)
        if ip is None:
            raise UnsafeDestination("bad_address", f"host {host!r} resolved to a non-address")
        reason = forbidden_reason(ip)
        permitted = reason != "cloud_metadata" and (named or allow.permits_address(ip, port))
        if reason is not None and not permitted:
            raise UnsafeDestination(reason, f"host {host!r} resolves to {ip} ({reason})")
        vetted.append(ip)
    return vetted


async def check_url(url: str | URL, allow: AllowList, *, resolve: Resolve = system_resolve) -> None:
    """Refuse unsafe URLs (raises UnsafeDestination). Resolves names and checks every address."""
    target = check_url_syntax(url, allow)
    if target.ip is None:
        vet_addresses(target.host, target.port, await resolve(target.host, target.port), allow)


def _parse(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    try:
        return URL(url)
    except ValueError:
        raise UnsafeDestination("invalid_url", "URL cannot be parsed") from None
