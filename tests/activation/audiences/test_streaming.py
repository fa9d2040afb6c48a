"""Streaming audiences against real ClickHouse: modes and their reasons, micro-batches that touch only
the profiles given, and the window sweep's event → profile resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from activation.audiences import membership, streaming
from activation.audiences.compiler import compile_audience
from activation.audiences.parser import parse
from activation.audiences.store import Audience
from activation.identity.identifiers import Identifier
from activation.identity.lookup import lookup
from activation.identity.resolve import profiles_of_events
from activation.identity.states import scope_of
from activation.identity.stitching import stitch_incremental
from tests.activation.audiences.audience_rows import event_row, insert_events, namespace, person
from tests.activation.identity.conftest import BASE, World


def audience(key: str, query: str) -> Audience:
    return Audience(id=f"id-{key}", key=key, name=key, definition=parse(query))


def test_modes_name_the_condition_that_keeps_an_audience_in_batch() -> None:
    found = streaming.modes(
        [
            audience("pro", "trait('plan') = 'pro' and event('Order').within(7 days).count() >= 2"),
            audience(
                "pro_de",
                "audience('pro') and event('Viewed').where(enrichment('geo_country') = 'DE').count() >= 1",
            ),
            audience("orphan", "audience('gone') or trait('x').exists()"),
            audience("heir", "not audience('orphan')"),
        ]
    )
    assert found["id-pro"] == found["id-pro_de"] == streaming.Mode("streaming")
    assert found["id-orphan"] == streaming.Mode("batch", "audience('gone') is not a live audience")
    assert found["id-heir"] == streaming.Mode("batch", "audience('orphan') is a batch audience")
    ordered = streaming.streaming_order(
        [audience("b", "audience('a')"), audience("a", "trait('x').exists()")]
    )
    assert [a.key for a in ordered] == ["a", "b"]


def test_a_micro_batch_changes_only_the_profiles_given(ch: Client) -> None:
    world = World(ch)
    ns = world.uid
    for n in (1, 2):
        world.insert(world.event("identify", n, anon=f"a{n}", user=f"u{n}", traits={"plan": "pro", "ns": ns}))
    stitch_incremental(ch, datetime.now(UTC))
    p1, p2 = (lookup(ch, Identifier("user_id", world.id(f"u{n}"))) for n in (1, 2))
    pro = audience(f"pro_{ns[:-1]}", f"trait('plan') = 'pro' and trait('ns') = '{ns}'")
    run = streaming.evaluate(ch, pro, [p1], datetime.now(UTC))
    assert run is not None and (run["entered"], run["exited"], run["members"]) == (1, 0, 1)
    assert membership.members(ch, pro.id) == [p1]  # p2 qualifies too, but was not touched
    assert streaming.evaluate(ch, pro, [p1], datetime.now(UTC)) is None  # nothing changed: no run
    world.insert(world.event("identify", 9, user="u1", traits={"plan": "free"}))
    stitch_incremental(ch, datetime.now(UTC))
    run = streaming.evaluate(ch, pro, [p1, p2], datetime.now(UTC))
    assert run is not None and (run["entered"], run["exited"], run["members"]) == (1, 1, 1)
    assert membership.members(ch, pro.id) == [p2]
    history = membership.diff(ch, pro.id, datetime.fromisoformat(run["computed_at"]))
    assert sorted(history) == sorted([(p1, "exited"), (p2, "entered")])


def test_the_sweep_finds_profiles_whose_windowed_events_cross_a_boundary(ch: Client) -> None:
    world = World(ch)
    world.insert(
        world.event("track", 100, anon="a1", user="u1", event="Order"),
        world.event("track", 900, anon="a2", event="Order"),
        world.event("track", 100, anon="a3", event="Viewed"),
    )
    stitch_incremental(ch, datetime.now(UTC))
    p1 = lookup(ch, Identifier("user_id", world.id("u1")))
    found = profiles_of_events(
        ch, "event", "Order", BASE + timedelta(seconds=50), BASE + timedelta(seconds=150)
    )
    assert p1 in found and lookup(ch, Identifier("anonymous_id", world.id("a2"))) not in found
    assert lookup(ch, Identifier("anonymous_id", world.id("a3"))) not in found


def test_event_counts_of_a_bound_scope_match_the_full_definition(ch: Client) -> None:
    """A micro-batch reads its profiles' events by their bound identifiers (identity.states.Scope),
    in one pass: the same members as the full run over every resolution case — anonymous only, a
    user id mapped to no profile (the anonymous id's profile owns it), a user id mapped elsewhere
    (its profile wins), bots, a property filter, a window, and a count that holds for zero events."""
    ns = namespace()
    a, b, c = person(ch, ns, "a"), person(ch, ns, "b"), person(ch, ns, "c")
    old = datetime.now(UTC) - timedelta(days=20)
    insert_events(ch, [
        event_row(event="Clicked", anonymous_id=f"{ns}-a-a", properties={"n": 5}),
        event_row(event="Clicked", user_id=f"{ns}-u-nobody", anonymous_id=f"{ns}-a-a", properties={"n": 1}),
        event_row(event="Clicked", user_id=f"{ns}-u-b", anonymous_id=f"{ns}-a-a", properties={"n": 7}),
        event_row(event="Clicked", user_id=f"{ns}-u-a", is_bot=1),
        event_row(event="Clicked", user_id=f"{ns}-u-c", timestamp=old),
        event_row(event="Clicked", user_id=f"{ns}-u-c", timestamp=old),
        event_row(event="Clicked", user_id=f"{ns}-u-c"),
        event_row(event="Clicked", user_id=f"{ns}-u-stray", anonymous_id=f"{ns}-a-stray"),
    ])  # fmt: skip
    queries = [
        "event('Clicked').count() >= 2",
        "event('Clicked').count() = 1",
        "event('Clicked').within(7 days).count() >= 1",
        "event('Clicked').count() >= 3 and not event('Clicked').within(7 days).count() >= 2",
        "event('Clicked').where(property('n') > 4).count() >= 1",
        "event('Clicked').count() < 1",
    ]
    now = datetime.now(UTC)
    scope = [a, b, c]
    for query in queries:
        definition = parse(f"trait('ns') = '{ns}' and ({query})")
        full_sql, full_params = compile_audience(definition, now)
        full = {str(r[0]) for r in ch.query(full_sql, parameters=full_params).result_rows}
        bound = scope_of(ch, scope).params()
        sql, params = compile_audience(definition, now, profile_ids=scope, scope=bound)
        assert "identity_map" not in sql  # the scope's events are found by its bound identifiers
        scoped = {str(r[0]) for r in ch.query(sql, parameters=params).result_rows}
        assert scoped == full & set(scope), query
    expected = {"event('Clicked').count() >= 2": {a, c}, "event('Clicked').count() = 1": {b}}
    for query, members in expected.items():  # the cases above are not all empty
        definition = parse(f"trait('ns') = '{ns}' and ({query})")
        sql, params = compile_audience(definition, now, profile_ids=scope, scope=scope_of(ch, scope).params())
        assert {str(r[0]) for r in ch.query(sql, parameters=params).result_rows} == members, query
