"""Where a person's identifiers still lie: every String-bearing column of every table of the
database, and every Redis key and value. Used by the erasure tests as the 'no trace' oracle."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from clickhouse_connect.driver.client import Client

_TEXT_TYPES = ("String", "JSON", "Tuple", "Array", "Map", "Object")


def table_columns(ch: Client) -> dict[str, list[str]]:
    """Every table (not view) of the current database → its text-bearing columns."""
    rows = ch.query(
        "SELECT c.table, c.name, c.type FROM system.columns AS c"
        " INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table"
        " WHERE c.database = currentDatabase() AND t.engine NOT LIKE '%View%'"
    ).result_rows
    out: dict[str, list[str]] = {}
    for table, column, type_ in rows:
        if any(k in str(type_) for k in _TEXT_TYPES):
            out.setdefault(str(table), []).append(str(column))
    return out


def table_traces(
    ch: Client, values: Iterable[str], tables: Collection[str] | None = None
) -> list[tuple[str, str, str]]:
    """(table, column, value) for every column still holding one of `values` (case-insensitive), in
    `tables` (default: all). Tests pass the registered ones: the meta-test fails for any other."""
    needles = sorted(set(values))
    found = []
    for table, columns in sorted(table_columns(ch).items()):
        if tables is not None and table not in tables:
            continue
        for column in columns:
            sql = (
                f"SELECT DISTINCT arrayJoin(arrayFilter(v -> positionCaseInsensitive(toString(`{column}`), v) > 0,"
                f" {{n:Array(String)}})) FROM `{table}` WHERE multiSearchAnyCaseInsensitive(toString(`{column}`),"
                " {n:Array(String)})"
            )
            for (value,) in ch.query(sql, parameters={"n": needles}).result_rows:
                found.append((table, column, str(value)))
    return found


async def redis_traces(redis: Any, values: Iterable[str]) -> list[str]:
    """Every Redis key whose name or content holds one of `values`."""
    needles = [v.encode().lower() for v in values]
    found = []
    async for key in redis.scan_iter(count=1000):
        blob = key + b" " + await _content(redis, key)
        if any(n in blob.lower() for n in needles):
            found.append(key.decode(errors="replace"))
    return found


async def _content(redis: Any, key: bytes) -> bytes:
    kind = (await redis.type(key)).decode()
    if kind == "string":
        return bytes(await redis.get(key) or b"")
    if kind == "list":
        return b" ".join(await redis.lrange(key, 0, -1))
    if kind == "hash":
        return b" ".join(f + b"=" + v for f, v in (await redis.hgetall(key)).items())
    if kind == "set":
        return b" ".join(await redis.smembers(key))
    if kind == "zset":
        return b" ".join(await redis.zrange(key, 0, -1))
    return b""
