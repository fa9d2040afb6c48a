"""Hostile definitions against the real ClickHouse: values match as plain text, nothing else runs,
and the query limits are enforced (checked on chdb)."""

from __future__ import annotations

from datetime import datetime

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from activation.audiences import membership
from activation.audiences.compiler import compile_audience
from activation.audiences.computation import compute
from activation.audiences.limits import READ_SETTINGS, select
from activation.audiences.printer import quote
from activation.audiences.tree import And, Compare, Event, Property, Trait
from tests.activation.audiences.audience_cases import HOSTILE
from tests.activation.audiences.audience_rows import event_row, insert_events, person, save_audience


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_value_matches_exactly_the_profile_holding_it(ch: Client, ns: str, hostile: str) -> None:
    target = person(ch, ns, "target", note=hostile)
    person(ch, ns, "near", note=hostile[:-1] + "?")
    person(ch, ns, "prefix", note=hostile + " ")
    query = f"trait('ns') = '{ns}' and trait('note') = {quote(hostile)}"
    audience = save_audience(ch, f"{ns}-hostile", query)
    assert compute(ch, audience.id, datetime.now().astimezone())["members"] == 1
    assert membership.members(ch, audience.id) == [target]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_are_plain_names(ch: Client, ns: str, hostile: str, now: datetime) -> None:
    target = person(ch, ns, "target", **{hostile: "yes"})
    person(ch, ns, "other", **{hostile + "x": "yes"})
    key = hostile.replace(".", "_")
    insert_events(ch, [event_row(event=hostile, user_id=f"{ns}-u-target", properties={key: hostile})])
    tree = And(
        (
            Trait("ns", Compare("=", ns)),
            Trait(hostile, Compare("=", "yes")),
            Event(hostile, (Property(key, Compare("contains", hostile)),)),
        )
    )
    sql, params = compile_audience(tree, now)
    rows = select(ch, sql, params)
    assert rows == [(target,)]


def test_in_lists_above_the_cap_are_refused_before_sql(ch: Client) -> None:
    from activation.audiences.errors import InvalidDefinition
    from activation.audiences.parser import parse

    with pytest.raises(InvalidDefinition, match="at most 1000 values"):
        parse("trait('a') in (" + ", ".join(str(i) for i in range(1001)) + ")")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM url('http://127.0.0.1:9/x', CSV, 'a String')",
        "SELECT * FROM file('/etc/passwd', LineAsString)",
        "SELECT * FROM remote('127.0.0.1:9', system.one)",
        "SELECT * FROM s3('http://127.0.0.1:9/magpie-bucket/k.csv', CSV, 'a String')",
    ],
)
def test_read_settings_refuse_table_functions_on_chdb(ch: Client, sql: str) -> None:
    with pytest.raises(DatabaseError, match=r"READONLY|readonly"):
        select(ch, sql, {})
    ch.command("CREATE TABLE IF NOT EXISTS audience_probe (a String) ENGINE = Memory")  # still writable
    ch.command("DROP TABLE IF EXISTS audience_probe")


def test_read_settings_are_only_used_on_selects(ch: Client) -> None:
    """On chdb, read-only settings given to a non-SELECT stick to the client's session."""
    with pytest.raises(ValueError, match="SELECT statements only"):
        select(ch, "INSERT INTO audience_runs (audience_id) VALUES ('x')", {})


@pytest.mark.parametrize(
    ("limits", "sql", "error"),
    [
        ({"max_execution_time": 1}, "SELECT count() FROM numbers(100000000000)", "TIMEOUT_EXCEEDED"),
        (
            {"max_memory_usage": 20_000_000},
            "SELECT length(groupArray(toString(number))) FROM numbers(10000000)",
            "MEMORY_LIMIT_EXCEEDED",
        ),
        ({}, "SELECT number FROM numbers(200000)", "TOO_MANY_ROWS_OR_BYTES"),
    ],
)
def test_query_limits_are_enforced_on_chdb(ch: Client, limits: dict[str, int], sql: str, error: str) -> None:
    with pytest.raises(DatabaseError, match=error):
        ch.query(sql, settings={**READ_SETTINGS, **limits})
    ch.command("SELECT 1")
