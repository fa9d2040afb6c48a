"""Migrations: ordered, idempotent statements, a ledger, a rendered cluster variant, and the seam
between what the collector writes and what the table holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
from clickhouse_connect.driver.client import Client

from clickhouse.client import ClickHouseTarget
from clickhouse.cluster import render_cluster, sharding_key
from clickhouse.migrations import load_migrations, migrate
from collector.enrich.geo import GeoLookup
from collector.normalize import Defaults, Event, normalize
from collector.pipeline import RequestFacts, build_row, build_steps
from collector.row import EVENT_COLUMNS
from collector.sources import Source
from tests.server import GEOIP_DIR

_IDEMPOTENT = re.compile(
    r"^(CREATE (TABLE|(MATERIALIZED )?VIEW|DICTIONARY) IF NOT EXISTS|ALTER TABLE \w+ "
    r"((ADD|DROP|MODIFY) (COLUMN|INDEX|PROJECTION|TTL|SETTING)( IF (NOT )?EXISTS)?|MODIFY QUERY\b))"
)


def test_every_statement_is_idempotent_and_numbers_have_no_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for migration in migrations:
        for statement in migration.statements():
            assert _IDEMPOTENT.match(statement), f"{migration.name}: not idempotent: {statement[:80]}"


def test_migrate_twice_applies_nothing_the_second_time(ch_target: ClickHouseTarget, ch: Client) -> None:
    assert migrate(ch_target) == []
    ledger = ch.query("SELECT version FROM schema_migrations ORDER BY version").result_rows
    assert [r[0] for r in ledger] == [m.version for m in load_migrations()]


def test_cluster_rendering_replicates_and_distributes() -> None:
    statements = [s for m in load_migrations() for s in m.statements()]
    rendered = render_cluster(statements[0], "prod", "magpie")
    assert "CREATE TABLE IF NOT EXISTS events_local ON CLUSTER prod" in rendered
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/magpie/events_local', '{replica}')"
        in rendered
    )
    assert "ENGINE = Distributed(prod, magpie, events_local, cityHash64(" in rendered
    sources = next(s for s in statements if "EXISTS sources" in s)
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/magpie/sources_local', '{replica}', version)"
        in (render_cluster(sources, "prod", "magpie"))
    )
    for statement in statements:
        assert "ON CLUSTER prod" in render_cluster(statement, "prod", "magpie")


def test_cluster_ddl_parses_with_the_engines_own_parser(ch: Client) -> None:
    """Every rendered cluster statement goes through ClickHouse's parser (formatQuery) — a syntax
    error fails here, not on a customer's cluster; each Distributed table shards by its sorting key."""
    for migration in load_migrations():
        for statement in migration.statements():
            for part in render_cluster(statement, "prod", "magpie").split(";\n"):
                formatted = ch.query("SELECT formatQuery({q:String})", parameters={"q": part}).result_rows
                assert "ON CLUSTER prod" in formatted[0][0], part
                if "ENGINE = Distributed" in part:
                    assert "rand()" not in part and "cityHash64(" in part, part


def test_a_column_change_reaches_the_distributed_table_and_an_index_only_the_local_ones() -> None:
    column = render_cluster("ALTER TABLE sources ADD COLUMN IF NOT EXISTS x String", "prod", "magpie")
    assert column.split(";\n") == [
        "ALTER TABLE sources_local ON CLUSTER prod ADD COLUMN IF NOT EXISTS x String",
        "ALTER TABLE sources ON CLUSTER prod ADD COLUMN IF NOT EXISTS x String",
    ]
    index = render_cluster("ALTER TABLE events ADD INDEX IF NOT EXISTS i t TYPE minmax", "prod", "magpie")
    assert index == "ALTER TABLE events_local ON CLUSTER prod ADD INDEX IF NOT EXISTS i t TYPE minmax"


def test_sharding_key_is_the_hash_of_the_sorting_key() -> None:
    assert sharding_key("(a String) ENGINE = MergeTree ORDER BY (a, toDate(b)) SETTINGS x = 1") == (
        "cityHash64(a, toDate(b))"
    )
    assert sharding_key("(a String) ENGINE = ReplacingMergeTree(v) ORDER BY id") == "cityHash64(id)"
    assert sharding_key("(a String) ENGINE = Log") == "rand()"


def _row(ip: str = "81.2.69.142") -> dict[str, object]:
    """A row with every enrichment applied (full geo, campaign with a click id, referrer)."""
    url = "https://s.example/?utm_source=a&utm_medium=b&utm_campaign=c&utm_term=d&utm_content=e&gclid=g"
    item = {"type": "track", "event": "E", "userId": "u", "context": {"page": {"url": url}}}
    event = normalize(item, b"{}", Defaults(), datetime.now(UTC), None, False)
    assert isinstance(event, Event)
    facts = RequestFacts(ip, "curl/8", Source("s", "k"), browser=True)
    geo = GeoLookup(str(GEOIP_DIR / "GeoIP2-City-Test.mmdb"), str(GEOIP_DIR / "GeoLite2-ASN-Test.mmdb"))
    return build_row(event, facts, build_steps(geo), "ingest-1").row


def test_the_collector_writes_exactly_the_columns_of_the_events_table(ch: Client) -> None:
    table = {r[0] for r in ch.query("SELECT name FROM system.columns WHERE database = currentDatabase() "
                                    "AND table = 'events'").result_rows}  # fmt: skip
    assert set(EVENT_COLUMNS) == table - {"inserted_at"}, set(EVENT_COLUMNS) ^ table
    written = set(_row()) | set(_row("1.128.0.0"))  # city data for one address, ASN data for the other
    assert written <= set(EVENT_COLUMNS)
    assert {"geo_country", "geo_asn", "utm_term", "click_id", "referrer_medium", "ua_browser"} <= written


def test_a_collector_row_inserts_as_json_each_row(ch: Client) -> None:
    row = _row()
    ch.raw_insert("events", None, orjson.dumps(row), {"date_time_input_format": "best_effort"}, "JSONEachRow")
    stored = ch.query("SELECT type, event, ip FROM events WHERE ingest_id = 'ingest-1'").result_rows
    assert stored == [("track", "E", "81.2.69.142")]


def test_concurrent_migrations_on_a_fresh_database_both_succeed(
    ch_target: ClickHouseTarget, ch: Client
) -> None:
    import dataclasses
    import threading

    target = dataclasses.replace(ch_target, database="concurrent_start")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(target)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    tables = {
        r[0]
        for r in ch.query("SELECT name FROM system.tables WHERE database = 'concurrent_start'").result_rows
    }
    assert {"events", "rejected_events", "sources", "tokens", "schema_migrations"} <= tables
    assert migrate(target) == []
