"""One factory for the ClickHouse client: embedded chdb or a server over HTTP.

Both return an ordinary clickhouse-connect client, so everything above this module
runs the same code in embedded and server mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

DEFAULT_DATABASE = "magpie"


@dataclass(frozen=True)
class ClickHouseTarget:
    """Where ClickHouse lives: a chdb data path or an HTTP(S) URL, plus the database."""

    dsn: str
    database: str = DEFAULT_DATABASE
    cluster: str = ""

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    @classmethod
    def embedded_at(cls, data_dir: Path) -> ClickHouseTarget:
        return cls(dsn=f"chdb://{(data_dir / 'clickhouse').resolve()}")

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
    if target.embedded:
        Path(target.dsn.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=target.dsn, database=database)
    return clickhouse_connect.get_client(
        dsn=target.dsn,
        database=database or "default",
        connect_timeout=5,
        send_receive_timeout=60,
        compress=True,
        # No HTTP session: a client is shared by concurrent threads (asyncio.to_thread), and
        # ClickHouse refuses concurrent queries within one session; settings go with each query.
        autogenerate_session_id=False,
    )
