"""The operator allow-list for private destinations (`MAGPIE_ALLOW_PRIVATE_DESTINATIONS`).

Entries are comma-separated: a host name, an IP literal or a CIDR. A name or an address may name a
port (`crm.internal:8443`, `10.0.0.5:9000`, IPv6 in brackets: `[::1]:8080`) and is then permitted on
that port only; without one, on every port. A CIDR takes no port and opens every port of its range.
Example: `127.0.0.1,crm.internal:8443,10.20.0.0/16`. An IPv6 address that embeds an IPv4 address
(`[::ffff:10.0.0.5]`, NAT64, 6to4, Teredo) is permitted when what it embeds is. Cloud metadata
addresses are never permitted, whatever the list says.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from activation.net.addresses import (
    METADATA_ADDRESSES,
    IPAddress,
    embedded_ipv4,
    is_metadata_hostname,
    parse_ip,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HostEntry:
    host: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and (self.port is None or self.port == port)


@dataclass(frozen=True)
class AllowList:
    names: tuple[HostEntry, ...] = ()
    addresses: tuple[tuple[IPAddress, int | None], ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    source: str = field(default="", compare=False)

    def permits_name(self, host: str, port: int) -> bool:
        """True when the host *name* is listed: every address it resolves to is then permitted."""
        name = _canonical_name(host)
        return not is_metadata_hostname(name) and any(e.matches(name, port) for e in self.names)

    def permits_address(self, ip: IPAddress, port: int) -> bool:
        """Listed itself, or (IPv6 embedding IPv4) every IPv4 address it embeds is listed."""
        if self._lists(ip, port):
            return True
        inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        return bool(inner) and all(self._lists(v4, port) for v4 in inner or ())

    def _lists(self, ip: IPAddress, port: int) -> bool:
        if ip in METADATA_ADDRESSES:
            return False
        if any(ip == addr and (p is None or p == port) for addr, p in self.addresses):
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)


EMPTY = AllowList()


class AllowListError(ValueError):
    """An allow-list entry that cannot be parsed; the message names the entry."""


def parse_allow_list(text: str) -> AllowList:
    """Parse the comma-separated environment value; raises AllowListError on a bad entry."""
    names: list[HostEntry] = []
    addresses: list[tuple[IPAddress, int | None]] = []
    networks: list[IPNetwork] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        if "/" in entry:
            networks.append(_parse_network(entry))
            continue
        host, port = _split_port(entry)
        ip = parse_ip(host)
        if ip is not None:
            addresses.append((ip, port))
        else:
            names.append(HostEntry(_canonical_name(host), port))
    return AllowList(tuple(names), tuple(addresses), tuple(networks), source=text)


def _parse_network(entry: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        ported = ":" in entry.rsplit("/", 1)[-1]
        hint = " (a CIDR takes no port: it opens every port)" if ported else ""
        raise AllowListError(f"invalid CIDR in allow-list: {entry!r}{hint}") from None


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, closed, rest = entry[1:].partition("]")
        if not closed or parse_ip(host) is None or (rest and not rest.startswith(":")):
            raise AllowListError(f"invalid bracketed IPv6 entry in allow-list: {entry!r}")
        return host, _parse_port(entry, rest[1:]) if rest else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, _parse_port(entry, port)
    return entry, None


def _parse_port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise AllowListError(f"invalid port in allow-list entry: {entry!r}")
    return int(text)


def _canonical_name(host: str) -> str:
    return host.strip().rstrip(".").lower()
