"""The client factory's fast string-array binding: the same text clickhouse-connect would send, and
the same strings back from a real ClickHouse."""

from __future__ import annotations

from clickhouse_connect.driver.binding import format_bind_value
from clickhouse_connect.driver.client import Client

from clickhouse.client import Strings, fit, parts, rendered_size

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


def test_arrays_past_a_form_field_are_bound_in_parts_with_the_same_result(ch: Client) -> None:
    values = [f"v{n:05d}-{chr(39) if n % 7 == 0 else ''}" for n in range(3000)]
    pairs = [(v, str(n)) for n, v in enumerate(values)]
    sql = (
        "SELECT count(), sum(length(transform(x, {s:Array(String)}, {s:Array(String)}, ''))),"
        " countIf((x, toString(n)) IN {t:Array(Tuple(String, String))})"
        " FROM (SELECT arrayJoin({s:Array(String)}) AS x, indexOf({s:Array(String)}, x) - 1 AS n)"
    )
    params: dict[str, object] = {"s": Strings(values), "t": pairs}
    whole = ch.query(sql, parameters=params).result_rows
    cut_sql, cut = fit(sql, params, max_bytes=4_000)
    assert set(cut) >= {"s__0", "s__1", "t__0", "t__1"} and "s" not in cut and "t" not in cut
    assert all(rendered_size(v) <= 4_000 for v in cut.values())
    assert ch.query(cut_sql, parameters=cut).result_rows == whole == [(3000, sum(map(len, values)), 3000)]
    assert fit(sql, params) == (sql, params)  # within the limit: unchanged


def test_parts_are_measured_as_sent_hostile_quotes_render_at_twice_their_length() -> None:
    # identifiers come from the public write key: a value of quotes or backticks renders at twice its
    # length, which Python's repr (double-quoted, nothing escaped) would not show
    hostile = ["'" * 250 + f"{n}" for n in range(40)] + ["`" * 200 + f"{n}" for n in range(10)]
    pairs = [(v, v) for v in hostile]
    assert rendered_size(pairs) == len(format_bind_value(pairs, top_level=False).encode())
    assert rendered_size(pairs) > 1.8 * len(str(pairs))
    _, cut = fit("SELECT {t:Array(Tuple(String, String))}", {"t": pairs}, max_bytes=4_000)
    assert len(cut) > 1 and all(rendered_size(v) <= 4_000 for v in cut.values())
    assert [p for k in sorted(cut, key=lambda k: int(k.split("__")[1])) for p in cut[k]] == pairs  # type: ignore[attr-defined]
    for part in parts(hostile, max_bytes=4_000):
        assert len(format_bind_value(part).encode()) <= 4_000
