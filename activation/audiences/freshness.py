"""Freshness of each audience: lag from the newest event its membership reflects to the moment the
membership was brought up to it (streaming micro-batches and batch runs), in ClickHouse for the API
and as `magpie_audience_lag_seconds{audience="<key>"}` gauges on the worker's /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.audiences.store import Audience

GAUGE = "magpie_audience_lag_seconds"
_COLUMNS = ["audience_id", "mode", "newest_event_at", "updated_at", "lag_ms", "version"]
_READ = (
    "SELECT audience_id, mode, newest_event_at, updated_at, lag_ms FROM audience_freshness FINAL"
    " WHERE audience_id IN {ids:Array(String)}"
)
_NEWEST = "SELECT max(inserted_at) FROM events WHERE inserted_at > now64(6) - toIntervalDay(1)"


def lag_ms(newest: float | None, updated: float) -> int:
    return max(0, int((updated - newest) * 1000)) if newest is not None else 0


def record(
    ch: Client, audiences: Iterable[Audience], mode: str, newest: float | None, updated: float
) -> None:
    """One row per audience: `newest` is the newest event's inserted_at (epoch s), if any event."""
    event_at = datetime.fromtimestamp(newest, UTC) if newest is not None else None
    at, version = datetime.fromtimestamp(updated, UTC), time.time_ns()
    rows = [[a.id, mode, event_at, at, lag_ms(newest, updated), version] for a in audiences]
    if rows:
        ch.insert("audience_freshness", rows, column_names=_COLUMNS)


def newest_event(ch: Client) -> float | None:
    """inserted_at (epoch s) of the newest event stored today (the minmax index keeps it cheap)."""
    value = ch.query(_NEWEST).result_rows[0][0]
    if value is None or value.year <= 1970:
        return None
    moment: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.timestamp()


def read(ch: Client, audience_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = ch.query(_READ, parameters={"ids": audience_ids}).result_rows if audience_ids else []
    return {
        r[0]: {"lag_s": r[4] / 1000, "newest_event_at": r[2], "updated_at": r[3], "measured_in": r[1]}
        for r in rows
    }


def publish(metrics: Any, audiences: Iterable[Audience], newest: float | None, updated: float) -> None:
    """Set the lag gauge of each audience on the process's Metrics (when it has gauges)."""
    if not hasattr(metrics, "gauge"):
        return
    for audience in audiences:
        value = lag_ms(newest, updated) / 1000
        metrics.gauge(f'{GAUGE}{{audience="{audience.key}"}}', lambda value=value: value)
