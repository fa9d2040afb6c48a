"""Which destination × audience pairs the cron queues: new computations, failed runs after a pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activation.sync.schedule import RETRY_FAILED_AFTER_S, due

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_due_pairs() -> None:
    computed = NOW - timedelta(minutes=5)
    pairs = [("a1", "d1", computed), ("a1", "d2", computed), ("a2", "d1", None), ("a3", "d1", EPOCH)]
    pairs += [("a4", "d1", computed), ("a5", "d1", computed), ("a6", "d1", computed)]
    last = {
        ("d2", "a1"): ("run_b", "succeeded", computed + timedelta(seconds=1)),
        ("d1", "a4"): ("run_c", "partial", computed - timedelta(seconds=1)),
        ("d1", "a5"): ("run_d", "failed", NOW - timedelta(seconds=RETRY_FAILED_AFTER_S - 1)),
        ("d1", "a6"): ("run_e", "failed", NOW - timedelta(seconds=RETRY_FAILED_AFTER_S + 1)),
    }
    assert due(pairs, last, NOW) == [("d1", "a1", "first"), ("d1", "a4", "run_c"), ("d1", "a6", "run_e")]
