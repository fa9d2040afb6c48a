"""Stitch-tick cost against history size (issue 12 item 1): the same tick — 1,000 new events from
existing people, one second's worth at 1,000 events/s — on histories of growing size (target: the
10 M tick within 2x of the 100 k one), and what the materialized views of 0009/0012 add to inserts.

    .venv/bin/python -m activation.identity.tick_bench [--sizes 100000,10000000] [--people 50000]
Each history is generated inside ClickHouse in 250 k-event INSERT ... SELECT pieces (the views see
them as the writer's inserts), fully stitched, then the tick is timed `--rounds` times, then as many
again with two computed traits defined (a 30-day window and an all-time sum). Every history has the
same people and the same identity graph (identify on the first event), so only the events per
identifier grow with the history's size.
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

from activation.identity.computed import ComputedTrait
from activation.identity.stitching import stitch_full, stitch_incremental
from activation.identity.store import write_definition
from clickhouse.client import connect
from clickhouse.embedded import running_store

PIECE = 250_000  # each piece well inside the client's 60 s timeout on a loaded machine
# Person p has two browsers (anonymous ids); 60 % identify on their first event (user id + email)
# and send their user id on every event after, so the identity graph is the same whatever the size
# of the history (only the events per identifier grow); persons 20j and 20j+1 share a device on
# their second event; every fifth event of a person, from the second on, is an order with revenue.
_HISTORY = """
INSERT INTO TABLE (source_id, message_id, type, event, user_id, anonymous_id, device_id, timestamp,
                   received_at, traits, properties, context)
SELECT 'bench', toString(n), if(k = 0 AND ident, 'identify', 'track'),
       if(k % 5 = 1, 'Order Completed', if(k = 0 AND ident, '', 'Viewed')),
       if(ident, concat('u', toString(p)), ''), concat('a', toString(p), '-', toString(k % 2)),
       if(k = 1 AND p % 20 < 2, concat('d', toString(intDiv(p, 2))), ''),
       toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(n),
       toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(n),
       if(k = 0 AND ident, concat('{"email":"user', toString(p), '@example.com","plan":"pro"}'), ''),
       if(k % 5 = 1, concat('{"revenue":', toString(p % 97), '}'), '{}'), '{}'
FROM (SELECT number AS n, n % {people:UInt64} AS p, intDiv(n, {people:UInt64}) AS k, p % 10 < 6 AS ident
      FROM numbers({offset:UInt64}, {count:UInt64}))
"""
_NEW = """
INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at,
                    properties, context)
SELECT 'bench', concat('tick', {round:String}, '-', toString(number)), 'track', 'Viewed', '',
       concat('a', toString(cityHash64(number, {round:String}) % {people:UInt64}), '-', toString(number % 2)),
       now64(3), now64(3), '{"n":1}', '{}'
FROM numbers({events:UInt64})
"""


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def generate(ch: Client, events: int, people: int, table: str = "events", offset: int = 0) -> float:
    """Insert `events` history events in pieces; seconds taken."""
    started = time.perf_counter()
    for start in range(offset, offset + events, PIECE):
        params = {"people": people, "offset": start, "count": min(PIECE, offset + events - start)}
        ch.command(_HISTORY.replace("TABLE", table), parameters=params)
    return time.perf_counter() - started


def tick_cost(ch: Client, people: int, events: int, rounds: int) -> list[float]:
    costs = []
    for r in range(rounds):
        params = {"round": f"{r}-{datetime.now(UTC).timestamp()}", "people": people, "events": events}
        ch.command(_NEW, parameters=params)
        report, seconds = timed(lambda: stitch_incremental(ch, datetime.now(UTC)))
        assert report.profiles_recomputed > 0
        costs.append(seconds)
    return costs


# What a marketer defines most: a windowed counter and an all-time sum (activation.identity.computed).
TRAITS = (
    ComputedTrait("orders_30d", "count", "Order Completed", "", 30),
    ComputedTrait("revenue_total", "sum", "Order Completed", "revenue", 0),
)


def measure(history: int, people: int, events: int, rounds: int) -> tuple[float, float]:
    """Median tick cost without computed traits, then with TRAITS defined."""
    with tempfile.TemporaryDirectory() as tmp, running_store(Path(tmp)) as target:
        ch = connect(target)
        load_s = generate(ch, history, people)
        _, full_s = timed(lambda: stitch_full(ch, datetime.now(UTC)))
        stitch_incremental(ch, datetime.now(UTC))
        costs = tick_cost(ch, people, events, rounds)
        median = statistics.median(costs)
        print(
            f"history {history:>12,} events / {people:,} people (load {load_s:.0f} s, full stitch "
            f"{full_s:.0f} s): tick of {events:,} new events median {median * 1000:.0f} ms, "
            f"max {max(costs) * 1000:.0f} ms",
            flush=True,
        )
        for definition in TRAITS:
            write_definition(ch, definition, datetime.now(UTC))
        with_traits = statistics.median(tick_cost(ch, people, events, rounds))
        print(
            f"  the same tick with {len(TRAITS)} computed traits: median {with_traits * 1000:.0f} ms",
            flush=True,
        )
        return median, with_traits


def view_cost(events: int, people: int) -> None:
    """Events/s of one large insert into `events` (through the views) and into a copy without them."""
    with tempfile.TemporaryDirectory() as tmp, running_store(Path(tmp)) as target:
        ch = connect(target)
        ch.command("CREATE TABLE IF NOT EXISTS bench_plain_events AS events")
        plain_s = generate(ch, events, people, table="bench_plain_events")
        viewed_s = generate(ch, events, people)
        print(
            f"insert of {events:,} events: {events / viewed_s:,.0f} events/s through the views, "
            f"{events / plain_s:,.0f} events/s without (views add {viewed_s / plain_s:.1f}x the time)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,10000000", help="history sizes, comma-separated")
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--view-cost-events", type=int, default=1_000_000, help="0: skip")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {size: measure(size, args.people, args.events, args.rounds) for size in sizes}
    small, large = min(sizes), max(sizes)
    plain, traits = (results[large][i] / results[small][i] for i in (0, 1))
    print(
        f"tick cost ratio {large:,} / {small:,} events of history: {plain:.2f}x (target <= 2x); "
        f"with computed traits {traits:.2f}x"
    )
    if args.view_cost_events:
        view_cost(args.view_cost_events, args.people)


if __name__ == "__main__":
    main()
