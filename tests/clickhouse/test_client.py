"""The client factory's fast string-array binding: the same text clickhouse-connect would send, and
the same strings back from a real ClickHouse."""

from __future__ import annotations

from clickhouse_connect.driver.binding import format_bind_value
from clickhouse_connect.driver.client import Client

from clickhouse.client import Strings

AWKWARD = [
    "",
    "plain",
    "o'brien",
    "back\\slash",
    "tab\there",
    "new\nline",
    "cr\rret",
    "tick`tick",
    "quote\\'both",
    "zero\x00byte",
    "ünïcødé ✓ 🦜",
    "{p:Array(String)}",
    "a', 'b",
]


def test_the_text_is_what_clickhouse_connect_sends_for_a_list_of_strings() -> None:
    assert str(Strings(AWKWARD)) == format_bind_value(AWKWARD)
    assert str(Strings([])) == format_bind_value([]) == "[]"
    assert len(Strings(AWKWARD)) == len(AWKWARD)


def test_clickhouse_reads_back_every_string_as_sent(ch: Client) -> None:
    rows = ch.query("SELECT arrayJoin({a:Array(String)})", parameters={"a": Strings(AWKWARD)}).result_rows
    assert [r[0] for r in rows] == AWKWARD
    found = ch.query(
        "SELECT count() FROM (SELECT arrayJoin(['x', 'o''brien']) AS v) WHERE v IN {a:Array(String)}",
        parameters={"a": Strings(AWKWARD)},
    ).result_rows
    assert found == [(1,)]
