"""What the collector needs to know, handed down by the composition root (never read from env here)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CollectorSettings:
    spool_dir: Path
    public_url: str
    spool_max_bytes: int = 1 << 30
    flush_interval_ms: int = 200
    trusted_proxies: tuple[IPNetwork, ...] = ()
    geoip_city_db: str = ""
    geoip_asn_db: str = ""
    fault_file: str = ""
    # HMAC key of suppression hashes, derived from MAGPIE_SECRET_KEY by the composition root
    suppression_key: bytes = field(default=b"", repr=False)
