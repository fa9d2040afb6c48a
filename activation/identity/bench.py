"""Identity benchmark: 1 M events over 200 k people, fully stitched; the incremental path.
(Profile API reads: activation.profiles_api.bench, through the real server.)

Run in its own process (it opens its own embedded ClickHouse in a temporary directory):
    .venv/bin/python -m activation.identity.bench [--events 1000000] [--people 200000]
Events are generated inside ClickHouse (INSERT ... SELECT FROM numbers) so the timing is the stitch's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.identity.lookup import lookup
from activation.identity.stitching import stitch_full, stitch_incremental
from clickhouse.client import connect
from clickhouse.embedded import running_store

# Person p has two browsers (anonymous ids), 60 % identify on the third event (user id + email),
# persons 20k and 20k+1 share a device; the fifth event is an order with revenue.
_GENERATE = """
INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, device_id, timestamp,
                    received_at, traits, properties, context)
SELECT 'bench', concat({tag:String}, toString(n)), if(k = 2 AND ident, 'identify', 'track'),
       if(k = 4, 'Order Completed', if(k = 2 AND ident, '', 'Viewed')),
       if(ident AND k >= 2, concat({tag:String}, 'u', toString(p)), ''),
       concat({tag:String}, 'a', toString(p), '-', toString(k % 2)),
       if(k = 1 AND p % 20 < 2, concat({tag:String}, 'd', toString(intDiv(p, 2))), ''),
       toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(n),
       toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(n),
       if(k = 2 AND ident,
          concat('{"email":"', {tag:String}, 'user', toString(p), '@example.com","plan":"pro"}'), ''),
       if(k = 4, concat('{"revenue":', toString(p % 97), '}'), '{}'), '{}'
FROM (SELECT number AS n, n % {people:UInt64} AS p, intDiv(n, {people:UInt64}) AS k, p % 10 < 6 AS ident
      FROM numbers({events:UInt64}))
"""


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def generate(ch: Client, tag: str, events: int, people: int) -> float:
    params = {"tag": tag, "events": events, "people": people}
    return timed(lambda: ch.command(_GENERATE, parameters=params))[1]


def incremental_latency(ch: Client, people: int, rounds: int) -> list[float]:
    """Seconds from inserting a new identify to its profile answering through the mapping."""
    latencies = []
    for r in range(rounds):
        anon, user = f"late-a{r}", f"late-u{r}"
        row = [
            "bench",
            f"late-{r}",
            "identify",
            "",
            user,
            anon,
            datetime.now(UTC),
            datetime.now(UTC),
            "",
            "{}",
        ]
        cols = [
            "source_id",
            "message_id",
            "type",
            "event",
            "user_id",
            "anonymous_id",
            "timestamp",
            "received_at",
            "traits",
            "properties",
        ]
        started = time.perf_counter()
        ch.insert("events", [row], column_names=cols)
        stitch_incremental(ch, datetime.now(UTC))
        assert lookup(ch, Identifier("anonymous_id", anon)) == lookup(ch, Identifier("user_id", user))
        latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_store(Path(tmp)) as target:
        ch = connect(target)
        print(f"generate {args.events:,} events: {generate(ch, '', args.events, args.people):.1f} s")
        report, full_s = timed(lambda: stitch_full(ch, datetime.now(UTC)))
        print(f"full stitch: {full_s:.1f} s (target <= 60 s) {report.to_dict()}")
        _, rerun_s = timed(lambda: stitch_full(ch, datetime.now(UTC)))
        print(f"full re-run (no changes): {rerun_s:.1f} s")
        latencies = incremental_latency(ch, args.people, 5)
        print(
            f"new identify reflected: median {statistics.median(latencies):.2f} s, "
            f"max {max(latencies):.2f} s (+ up to one tick of the stitch cron; target <= 5 s)"
        )


if __name__ == "__main__":
    main()
