"""Freshness of each destination: the lag from the newest event a delivery reflects to the moment it
was delivered, for audience syncs and event connections alike.

- Audience sync: a finished run (succeeded or partial) brought the destination up to the membership,
  which reflects events up to the audience's `newest_event_at` (audiences.freshness); lag = run end −
  that event's `inserted_at`.
- Event connection: a delivered request carried events up to the newest `inserted_at` among them;
  lag = delivery − that.

The latest measurement of each destination is one Redis hash (read by `GET /admin/v1/destinations/{id}`
as `freshness`) and a `magpie_destination_lag_seconds{destination="<id>"}` gauge on the worker's
/metrics (shared by every web process's /metrics). A destination that has delivered nothing yet has
no freshness (null) and no gauge.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from activation.db import Database

GAUGE = "magpie_destination_lag_seconds"
AUDIENCE_SYNC, CONNECTION = "audience_sync", "connection"
_NEWEST_OF_AUDIENCE = (
    "SELECT newest_event_at FROM audience_freshness FINAL"
    " WHERE audience_id = {aid:String} AND newest_event_at IS NOT NULL"
)


def key(destination_id: str) -> str:
    return f"magpie:destination:{destination_id}:freshness"


async def record_delivery(redis: Any, metrics: Any, destination_id: str, inserted_at_ms: list[int]) -> None:
    """After a live event delivery: the newest stored event among those delivered is a measurement."""
    newest = max((ms for ms in inserted_at_ms if ms), default=0)
    if newest:
        await record(redis, metrics, destination_id, CONNECTION, newest / 1000, time.time())


async def record(
    redis: Any, metrics: Any, destination_id: str, measured_in: str, newest_s: float, delivered_s: float
) -> None:
    """Store one measurement (epoch seconds) and set the destination's gauge."""
    lag_ms = max(0, int((delivered_s - newest_s) * 1000))
    await redis.hset(
        key(destination_id),
        mapping={
            "newest_event_ms": int(newest_s * 1000),
            "delivered_ms": int(delivered_s * 1000),
            "lag_ms": lag_ms,
            "measured_in": measured_in,
        },
    )
    if hasattr(metrics, "gauge"):
        metrics.gauge(f'{GAUGE}{{destination="{destination_id}"}}', lambda: lag_ms / 1000)


async def read(redis: Any, destination_id: str) -> dict[str, Any] | None:
    """{"lag_s", "newest_event_at", "delivered_at", "measured_in"}, or None before any delivery."""
    raw = await redis.hgetall(key(destination_id))
    if not raw:
        return None
    values = {_text(k): _text(v) for k, v in raw.items()}
    return {
        "lag_s": int(values["lag_ms"]) / 1000,
        "newest_event_at": _iso(int(values["newest_event_ms"])),
        "delivered_at": _iso(int(values["delivered_ms"])),
        "measured_in": values["measured_in"],
    }


async def newest_event_of_audience(db: Database, audience_id: str) -> float | None:
    """inserted_at (epoch s) of the newest event the audience's membership reflects, if known."""
    rows = await db.rows(_NEWEST_OF_AUDIENCE, {"aid": audience_id})
    if not rows or rows[0][0] is None:
        return None
    moment: datetime = rows[0][0]
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def record_sync(
    redis: Any, metrics: Any, destination_id: str, newest_s: float | None, status: str
) -> None:
    """After an audience sync run: a run that delivered (succeeded, partial) is a measurement."""
    if newest_s is not None and status in ("succeeded", "partial"):
        await record(redis, metrics, destination_id, AUDIENCE_SYNC, newest_s, time.time())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
