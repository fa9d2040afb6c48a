"""Meta-test: the test helper writes exactly the columns of the migrated events table."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from tests.activation.audiences.audience_rows import EVENT_COLUMNS


def test_event_rows_cover_every_events_column(ch: Client) -> None:
    columns = {row[0] for row in ch.query("DESCRIBE TABLE events").result_rows}
    assert set(EVENT_COLUMNS) == columns - {"inserted_at"}
    assert len(EVENT_COLUMNS) == len(set(EVENT_COLUMNS))
