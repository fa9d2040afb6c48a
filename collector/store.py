"""The ClickHouse boundary of the collector: raw JSONEachRow inserts and small reads.

Everything that can go wrong with ClickHouse surfaces here as `StoreUnavailable`, so the
writer can keep events in the spool and retry. `fault_file` is the test hook for outages: while
that file exists, the store behaves as if ClickHouse were down.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

_INSERT_SETTINGS = {"date_time_input_format": "best_effort", "input_format_skip_unknown_fields": 1}


class StoreUnavailable(Exception):
    """ClickHouse could not be reached or did not accept the write; retry later."""


class EventStore:
    def __init__(self, client: Client, fault_file: str = "") -> None:
        self.client = client
        self.fault_file = fault_file

    def _check_fault(self) -> None:
        if self.fault_file and os.path.exists(self.fault_file):
            raise StoreUnavailable("fault injected: ClickHouse marked down by MAGPIE_FAULT_FILE")

    async def insert_rows(self, table: str, rows: Sequence[bytes], token: str) -> None:
        """Insert JSONEachRow rows as one block, deduplicated by `token` on replay."""
        if not rows:
            return
        self._check_fault()
        settings = {**_INSERT_SETTINGS, "insert_deduplication_token": token}
        body = b"\n".join(rows)
        try:
            await asyncio.to_thread(self.client.raw_insert, table, None, body, settings, "JSONEachRow")
        except (ClickHouseError, OSError) as exc:
            raise StoreUnavailable(f"insert into {table} failed: {exc}") from exc

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self._check_fault()
        try:
            result = await asyncio.to_thread(self.client.query, sql, parameters=parameters)
        except (ClickHouseError, OSError) as exc:
            raise StoreUnavailable(f"query failed: {exc}") from exc
        return [tuple(row) for row in result.result_rows]
