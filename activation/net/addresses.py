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

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"^{_OCTET}(\.{_OCTET}){{3}}$")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 transition address (6to4, Teredo, NAT64), if any."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` must not be contacted, or None when it is a public unicast address."""
    if ip in METADATA_ADDRESSES:
        return "cloud_metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "ipv6_mapped_ipv4"
        if ip.scope_id:
            return "ipv6_scoped"
        inner = embedded_ipv4(ip)
        if inner is not None and forbidden_reason(inner) is not None:
            return "ipv6_embedded_private_ipv4"
    return _class_reason(ip)


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
