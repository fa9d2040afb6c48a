"""Timestamp rules (see collector/timestamps.py): parse, skew correction, clamps and flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.timestamps import EPOCH, FAR_FUTURE, BadTimestamp, corrected, parse_timestamp

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_far_future_values_parse_instead_of_failing() -> None:
    assert parse_timestamp("9999-12-31T23:59:59Z") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_timestamp("9999-12-31T23:59:59-05:00") == FAR_FUTURE
    assert parse_timestamp(1e300) == FAR_FUTURE
    assert parse_timestamp(0) == parse_timestamp("1970-01-01T00:00:00Z") == EPOCH
    for bad in (-1, "1969-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "soon", True, {}):
        with pytest.raises(BadTimestamp):
            parse_timestamp(bad)


def test_a_far_future_timestamp_is_clamped_and_flagged_whatever_the_route() -> None:
    for skew_correct in (True, False):
        timing = corrected(NOW, datetime(9999, 1, 1, tzinfo=UTC), None, skew_correct)
        assert (timing.timestamp, timing.original, timing.clamped) == (NOW, NOW, True)
    within_a_day = corrected(NOW, NOW + timedelta(hours=23), None, True)
    assert within_a_day.timestamp == NOW + timedelta(hours=23) and not within_a_day.clamped


def test_epoch_zero_means_no_timestamp_and_is_flagged() -> None:
    timing = corrected(NOW, EPOCH, None, True)
    assert (timing.timestamp, timing.original, timing.clamped) == (NOW, NOW, True)
    unset = corrected(NOW, None, None, True)
    assert (unset.timestamp, unset.clamped) == (NOW, False)
    ignored_sent_at = corrected(NOW, NOW - timedelta(minutes=5), EPOCH, True)
    assert ignored_sent_at.timestamp == NOW - timedelta(minutes=5) and ignored_sent_at.sent_at is None


def test_skew_correction_never_lands_before_1970() -> None:
    original = datetime(2001, 1, 1, tzinfo=UTC)
    timing = corrected(NOW, original, datetime(2299, 1, 1, tzinfo=UTC), True)
    assert timing.timestamp == original and timing.clamped and timing.timestamp >= EPOCH
    extreme = corrected(NOW, datetime(1970, 1, 2, tzinfo=UTC), FAR_FUTURE, True)
    assert extreme.timestamp == datetime(1970, 1, 2, tzinfo=UTC) and extreme.sent_at is None


def test_a_clock_running_in_year_9999_is_still_corrected_by_its_sent_at() -> None:
    sent = datetime(9999, 6, 1, tzinfo=UTC)
    timing = corrected(NOW, sent - timedelta(minutes=1), sent, True)
    assert timing.timestamp == NOW - timedelta(minutes=1)
    assert timing.original == timing.timestamp and timing.sent_at is None and timing.clamped
    behind = corrected(NOW, datetime(9999, 6, 1, tzinfo=UTC), datetime(1971, 1, 1, tzinfo=UTC), True)
    assert behind.timestamp == NOW and behind.clamped  # sentAt long before the timestamp: no overflow
