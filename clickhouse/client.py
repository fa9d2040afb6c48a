"""One factory for the ClickHouse client: clickhouse-connect's HTTP client, always.

The embedded store (`magpie clickhouse`, chdb behind ClickHouse's HTTP interface) and a ClickHouse
server or cluster are reached the same way, so every process runs one code path in every deployment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.binding import format_bind_value
from clickhouse_connect.driver.client import Client

DEFAULT_DATABASE = "magpie"
# clickhouse-connect's escaping of a bound string: a backslash before each of these (binding.must_escape)
_ESCAPES = str.maketrans({c: "\\" + c for c in ("\\", "'", "`", "\t", "\n")})
# A bound value past a URL's length travels in the request body as a form field (`query`, not
# `command`), which ClickHouse caps at http_max_field_value_size (128 KiB; it is read while the
# request is parsed, so a query cannot raise it). Arrays of identifiers are cut to render within this
# (`fit`: one statement, its arrays bound in parts).
FIELD_BYTES = 120_000


class Strings:
    """Strings bound as one `{name:Array(String)}` parameter, formatted as clickhouse-connect formats a
    list of str (same text: tests/clickhouse/test_client.py) but with one C-level translate per string
    instead of its per-character generator. Binding the 1,500 identifiers of a 500-profile document
    build cost ~10 ms of the worker's CPU (and GIL) that way. clickhouse-connect sends a value of a
    type it does not know as str(value), verbatim."""

    __slots__ = ("count", "quoted", "text")

    def __init__(self, values: Iterable[str]) -> None:
        self.quoted = ["'" + v.translate(_ESCAPES) + "'" for v in values]
        self.text, self.count = "[" + ", ".join(self.quoted) + "]", len(self.quoted)

    def cut(self, max_bytes: int = FIELD_BYTES) -> list[Strings]:
        """The values in order, in parts that each render within `max_bytes`."""
        out: list[Strings] = []
        part: list[str] = []
        size = 2
        for quoted in self.quoted:
            cost = len(quoted.encode()) + 2
            if part and size + cost > max_bytes:
                out.append(_quoted(part))
                part, size = [], 2
            part.append(quoted)
            size += cost
        return [*out, _quoted(part)]

    def __str__(self) -> str:
        return self.text

    def __len__(self) -> int:
        return self.count


def _quoted(quoted: list[str]) -> Strings:
    strings = Strings(())
    strings.quoted, strings.text, strings.count = quoted, "[" + ", ".join(quoted) + "]", len(quoted)
    return strings


_PLACEHOLDER = r"\{%s:([^{}]+)\}"


def fit(sql: str, params: dict[str, object], max_bytes: int = FIELD_BYTES) -> tuple[str, dict[str, object]]:
    """The statement with each bound array that would not fit a form field (`FIELD_BYTES`) bound as
    several parts, joined back in SQL (`arrayConcat` of the parts: `IN` and `transform` take it as
    they take the array, and the primary key is still used). Arrays of `Strings` and lists of
    string tuples (pairs) are cut; everything else is left as it is. A profile holding more
    identifiers than one field carries (up to max_profile_identifiers of up to 256 characters)
    is then still one statement."""
    out = dict(params)
    for name, value in params.items():
        if isinstance(value, Strings) and len(value.text) > max_bytes:
            pieces: list[object] = list(value.cut(max_bytes))
        elif isinstance(value, list) and value and isinstance(value[0], tuple):
            pieces = list(_tuple_parts(value, max_bytes))
            if len(pieces) < 2:
                continue
        else:
            continue
        names = [f"{name}__{i}" for i in range(len(pieces))]
        sql = re.sub(_PLACEHOLDER % re.escape(name), _joined(names), sql)
        del out[name]
        out.update(zip(names, pieces, strict=True))
    return sql, out


def _joined(names: list[str]) -> Callable[[re.Match[str]], str]:
    """The replacement of `{name:Type}`: the parts' placeholders, concatenated."""

    def joined(match: re.Match[str]) -> str:
        return "arrayConcat(" + ", ".join(f"{{{n}:{match.group(1)}}}" for n in names) + ")"

    return joined


def rendered_size(value: object) -> int:
    """The bytes a bound value takes in the request, as clickhouse-connect renders an element of an
    array parameter (strings quoted and escaped: a value of quotes renders at twice its length)."""
    if isinstance(value, Strings):
        return len(value.text.encode())
    return len(format_bind_value(value, top_level=False).encode())


def _tuple_parts(values: list[object], max_bytes: int) -> Iterator[list[object]]:
    part: list[object] = []
    size = 2
    for value in values:
        cost = rendered_size(value) + 2
        if part and size + cost > max_bytes:
            yield part
            part, size = [], 2
        part.append(value)
        size += cost
    yield part


def parts(values: list[str], max_bytes: int = FIELD_BYTES) -> Iterator[list[str]]:
    """The values in order, cut so that each part renders as an SQL array within `max_bytes`."""
    part: list[str] = []
    size = 2  # the brackets
    for value in values:
        cost = len(value.translate(_ESCAPES).encode()) + 4  # quotes, escapes, ", "
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
