"""One factory for the ClickHouse client: clickhouse-connect's HTTP client, always.

The embedded store (`magpie clickhouse`, chdb behind ClickHouse's HTTP interface) and a ClickHouse
server or cluster are reached the same way, so every process runs one code path in every deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

DEFAULT_DATABASE = "magpie"


@dataclass(frozen=True)
class ClickHouseTarget:
    """Where ClickHouse lives: an HTTP(S) URL (credentials included), plus the database."""

    dsn: str
    database: str = DEFAULT_DATABASE
    cluster: str = ""

    @classmethod
    def from_url(cls, url: str, cluster: str = "") -> ClickHouseTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http or https, not {parts.scheme!r}")
        database = parts.path.strip("/") or DEFAULT_DATABASE
        return cls(dsn=parts._replace(path="").geturl(), database=database, cluster=cluster)


def connect(target: ClickHouseTarget, *, with_database: bool = True) -> Client:
    """Open a client; without `with_database` it talks to the default database (for CREATE DATABASE)."""
    database = target.database if with_database else None
    return clickhouse_connect.get_client(
        dsn=target.dsn,
        database=database or "default",
        connect_timeout=5,
        send_receive_timeout=60,
        compress=not _loopback(target.dsn),  # compressing on loopback only burns CPU on both ends
        # No HTTP session: a client is shared by concurrent threads (asyncio.to_thread), and
        # ClickHouse refuses concurrent queries within one session; settings go with each query.
        autogenerate_session_id=False,
        # a cluster's Distributed tables acknowledge an insert once it is on its shard
        settings={"distributed_foreground_insert": 1} if target.cluster else None,
    )


def _loopback(dsn: str) -> bool:
    host = urlsplit(dsn).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"
