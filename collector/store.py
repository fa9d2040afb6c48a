"""The ClickHouse boundary of the collector: raw JSONEachRow inserts and small reads.

Everything that can go wrong with ClickHouse surfaces here as `StoreUnavailable`, so the
writer can keep events in the spool and retry — except ClickHouse refusing the data itself (a parse,
type, range or constraint error: `RowsRejected`), which no retry can cure; the writer then isolates
the refused rows (collector.writer) so they never block the others. `fault_file` is the test hook
for outages: while that file exists, the store behaves as if ClickHouse were down.

A clickhouse-connect client is not safe for concurrent use from several threads (the HTTP client
refuses two queries at once in its session; a chdb handle must not interleave calls), and every
call here runs in a worker thread. So each client is used under its own lock, and reads (source
lookups on the request path) get their own client when one is given, so they never queue behind
a large insert.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

_INSERT_SETTINGS = {"date_time_input_format": "best_effort", "input_format_skip_unknown_fields": 1}

T = TypeVar("T")
# ClickHouse error codes that name the inserted data, not the server: the same rows fail every time.
# Only input parsing, types, ranges and constraints; anything else (an outage, a broken view, a full
# disk, too many parts) is retried, since rejecting rows for it would throw good events away.
DATA_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
        691,  # UNKNOWN_ELEMENT_OF_ENUM
    }
)
_CODE = re.compile(r"\bCode: (\d+)\.")


class StoreUnavailable(Exception):
    """ClickHouse could not be reached or did not accept the write; retry later."""


class RowsRejected(Exception):
    """ClickHouse refused the inserted data itself (`DATA_ERROR_CODES`); the same rows fail again."""

    def __init__(self, table: str, code: int, message: str) -> None:
        super().__init__(f"insert into {table} refused (code {code}): {message}")
        self.code = code
        self.reason = _first_line(message)[:300]


def _first_line(message: str) -> str:
    start = message.find("DB::Exception:")
    text = message[start + len("DB::Exception:") :] if start >= 0 else message
    return text.strip().splitlines()[0] if text.strip() else ""


def data_error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code when it names the data (see DATA_ERROR_CODES), else None."""
    found = _CODE.search(str(exc))
    code = int(found.group(1)) if found else None
    return code if code in DATA_ERROR_CODES else None


class _Guarded:
    """One client, used by one thread at a time."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()

    async def run(self, work: Callable[[Client], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self.client)

        return await asyncio.to_thread(locked)


class EventStore:
    def __init__(self, client: Client, fault_file: str = "", reader: Client | None = None) -> None:
        self.client = client
        self.fault_file = fault_file
        self._writes = _Guarded(client)
        self._reads = _Guarded(reader) if reader is not None else self._writes

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
            await self._writes.run(lambda c: c.raw_insert(table, None, body, settings, "JSONEachRow"))
        except ClickHouseError as exc:
            code = data_error_code(exc)
            if code is not None:
                raise RowsRejected(table, code, str(exc)) from exc
            raise StoreUnavailable(f"insert into {table} failed: {exc}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"insert into {table} failed: {exc}") from exc

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self._check_fault()
        try:
            result = await self._reads.run(lambda c: c.query(sql, parameters=parameters))
        except (ClickHouseError, OSError) as exc:
            raise StoreUnavailable(f"query failed: {exc}") from exc
        return [tuple(row) for row in result.result_rows]
