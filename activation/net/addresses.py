"""Classify IP addresses and host strings for outbound-request safety.

Pure functions: no DNS, no sockets. A *reason* is a short snake_case string naming why an address is
refused; `None` means the address is publicly routable and may be contacted.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)

METADATA_HOSTNAMES: frozenset[str] = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)

# IPv6 forms that stand for an IPv4 address, with where the IPv4 bits sit (low 32 bits unless noted).
_IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # RFC 4291
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291, deprecated; :: and ::1 are not IPv4
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: operator-chosen prefix inside it
_NAT64_LOCAL_MIDDLE = ((1 << 48) - 1) << 32  # bits between the /48 and the /96 layout's IPv4
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"^{_OCTET}(\.{_OCTET}){{3}}$")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...] | None:
    """The IPv4 addresses an IPv6 address stands for, or None when it embeds none.

    Mapped, translated and IPv4-compatible addresses, NAT64 (well-known and local-use), 6to4 and Teredo
    (server and client). A local-use NAT64 address is decoded in the /96 layout; in any other layout
    the position of the IPv4 bits is unknown and the result is `()`, which callers must refuse.
    """
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_MAPPED or ip in _IPV4_TRANSLATED or ip in _NAT64_WELL_KNOWN:
        return (low,)
    if ip in _IPV4_COMPATIBLE:
        return (low,) if int(ip) > 1 else None
    if ip in _NAT64_LOCAL:
        return (low,) if not int(ip) & _NAT64_LOCAL_MIDDLE else ()
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` must not be contacted, or None when it is a public unicast address.

    An IPv6 address that embeds IPv4 addresses is judged by what it embeds: `[::ffff:127.0.0.1]` is
    loopback, `[64:ff9b:1::a9fe:a9fe]` is cloud metadata, `[::ffff:8.8.8.8]` is public.
    """
    if ip in METADATA_ADDRESSES:
        return "cloud_metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "ipv6_scoped"
        inner = embedded_ipv4(ip)
        if inner is not None:
            return _embedded_reason(inner)
    return _class_reason(ip)


def _embedded_reason(inner: tuple[ipaddress.IPv4Address, ...]) -> str | None:
    if not inner:
        return "nat64_undecodable"
    reasons = [reason for reason in map(forbidden_reason, inner) if reason is not None]
    return "cloud_metadata" if "cloud_metadata" in reasons else next(iter(reasons), None)


def _class_reason(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "unique_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def parse_ip(host: str) -> IPAddress | None:
    """The address if `host` is a canonical IP literal (brackets allowed for IPv6), else None."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_numeric_encoded(host: str) -> bool:
    """True for hosts that URL parsers or inet_aton read as IPv4 but are not canonical dotted quads.

    Examples: `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`. The WHATWG URL standard treats a host whose
    last label is numeric as IPv4, so we apply the same test and demand the canonical form.
    """
    name = host.rstrip(".")
    if not name or _CANONICAL_IPV4.match(name):
        return False
    last = name.rsplit(".", 1)[-1]
    return bool(_NUMERIC_LABEL.match(last))


def is_metadata_hostname(host: str) -> bool:
    return host.rstrip(".").lower() in METADATA_HOSTNAMES


def is_localhost_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")
