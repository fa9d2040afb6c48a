"""Benchmark (SPEC §11): a 3-condition audience over 10 M events and 1 M profiles, target ≤ 10 s.

    python -m activation.audiences.bench [--events 10000000] [--profiles 1000000] [--data-dir DIR]

Data is generated inside ClickHouse (numbers()), in a fresh embedded ClickHouse under a temporary
directory unless --data-dir is given. Prints one line per measured step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from activation.audiences import store
from activation.audiences.computation import compute
from activation.audiences.inspection import preview
from activation.audiences.parser import parse
from activation.audiences.store import Audience
from clickhouse.client import connect
from clickhouse.embedded import running_store

T = TypeVar("T")
QUERY = (
    "event('Order Completed').where(property('total') > 50).within(30 days).count() >= 2"
    " and trait('plan') = 'pro' and computed('lifetime_revenue') > 100"
)
_PROFILES = (
    "INSERT INTO profiles (profile_id, first_seen, last_seen, event_count, session_count, lifetime_revenue,"
    " version, deleted) SELECT concat('p', toString(number)), now64(3) - toIntervalDay(number % 365),"
    " now64(3), 10, 2, (number % 1000) * 1.0, 1, 0 FROM numbers({profiles})"
)
_IDENTITY = (
    "INSERT INTO identity_map (identifier_type, identifier_value, profile_id, version, deleted)"
    " SELECT '{kind}', concat('{prefix}', toString(number)), concat('p', toString(number)), 1, 0"
    " FROM numbers({profiles})"
)
_TRAITS = (
    "INSERT INTO profile_traits (profile_id, trait, value, source_id, updated_at, version, deleted)"
    " SELECT concat('p', toString(number)), 'plan', if(number % 4 = 0, '\"pro\"', '\"free\"'), 'bench',"
    " now64(3), 1, 0 FROM numbers({profiles})"
)
_EVENTS = (
    "INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp,"
    " original_timestamp, received_at, properties, is_bot)"
    " SELECT 'bench', toString(number), 'track',"
    " ['Order Completed', 'Page Viewed', 'Product Viewed', 'Signed Up', 'Cart Viewed'][number % 5 + 1],"
    " if(number % 3 = 0, '', concat('u', toString(cityHash64(number) % {profiles}))),"
    " concat('a', toString(cityHash64(number, 1) % {profiles})),"
    " now64(3) - toIntervalSecond(number % 5184000) AS t, t, t,"
    " concat('{{\"total\":', toString(number % 100), '}}'), number % 50 = 0"
    " FROM numbers({events})"
)


def generate(ch: Client, events: int, profiles: int) -> None:
    ch.command(_PROFILES.format(profiles=profiles))
    ch.command(_IDENTITY.format(kind="user_id", prefix="u", profiles=profiles))
    ch.command(_IDENTITY.format(kind="anonymous_id", prefix="a", profiles=profiles))
    ch.command(_TRAITS.format(profiles=profiles))
    ch.command(_EVENTS.format(events=events, profiles=profiles), settings={"max_insert_threads": 2})


def timed(label: str, fn: Callable[..., T], *args: Any) -> T:
    started = time.perf_counter()
    result = fn(*args)
    print(f"{label:<34} {time.perf_counter() - started:8.2f} s")
    return result


def run(data_dir: Path, events: int, profiles: int) -> None:
    with running_store(data_dir) as target:
        _run(connect(target), events, profiles)


def _run(ch: Client, events: int, profiles: int) -> None:
    timed(f"generate {events:,} events", generate, ch, events, profiles)
    now = datetime.now(UTC)
    audience = store.save(
        ch, Audience(id="aud_bench", key="bench", name="bench", definition=parse(QUERY)), now
    )
    first = timed("compute (first run)", compute, ch, audience.id, now)
    print(f"  {first}")
    second = timed("compute (re-run, no changes)", compute, ch, audience.id, datetime.now(UTC))
    print(f"  {second}")
    sized = timed("preview (size + sample)", preview, ch, audience.definition, now)
    print(f"  size {sized['size']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    if args.data_dir:
        run(args.data_dir, args.events, args.profiles)
        return
    with tempfile.TemporaryDirectory(prefix="magpie-bench-") as tmp:
        run(Path(tmp), args.events, args.profiles)


if __name__ == "__main__":
    main()
