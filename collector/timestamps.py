"""Timestamp parsing and Segment's clock-skew correction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

FUTURE_LIMIT = timedelta(hours=24)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, tzinfo=UTC)
_MS_THRESHOLD = 100_000_000_000  # numbers above this are epoch milliseconds, below are seconds


class BadTimestamp(ValueError):
    pass


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 strings or epoch seconds/milliseconds to an aware UTC datetime; None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadTimestamp("timestamp must be a string or a number")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
        try:
            parsed = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise BadTimestamp(f"timestamp {value!r} is out of range") from None
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise BadTimestamp(f"timestamp {value[:40]!r} is not ISO-8601") from None
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    else:
        raise BadTimestamp("timestamp must be a string or a number")
    if not EARLIEST <= parsed <= LATEST:
        raise BadTimestamp(f"timestamp {parsed.isoformat()} is outside 1970–2299")
    return parsed


def corrected(
    received_at: datetime, original: datetime | None, sent_at: datetime | None, skew_correct: bool
) -> tuple[datetime, datetime, bool]:
    """Return (timestamp, originalTimestamp, clamped) per Segment's rules.

    timestamp = receivedAt − (sentAt − originalTimestamp); more than 24 h ahead is clamped.
    """
    original = original or received_at
    timestamp = original
    if skew_correct and sent_at is not None:
        timestamp = received_at - (sent_at - original)
    if timestamp - received_at > FUTURE_LIMIT:
        return received_at, original, True
    return timestamp, original, False


@lru_cache(maxsize=1024)
def iso(moment: datetime) -> str:
    """Millisecond ISO-8601 in UTC with a Z, as Segment writes timestamps."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
