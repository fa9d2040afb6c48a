"""Settings, read once from the environment into a frozen object (units in the field names)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from activation.net import AllowListError, parse_allow_list

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """Invalid configuration: the message names the variable and the reason, on one line."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    clickhouse_url: str = ""
    clickhouse_cluster: str = ""
    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 8123
    clickhouse_password: str = ""
    redis_url: str = ""
    admin_token: str = ""
    secret_key: str = ""
    geoip_city_db: str = ""
    geoip_asn_db: str = ""
    trusted_proxies: tuple[IPNetwork, ...] = ()
    public_url: str = ""
    spool_max_bytes: int = 1 << 30
    flush_interval_ms: int = 200
    allow_private_destinations: str = ""
    fault_file: str = ""
    log_level: str = "info"
    web_processes: int = 1
    spool_dir: Path | None = None  # set by the supervisor per web process; default <data dir>/spool
    supervised: bool = False  # a child of `magpie serve`: the supervisor bootstraps and migrates
    process_name: str = ""  # this process in the deployment's /metrics (web-0, worker); default host:pid
    header_timeout_s: int = 10
    body_timeout_s: int = 30
    send_timeout_s: int = 30
    keepalive_timeout_s: int = 5
    max_header_bytes: int = 16384
    rejected_retention_days: int = 30  # MAGPIE_REJECTED_RETENTION_DAYS
    # Profile API misses (activation.profiles_api.fills.FillLimits), per web process
    profile_fill_concurrency: int = 4
    profile_fill_max_pending: int = 16
    profile_fill_wait_ms: int = 2000
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return not self.clickhouse_url

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low} and {high}, got {value}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[IPNetwork, ...]:
    nets = []
    for item in filter(None, (s.strip() for s in env.get(name, "").split(","))):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or CIDR") from None
    return tuple(nets)


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip()
    if raw and not raw.startswith(tuple(f"{s}://" for s in schemes)):
        raise ConfigError(f"{name}: must start with {' or '.join(s + '://' for s in schemes)}")
    return raw.rstrip("/") if name == "MAGPIE_PUBLIC_URL" else raw


def _file(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if raw and not Path(raw).is_file():
        raise ConfigError(f"{name}: no such file {raw!r}")
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read MAGPIE_* variables; raise ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    settings = Settings(
        host=env.get("MAGPIE_HOST", "127.0.0.1") or "127.0.0.1",
        port=_int(env, "MAGPIE_PORT", 8080, 0, 65535),
        data_dir=Path(env.get("MAGPIE_DATA_DIR", "./data") or "./data").resolve(),
        clickhouse_url=_url(env, "MAGPIE_CLICKHOUSE_URL", ("http", "https")),
        clickhouse_cluster=env.get("MAGPIE_CLICKHOUSE_CLUSTER", ""),
        clickhouse_host=env.get("MAGPIE_CLICKHOUSE_HOST", "") or "127.0.0.1",
        clickhouse_port=_int(env, "MAGPIE_CLICKHOUSE_PORT", 8123, 1, 65535),
        clickhouse_password=env.get("MAGPIE_CLICKHOUSE_PASSWORD", ""),
        redis_url=_url(env, "MAGPIE_REDIS_URL", ("redis", "rediss", "unix")),
        admin_token=env.get("MAGPIE_ADMIN_TOKEN", ""),
        secret_key=env.get("MAGPIE_SECRET_KEY", ""),
        rejected_retention_days=_int(env, "MAGPIE_REJECTED_RETENTION_DAYS", 30, 1, 3650),
        profile_fill_concurrency=_int(env, "MAGPIE_PROFILE_FILL_CONCURRENCY", 4, 1, 64),
        profile_fill_max_pending=_int(env, "MAGPIE_PROFILE_FILL_MAX_PENDING", 16, 1, 10_000),
        profile_fill_wait_ms=_int(env, "MAGPIE_PROFILE_FILL_WAIT_MS", 2000, 10, 60_000),
        geoip_city_db=_file(env, "MAGPIE_GEOIP_CITY_DB"),
        geoip_asn_db=_file(env, "MAGPIE_GEOIP_ASN_DB"),
        trusted_proxies=_networks(env, "MAGPIE_TRUSTED_PROXIES"),
        public_url=_url(env, "MAGPIE_PUBLIC_URL", ("http", "https")),
        spool_max_bytes=_int(env, "MAGPIE_SPOOL_MAX_BYTES", 1 << 30, 1 << 16, 1 << 50),
        flush_interval_ms=_int(env, "MAGPIE_FLUSH_INTERVAL_MS", 200, 10, 10_000),
        allow_private_destinations=env.get("MAGPIE_ALLOW_PRIVATE_DESTINATIONS", ""),
        fault_file=env.get("MAGPIE_FAULT_FILE", ""),
        log_level=env.get("MAGPIE_LOG_LEVEL", "info"),
        header_timeout_s=_int(env, "MAGPIE_HEADER_TIMEOUT_S", 10, 1, 3600),
        body_timeout_s=_int(env, "MAGPIE_BODY_TIMEOUT_S", 30, 1, 3600),
        send_timeout_s=_int(env, "MAGPIE_SEND_TIMEOUT_S", 30, 1, 3600),
        keepalive_timeout_s=_int(env, "MAGPIE_KEEPALIVE_TIMEOUT_S", 5, 1, 3600),
        max_header_bytes=_int(env, "MAGPIE_MAX_HEADER_BYTES", 16384, 1024, 1 << 20),
        web_processes=_int(env, "MAGPIE_WEB_PROCESSES", os.cpu_count() or 1, 1, 64),
        spool_dir=Path(env["MAGPIE_SPOOL_DIR"]).resolve() if env.get("MAGPIE_SPOOL_DIR") else None,
        supervised=env.get("MAGPIE_SUPERVISED", "") == "1",
        process_name=env.get("MAGPIE_PROCESS_NAME", ""),
    )
    try:
        parse_allow_list(settings.allow_private_destinations)
    except AllowListError as exc:
        raise ConfigError(f"MAGPIE_ALLOW_PRIVATE_DESTINATIONS: {exc}") from None
    if settings.admin_token and len(settings.admin_token) < 16:
        raise ConfigError("MAGPIE_ADMIN_TOKEN: must be at least 16 characters")
    if settings.clickhouse_url and not settings.secret_key:
        raise ConfigError("MAGPIE_SECRET_KEY: required in server mode (MAGPIE_CLICKHOUSE_URL is set)")
    return settings
