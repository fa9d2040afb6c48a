"""Bounds on definitions and on the queries they become.

Definitions are user input that turns into ClickHouse work, so both their size and the resources
of their queries are capped. Reads run with `readonly=1`; the computation is an INSERT … SELECT
(which ClickHouse cannot run read-only) and relies on parameter binding plus the same time and
memory limits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from clickhouse.client import fit

MAX_DEPTH: Final = 16
MAX_CONDITIONS: Final = 64
MAX_IN_VALUES: Final = 1000
MAX_FILTERS: Final = 16
MAX_STRING_CHARS: Final = 1024
MAX_NAME_CHARS: Final = 256
MAX_WITHIN_DAYS: Final = 36500
MAX_COUNT: Final = 1_000_000_000
MAX_ABS_NUMBER: Final = 2**53
MAX_QUERY_CHARS: Final = 20_000
# The range of ClickHouse's DateTime64: dates outside it would be accepted, then fail every run.
MIN_DATE: Final = datetime(1900, 1, 1, tzinfo=UTC)
MAX_DATE: Final = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)

QUERY_TIME_LIMIT_S: Final = 60
QUERY_MEMORY_LIMIT_BYTES: Final = 4 * 1024**3
READ_RESULT_ROW_LIMIT: Final = 100_000

# Settings for the SELECTs behind preview, members, explain and history. On the chdb backend of
# clickhouse-connect they travel as a trailing SETTINGS clause of a SELECT, where `readonly`
# works and ends with the query. Anything else (command(), INSERT or DDL through query()) gets
# its settings by SET on the client's session and cannot restore them once it is read-only: that
# client stays read-only for good. Hence `select()` below is the only way these settings are used.
READ_SETTINGS: Final[dict[str, int | str]] = {
    "readonly": 1,
    "max_execution_time": QUERY_TIME_LIMIT_S,
    "max_memory_usage": QUERY_MEMORY_LIMIT_BYTES,
    "max_result_rows": READ_RESULT_ROW_LIMIT,
    "result_overflow_mode": "throw",
}

# Settings for the snapshot INSERT … SELECT.
COMPUTE_SETTINGS: Final[dict[str, int | str]] = {
    "max_execution_time": QUERY_TIME_LIMIT_S,
    "max_memory_usage": QUERY_MEMORY_LIMIT_BYTES,
}


def select(ch: Client, sql: str, params: dict[str, Any]) -> list[Any]:
    """Rows of a read-only, limited SELECT."""
    if not sql.lstrip().upper().startswith("SELECT "):
        raise ValueError("read settings are for SELECT statements only")
    sql, bound = fit(sql, params)  # a profile's many identifiers bound in parts
    return list(ch.query(sql, parameters=bound, settings=READ_SETTINGS).result_rows)
