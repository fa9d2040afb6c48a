"""Timestamp parsing and Segment's clock-skew correction.

Rules (SPEC §3), in the order `corrected` applies them:

- `timestamp = receivedAt − (sentAt − originalTimestamp)` when a sentAt is given (not on /v1/import).
- Epoch 0 (`"timestamp": 0`, `"1970-01-01T00:00:00Z"`) is an unset clock, not a date: it counts
  as "no timestamp" (originalTimestamp = timestamp = receivedAt) and the event is flagged. A
  sentAt of epoch 0 is ignored.
- A correction that would land before 1970 means sentAt is not on the timestamp's clock: the
  uncorrected originalTimestamp is used instead, flagged.
- A timestamp more than 24 h after receivedAt (year 9999, or epoch numbers too large for a date)
  is clamped to receivedAt and flagged, never rejected; an originalTimestamp past what the store
  holds (2299) becomes that timestamp too, and such a sentAt is stored as null.
- Before 1970, or not ISO-8601 / a number: `BadTimestamp` (the item is rejected).

"Flagged" is the `timestamp_clamped` column (`enrichment.timestampClamped` in the debugger).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

FUTURE_LIMIT = timedelta(hours=24)
EARLIEST = EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STORABLE_LATEST = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)  # DateTime64(3)'s range
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_MS_THRESHOLD = 100_000_000_000  # numbers above this are epoch milliseconds, below are seconds


class BadTimestamp(ValueError):
    pass


class Timing(NamedTuple):  # a tuple: one per event
    timestamp: datetime
    original: datetime
    sent_at: datetime | None
    clamped: bool


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 strings or epoch seconds/milliseconds to an aware UTC datetime; None if absent.

    Moments too late for a datetime are FAR_FUTURE (to be clamped), never an error."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadTimestamp("timestamp must be a string or a number")
    parsed = _from_number(value) if isinstance(value, int | float) else _from_text(value)
    if parsed < EARLIEST:
        raise BadTimestamp(f"timestamp {parsed.isoformat()} is before 1970")
    return parsed


def _from_number(value: float) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000 if abs(value) >= _MS_THRESHOLD else value, UTC)
    except (OverflowError, OSError, ValueError):
        if value > 0:
            return FAR_FUTURE
        raise BadTimestamp(f"timestamp {value!r} is out of range") from None


def _from_text(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise BadTimestamp(f"timestamp {value[:40]!r} is not ISO-8601") from None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # within a few hours of year 1 or year 9999
        if parsed.year > 1970:
            return FAR_FUTURE
        raise BadTimestamp(f"timestamp {value[:40]!r} is before 1970") from None


def corrected(
    received_at: datetime, original: datetime | None, sent_at: datetime | None, skew_correct: bool
) -> Timing:
    """Apply the module's rules: (timestamp, originalTimestamp, storable sentAt, flagged)."""
    if original is None and sent_at is None:  # the common server-side case: the receive time
        return Timing(received_at, received_at, None, False)
    flagged = original == EPOCH
    if original is None or flagged:
        original = received_at
    timestamp = original
    if skew_correct and sent_at is not None and sent_at != EPOCH:
        timestamp, off = _skew_corrected(received_at, original, sent_at)
        flagged = flagged or off
    if timestamp - received_at > FUTURE_LIMIT:
        timestamp, flagged = received_at, True
    if original > STORABLE_LATEST:
        original, flagged = timestamp, True
    stored_sent = sent_at if sent_at is not None and EARLIEST < sent_at <= STORABLE_LATEST else None
    return Timing(timestamp, original, stored_sent, flagged)


def _skew_corrected(received_at: datetime, original: datetime, sent_at: datetime) -> tuple[datetime, bool]:
    skew = sent_at - original
    if skew > received_at - EARLIEST:  # would land before 1970
        return original, True
    if -skew > FUTURE_LIMIT:  # would land more than a day ahead (and maybe past year 9999)
        return received_at, True
    return received_at - skew, False


@lru_cache(maxsize=1024)
def iso(moment: datetime) -> str:
    """Millisecond ISO-8601 in UTC with a Z, as Segment writes timestamps."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
