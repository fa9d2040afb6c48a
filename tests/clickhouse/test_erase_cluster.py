"""Erasure on a cluster: a Distributed table takes no mutation, so deletes go to its local replicated
table on every node. chdb has no cluster, so the target is checked against the Distributed engine our
own cluster DDL renders, and the statement against ClickHouse's parser."""

from __future__ import annotations

import re

from clickhouse_connect.driver.client import Client

from clickhouse.cluster import render_cluster
from clickhouse.erase import mutated, mutation_target
from clickhouse.migrations import load_migrations


def _distributed_engines() -> dict[str, str]:
    """Each table's Distributed engine as clickhouse/cluster.py renders it for a cluster `prod`
    (system.tables.engine_full shows the engine clause the same way, quoted or not)."""
    engines = {}
    for migration in load_migrations():
        for statement in migration.statements():
            for part in render_cluster(statement, "prod", "magpie").split(";\n"):
                found = re.search(
                    r"CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER .* ENGINE = (Distributed\(.*)$", part
                )
                if found:
                    engines[found.group(1)] = found.group(2)
    return engines


def test_every_distributed_table_is_mutated_through_its_local_tables_on_the_cluster(ch: Client) -> None:
    engines = _distributed_engines()
    assert {"events", "profiles", "rejected_events", "privacy_requests"} <= set(engines)
    for table, engine in engines.items():
        target = mutation_target(table, engine)
        assert target == f"{table}_local ON CLUSTER prod", (table, engine)
        quoted = engine.replace("Distributed(prod, magpie,", "Distributed('prod', 'magpie',", 1)
        assert mutation_target(table, quoted) == target  # engine_full quotes the names
        statement = f"ALTER TABLE {target} DELETE WHERE hex(sipHash128(tuple(1))) IN ('AB')"
        formatted = ch.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows
        assert " ".join(formatted[0][0].split()).startswith(
            f"ALTER TABLE {table}_local ON CLUSTER prod (DELETE"
        )


def test_a_single_node_table_is_mutated_as_itself(ch: Client) -> None:
    assert mutated(ch, "events") == "events"
    assert mutated(ch, "no_such_table") == "no_such_table"
    assert mutation_target("events", "MergeTree PARTITION BY toYYYYMM(received_at) ORDER BY (a)") == "events"
