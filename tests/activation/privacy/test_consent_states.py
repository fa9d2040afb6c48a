# ruff: noqa: F811  (the world fixture is imported by name and then requested as a parameter)
"""Consent states (0013): a profile's consent through its identifiers' pair states — the pair rule
(user_id's profile first) with a shared anonymous id, reads bounded by the profile's pairs whatever the
history, the one-time backfill of events older than the view, and erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.identity.stitching import stitch_incremental
from activation.privacy import consent_states
from activation.privacy.consent import desired_sql, latest_consent, latest_sql
from activation.privacy.person import Person
from activation.profiles_api import reads
from tests.activation.identity.conftest import BASE, World, world  # noqa: F401
from tests.services import job_ctx

OLD = datetime(2020, 1, 1, tzinfo=UTC)  # an insertion time before the view existed


def consent(world: World, t: float, prefs: dict[str, bool], **ids: str) -> dict[str, Any]:
    return {**world.event("track", t, event="Consent", **ids), "consent": orjson.dumps(prefs).decode()}


def test_the_newest_signal_of_the_profiles_own_pairs_wins(ch: Client, world: World) -> None:
    world.insert(
        world.event("identify", 0, user="u1", anon="a1"),
        consent(world, 1, {"ads": True}, anon="a1"),  # anonymous, before the identify's stitch
        consent(world, 5, {"ads": False}, user="u1", anon="a2"),
        world.event("identify", 6, user="u2", anon="a1"),  # a shared device: a1 now also u2's
        consent(world, 9, {"ads": True, "email": True}, user="u2", anon="a1"),  # u2's, not u1's
    )
    stitch_incremental(ch, datetime.now(UTC))
    one, two = world.profile_of("user_id", world.id("u1")), world.profile_of("user_id", world.id("u2"))
    assert one and two and one != two
    assert latest_consent(ch, one) == {"categoryPreferences": {"ads": False}, "updated_at": _at(5)}
    assert latest_consent(ch, two) == {
        "categoryPreferences": {"ads": True, "email": True},
        "updated_at": _at(9),
    }
    document = reads.document(ch, Identifier("user_id", world.id("u1")))
    assert document is not None and document["consent"]["categoryPreferences"] == {"ads": False}


def test_the_read_is_bounded_by_the_profiles_pairs_not_its_history(ch: Client, world: World) -> None:
    world.insert(
        world.event("identify", 0, user="u1", anon="a1"), consent(world, 1, {"ads": True}, anon="a1")
    )
    stitch_incremental(ch, datetime.now(UTC))
    pid, sql = world.profile_of("user_id", world.id("u1")), latest_sql("{p:String}")
    plan = "\n".join(str(r[0]) for r in ch.query(f"EXPLAIN {sql}", parameters={"p": pid}).result_rows)
    assert "consent_states" in plan and "magpie.events" not in plan  # no event is read
    before = ch.query(sql, parameters={"p": pid})
    world.insert(*(consent(world, 10 + n, {"ads": n % 2 == 0}, user="u1", anon="a1") for n in range(3000)))
    after = ch.query(sql, parameters={"p": pid})
    assert [r[0] for r in after.result_rows] == ['{"ads":false}']  # the newest of 3,001 signals
    # 3,000 more events of the profile: at most the new part's granule more (1,024-row granules)
    assert int(after.summary["read_rows"]) <= int(before.summary["read_rows"]) + 1024, after.summary


async def test_backfill_folds_older_events_in_once(ch: Client, world: World) -> None:
    world.insert({**consent(world, 1, {"ads": True}, user="u1"), "inserted_at": OLD})
    world.insert(world.event("identify", 0, user="u1", anon="a1"))
    stitch_incremental(ch, datetime.now(UTC))
    pid = world.profile_of("user_id", world.id("u1"))
    ch.command(f"TRUNCATE TABLE {consent_states.TABLE}")  # as if stored before 0013's view
    assert latest_consent(ch, pid) is None
    assert await consent_states.backfill_consent_states(job_ctx(ch)) == {"backfilled": True}  # the job
    assert latest_consent(ch, pid) == {"categoryPreferences": {"ads": True}, "updated_at": _at(1)}
    assert consent_states.backfill(ch, datetime.now(UTC)) is False  # marked: once


def test_forget_erases_the_persons_pairs(ch: Client, world: World) -> None:
    world.insert(
        consent(world, 1, {"ads": True}, user="u1", anon="a1"), consent(world, 2, {"x": True}, anon="k")
    )
    person = Person(frozenset(), frozenset({Identifier("user_id", world.id("u1"))}))
    assert consent_states.forget(ch, person) == {
        consent_states.TABLE: 2
    }  # both identifiers' rows of the pair
    left = ch.query(
        "SELECT identifier_value FROM consent_states WHERE identifier_value IN {v:Array(String)}",
        parameters={"v": [world.id(v) for v in ("u1", "a1", "k")]},
    ).result_rows
    assert left == [(world.id("k"),)]


def _at(t: float) -> datetime:
    return (BASE + timedelta(seconds=t)).replace(tzinfo=None)  # as the client returns UTC columns


def test_a_destinations_consent_gate_reads_the_pair_states_not_the_events(ch: Client, world: World) -> None:
    """desired_sql (what a destination with a consent category may hold) read every consent event
    through the profile_events view before; now the pair states, with the same answer."""
    world.insert(
        world.event("identify", 0, user="g1", anon="ga1"),
        consent(world, 1, {"ads": True}, anon="ga1"),
        consent(world, 2, {"ads": False}, user="g1"),  # the newer signal of g1's profile
        world.event("identify", 0, user="g2", anon="ga2"),
        consent(world, 3, {"ads": True}, anon="ga2"),
        world.event("identify", 0, user="g3", anon="ga3"),  # no signal at all
    )
    stitch_incremental(ch, datetime.now(UTC))
    people = [world.profile_of("user_id", world.id(u)) for u in ("g1", "g2", "g3")]
    members = "SELECT arrayJoin({m:Array(String)}) AS profile_id"
    params = {"m": people, "cat": "ads"}

    def desired(default: str) -> set[str]:
        sql = desired_sql(members, "ads", default)
        plan = "\n".join(str(r[0]) for r in ch.query(f"EXPLAIN {sql}", parameters=params).result_rows)
        assert "consent_states" in plan and "magpie.events" not in plan, plan
        return {str(r[0]) for r in ch.query(sql, parameters=params).result_rows}

    assert desired("deny") == {people[1]}  # granted only
    assert desired("allow") == {people[1], people[2]}  # all but the refusal
