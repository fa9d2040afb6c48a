"""Async access to ClickHouse for the activation side: the synchronous clickhouse-connect client
runs in a worker thread so the event loop never blocks on a query."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from clickhouse_connect.driver.client import Client


class Database:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        result = await asyncio.to_thread(self.client.query, sql, parameters=parameters)
        return [tuple(r) for r in result.result_rows]

    async def dicts(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        result = await asyncio.to_thread(self.client.query, sql, parameters=parameters)
        names = result.column_names
        return [dict(zip(names, r, strict=True)) for r in result.result_rows]

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return await asyncio.to_thread(self.client.command, sql, parameters=parameters)

    async def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        await asyncio.to_thread(self.client.insert, table, list(rows), column_names=list(columns))
