"""The day states' view (0015) gives exactly the rows of 0009's window-function query it replaced,
for events with many sessions, equal timestamps, several pairs, event names and days, properties
that are numeric, missing or not numbers, user agents and bots; and a view is altered on a cluster
as itself (it has no local table)."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from clickhouse.cluster import render_cluster
from clickhouse.migrations import load_migrations
from tests.activation.identity.conftest import World

_COLUMNS = (
    "user_id, anonymous_id, event, day, first_seen, last_seen, events, revenue, ua_events,"
    " bot_ua_events, arraySort(sessions), prop_sum, prop_min, prop_max, prop_n"
)


def _view_select(version: int, marker: str) -> str:
    migration = next(m for m in load_migrations() if m.version == version)
    statement = next(s for s in migration.statements() if "profile_event_states_mv" in s)
    return statement[statement.index(marker) + len(marker) :].rstrip().rstrip(";")


def _rows(ch: Client, select: str, prefix: str) -> list[tuple[object, ...]]:
    source = "(SELECT * FROM events WHERE startsWith(anonymous_id, {p:String})) AS events"
    body = select.replace("FROM events WHERE", f"FROM {source} WHERE", 1)
    sql = f"SELECT {_COLUMNS} FROM ({body}) ORDER BY user_id, anonymous_id, event, day"
    return list(ch.query(sql, parameters={"p": prefix}).result_rows)


def test_the_day_states_are_those_of_the_window_query_they_replace(world: World) -> None:
    rows = []
    for i in range(600):
        t = i * 300 + (i * 7_919) % 900  # a pair's events 15 to 45 minutes apart, over two days
        props = [{"revenue": i % 9, "n": i}, {"n": "x"}, {}][i % 3]
        rows.append(
            world.event(
                ["track", "page"][i % 5 == 0],
                t - t % 600 if i % 4 == 0 else t,  # some equal timestamps
                anon=f"a{i % 3}",
                user="u1" if i % 2 else "",
                event=["Viewed", "Order Completed"][i % 2],
                properties=props,
                ua="Mozilla" if i % 3 else "",
                is_bot=int(i % 7 == 0),
            )
        )
    world.insert(*rows)
    window_query = _rows(world.ch, _view_select(9, " AS\n"), world.uid)
    assert len(window_query) > 10 and sum(len(r[10]) for r in window_query) > len(window_query)
    assert _rows(world.ch, _view_select(15, "MODIFY QUERY\n"), world.uid) == window_query
    stored = (
        f"SELECT {_COLUMNS} FROM (SELECT user_id, anonymous_id, event, day, min(first_seen) AS first_seen,"
        " max(last_seen) AS last_seen, sum(events) AS events, sum(revenue) AS revenue,"
        " sum(ua_events) AS ua_events, sum(bot_ua_events) AS bot_ua_events,"
        " groupArrayArray(sessions) AS sessions, sumMap(prop_sum) AS prop_sum, minMap(prop_min) AS prop_min,"
        " maxMap(prop_max) AS prop_max, sumMap(prop_n) AS prop_n FROM profile_event_states"
        " WHERE startsWith(anonymous_id, {p:String}) GROUP BY user_id, anonymous_id, event, day)"
        " ORDER BY user_id, anonymous_id, event, day"
    )
    assert list(world.ch.query(stored, parameters={"p": world.uid}).result_rows) == window_query  # the view


def test_a_view_is_altered_on_a_cluster_as_itself() -> None:
    statement = "ALTER TABLE profile_event_states_mv MODIFY QUERY SELECT 1"
    rendered = render_cluster(statement, "prod", "magpie")
    assert rendered == "ALTER TABLE profile_event_states_mv ON CLUSTER prod MODIFY QUERY SELECT 1"
