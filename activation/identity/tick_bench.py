"""Stitch-tick cost against history size (issue 12 item 1): the same tick — 1,000 new events from
existing people, one second's worth at 1,000 events/s — on 100 k and on 10 M events of history.

    .venv/bin/python -m activation.identity.tick_bench [--small 100000] [--large 10000000] [--people 50000]
Each history is generated inside ClickHouse and fully stitched first; the tick is timed 5 times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

from activation.identity.bench import generate, timed
from activation.identity.stitching import stitch_full, stitch_incremental
from clickhouse.client import connect
from clickhouse.embedded import running_store

_NEW = """
INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at,
                    properties, context)
SELECT 'bench', concat('tick', {round:String}, '-', toString(number)), 'track', 'Viewed', '',
       concat('a', toString(cityHash64(number, {round:String}) % {people:UInt64}), '-', toString(number % 2)),
       now64(3), now64(3), '{"n":1}', '{}'
FROM numbers({events:UInt64})
"""


def tick_cost(ch: Client, people: int, events: int, rounds: int) -> list[float]:
    costs = []
    for r in range(rounds):
        ch.command(_NEW, parameters={"round": f"{r}-{datetime.now(UTC).timestamp()}", "people": people,
                                     "events": events})  # fmt: skip
        report, seconds = timed(lambda: stitch_incremental(ch, datetime.now(UTC)))
        assert report.profiles_recomputed > 0
        costs.append(seconds)
    return costs


def measure(history: int, people: int, events: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, running_store(Path(tmp)) as target:
        ch = connect(target)
        generate(ch, "", history, people)
        _, full_s = timed(lambda: stitch_full(ch, datetime.now(UTC)))
        stitch_incremental(ch, datetime.now(UTC))
        costs = tick_cost(ch, people, events, 5)
        median = statistics.median(costs)
        print(
            f"history {history:,} events / {people:,} people (full stitch {full_s:.1f} s): tick of "
            f"{events:,} new events median {median * 1000:.0f} ms, max {max(costs) * 1000:.0f} ms"
        )
        return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000)
    args = parser.parse_args()
    small = measure(args.small, args.people, args.events)
    large = measure(args.large, args.people, args.events)
    print(
        f"tick cost ratio {args.large:,} / {args.small:,} events of history: {large / small:.2f}x"
        " (target <= 2x)"
    )


if __name__ == "__main__":
    main()
