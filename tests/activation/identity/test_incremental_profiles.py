"""Incremental profiles (issue 12 item 1): profiles are rebuilt from per-pair aggregate states, so a
tick reads what the touched profile holds, not its event history; windowed traits slide by day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity import profiles, states, store
from activation.identity.computed import ComputedTrait
from activation.identity.identifiers import Identifier
from activation.identity.lookup import lookup
from activation.identity.stitching import stitch_incremental
from activation.profiles_api import reads
from tests.activation.identity.conftest import BASE, World


class CountingClient:
    """The real client, adding up the rows ClickHouse reports it read for each statement."""

    def __init__(self, ch: Client) -> None:
        self.ch = ch
        self.read_rows = 0

    def command(self, sql: str, **kw: Any) -> Any:
        result = self.ch.command(sql, **kw)
        self.read_rows += int(getattr(result, "summary", {}).get("read_rows", 0))
        return result

    def query(self, sql: str, **kw: Any) -> Any:
        result = self.ch.query(sql, **kw)
        self.read_rows += int(result.summary.get("read_rows", 0))
        return result


def test_a_tick_reads_the_profiles_states_not_its_event_history(world: World) -> None:
    history = [
        world.event("track", day * 86_400 + i * 60, anon="a1", event="Viewed", properties={"n": i})
        for day in range(4)
        for i in range(500)
    ]
    world.insert(*history, world.event("identify", 10, anon="a1", user="u1", traits={"plan": "pro"}))
    stitch_incremental(world.ch, datetime.now(UTC))
    world.insert(
        world.event("track", 5 * 86_400, anon="a1", event="Order Completed", properties={"revenue": 7})
    )
    profile = lookup(world.ch, Identifier("user_id", world.id("u1")))
    counting = CountingClient(world.ch)
    profiles.recompute(counting, [profile], store.run_version(), datetime.now(UTC), [])  # type: ignore[arg-type]
    doc = reads.profile_document(world.ch, profile)["computed_traits"]
    assert doc["event_count"] == 2002 and doc["lifetime_revenue"] == 7.0
    assert doc["session_count"] == 5  # one per day of history (4) and the order on day 5
    # 2,002 events of this profile alone; the states are a handful of rows per pair, event and day.
    # The session's store is shared: other tests' rows fill the same small granules (about 700 rows
    # read after the whole suite, ~150 alone), so the bound is "fewer than its own history".
    assert counting.read_rows < 1500, counting.read_rows


def test_sessions_traits_and_aggregates_merge_across_pairs(world: World) -> None:
    definitions = [
        ComputedTrait("spent", "sum", "Order Completed", "price"),
        ComputedTrait("cheapest", "min", "Order Completed", "price"),
        ComputedTrait("dearest", "max", "Order Completed", "price"),
        ComputedTrait("mean", "avg", "Order Completed", "price"),
    ]
    for definition in definitions:
        store.write_definition(world.ch, definition, datetime.now(UTC))
    world.insert(
        world.event("track", 0, anon="a1", event="Order Completed", properties={"price": 4}),
        world.event("identify", 600, anon="a1", user="u1", traits={"plan": "free"}),
        # the other browser: within 30 min of a1's identify, so the same session once merged
        world.event("track", 1500, anon="a2", event="Order Completed", properties={"price": -3}),
        world.event("track", 9000, anon="a2", event="Order Completed", properties={"label": "x"}),
        world.event("identify", 9100, anon="a2", user="u1", traits={"plan": "pro"}),
    )
    stitch_incremental(world.ch, datetime.now(UTC))
    doc = reads.profile_document(world.ch, lookup(world.ch, Identifier("user_id", world.id("u1"))))
    computed = doc["computed_traits"]
    assert computed["session_count"] == 2 and computed["event_count"] == 5
    # the event without a numeric price counts as 0, as JSONExtractFloat reads it
    assert (computed["spent"], computed["cheapest"], computed["dearest"]) == (1.0, -3.0, 4.0)
    assert abs(computed["mean"] - 1 / 3) < 1e-9
    assert doc["traits"]["plan"]["value"] == "pro"


def test_a_windowed_trait_drops_a_day_that_left_its_window(world: World) -> None:
    store.write_definition(world.ch, ComputedTrait("recent_orders", "count", "Order Completed", "", 1), BASE)
    today = datetime.now(UTC)
    yesterday = (today - timedelta(days=1) - BASE).total_seconds()
    world.insert(world.event("track", yesterday, anon="a1", user="u1", event="Order Completed"))
    stitch_incremental(world.ch, datetime.now(UTC))
    profile = lookup(world.ch, Identifier("user_id", world.id("u1")))
    assert reads.profile_document(world.ch, profile)["computed_traits"]["recent_orders"] == 1.0
    # no new event for this profile: the first tick of a later day recomputes it anyway
    stitch_incremental(world.ch, datetime.now(UTC) + timedelta(days=1))
    assert "recent_orders" not in reads.profile_document(world.ch, profile)["computed_traits"]


class StatementRows:
    """The real client, keeping the rows ClickHouse read (X-ClickHouse-Summary) per statement."""

    def __init__(self, ch: Client) -> None:
        self.ch = ch
        self.rows: list[tuple[str, int]] = []

    def query(self, sql: str, **kw: Any) -> Any:
        result = self.ch.query(sql, **kw)
        self.rows.append((sql, int(result.summary.get("read_rows", 0))))
        return result

    def read_by(self, statement: str) -> int:
        matching = [rows for sql, rows in self.rows if statement in sql]
        assert matching, statement
        return sum(matching)


def test_the_summary_counts_the_rows_read_from_storage(ch: Client) -> None:
    # what the read bounds below are measured with: rows read, not rows returned
    assert int(ch.query("SELECT count() FROM numbers(25000)").summary["read_rows"]) == 25_000


def test_a_profile_row_reads_a_row_per_pair_and_event_not_one_per_day_of_history(world: World) -> None:
    days = 1_200
    world.insert(*[world.event("track", day * 86_400, anon="a1", event="Viewed") for day in range(days)])
    world.insert(world.event("identify", days * 86_400, anon="a1", user="u1"))
    stitch_incremental(world.ch, datetime.now(UTC))
    profile = lookup(world.ch, Identifier("user_id", world.id("u1")))
    definitions = [ComputedTrait("views", "count", "Viewed")]
    counting = StatementRows(world.ch)
    profiles.recompute(counting, [profile], store.run_version(), datetime.now(UTC), definitions)  # type: ignore[arg-type]
    doc = reads.profile_document(world.ch, profile)["computed_traits"]
    assert doc["event_count"] == days + 1 and doc["session_count"] == days + 1 and doc["views"] == days
    # the day states hold 1,200 rows for this pair alone; the pair states two (Viewed, identify)
    assert counting.read_by("INSERT INTO profiles") < 400, counting.rows
    assert counting.read_by("INSERT INTO profile_computed_traits (profile_id, name") < 400, counting.rows


def _pair_totals(ch: Client, table: str, anon: str) -> tuple[Any, ...]:
    sql = (
        "SELECT event, sum(events), min(first_seen), max(last_seen), sum(revenue),"
        " arraySort(groupArrayArray(sessions)), sumMap(prop_sum) FROM {t:Identifier}"
        " WHERE anonymous_id = {a:String} GROUP BY event ORDER BY event"
    )
    return tuple(ch.query(sql, parameters={"t": table, "a": anon}).result_rows)


def test_pair_states_of_events_stored_before_their_view_are_backfilled_once(world: World) -> None:
    anon = world.id("a-old")
    old = datetime(2000, 1, 1, tzinfo=UTC)  # inserted before the views existed (an upgrade)
    rows = [
        world.event("track", i * 3_600, anon="a-old", event=e, properties={"revenue": i})
        for i, e in enumerate(["Viewed", "Order Completed", "Viewed"] * 3)
    ]
    world.insert(*[{**row, "inserted_at": old} for row in rows])
    drop = "ALTER TABLE {t:Identifier} DELETE WHERE anonymous_id = {a:String} SETTINGS mutations_sync = 2"
    try:
        expected = _pair_totals(world.ch, "profile_event_states", anon)
        assert [r[1] for r in expected] == [3, 6]
        world.ch.command(drop, parameters={"t": "profile_pair_states", "a": anon})  # as before 0014
        assert states.ensure_pairs_backfilled(world.ch, datetime.now(UTC), states.EPOCH) >= len(rows)
        assert _pair_totals(world.ch, "profile_pair_states", anon) == expected
        assert states.ensure_pairs_backfilled(world.ch, datetime.now(UTC), states.EPOCH) == 0  # once
        assert _pair_totals(world.ch, "profile_pair_states", anon) == expected
    finally:  # no later test's backfill may count these old events again
        for table in ("events", "profile_event_states", "profile_pair_states", "profile_trait_states"):
            world.ch.command(drop, parameters={"t": table, "a": anon})


def test_sessions_join_at_exactly_thirty_minutes_and_split_a_millisecond_later(world: World) -> None:
    half_hour = 1_800
    world.insert(
        world.event("track", 0, anon="a1", event="Viewed"),
        world.event("track", 600, anon="a1", event="Viewed"),  # a1: one span 0..600
        world.event("track", 300, anon="a2", user="u1", event="Clicked"),  # inside a1's span
        world.event("track", 600 + half_hour, anon="a2", user="u1", event="Clicked"),  # exactly 30 min: joins
        world.event(
            "identify", 600 + 2 * half_hour + 0.001, anon="a1", user="u1"
        ),  # 30 min + 1 ms: a new one
        world.event("track", 10 * half_hour, anon="a1", user="u1", event="Viewed"),  # far later: a new one
    )
    stitch_incremental(world.ch, datetime.now(UTC))
    profile = lookup(world.ch, Identifier("user_id", world.id("u1")))
    assert profile == lookup(world.ch, Identifier("anonymous_id", world.id("a2")))
    assert reads.profile_document(world.ch, profile)["computed_traits"]["session_count"] == 3
