"""One factory for the ClickHouse client: clickhouse-connect's HTTP client, always.

The embedded store (`magpie clickhouse`, chdb behind ClickHouse's HTTP interface) and a ClickHouse
server or cluster are reached the same way, so every process runs one code path in every deployment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

DEFAULT_DATABASE = "magpie"
# clickhouse-connect's escaping of a bound string: a backslash before each of these (binding.must_escape)
_ESCAPES = str.maketrans({c: "\\" + c for c in ("\\", "'", "`", "\t", "\n")})
# A bound value past a URL's length travels in the request body as a form field (`query`, not
# `command`), which ClickHouse caps at http_max_field_value_size (128 KiB; it is read while the
# request is parsed, so a query cannot raise it). Arrays of identifiers are cut to render within this.
FIELD_BYTES = 120_000


class Strings:
    """Strings bound as one `{name:Array(String)}` parameter, formatted as clickhouse-connect formats a
    list of str (same text: tests/clickhouse/test_client.py) but with one C-level translate per string
    instead of its per-character generator. Binding the 1,500 identifiers of a 500-profile document
    build cost ~10 ms of the worker's CPU (and GIL) that way. clickhouse-connect sends a value of a
    type it does not know as str(value), verbatim."""

    __slots__ = ("count", "text")

    def __init__(self, values: Iterable[str]) -> None:
        quoted = ["'" + v.translate(_ESCAPES) + "'" for v in values]
        self.text, self.count = "[" + ", ".join(quoted) + "]", len(quoted)

    def __str__(self) -> str:
        return self.text

    def __len__(self) -> int:
        return self.count


def parts(values: list[str], max_bytes: int = FIELD_BYTES) -> Iterator[list[str]]:
    """The values in order, cut so that each part renders as an SQL array within `max_bytes`."""
    part: list[str] = []
    size = 2  # the brackets
    for value in values:
        cost = len(value.encode()) + value.count("'") + value.count("\\") + 4  # quotes, escapes, ", "
        if part and size + cost > max_bytes:
            yield part
            part, size = [], 2
        part.append(value)
        size += cost
    if part:
        yield part


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
