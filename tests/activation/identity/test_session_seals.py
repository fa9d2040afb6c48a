"""Sessions counted incrementally (issue 12 item 1, migration 0019): a stitch tick counts a profile's
sessions from its row (the latest session's span) and the tick's events, and counts again from all
the states only on a late event, a merge or unmerge, or outside a tick. Every count equals the walk
over the profile's events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity import profiles, sessions, states, store
from activation.identity.stitching import stitch_full, stitch_incremental
from tests.activation.identity.conftest import BASE, World

_RECOUNT_MARK = "groupArrayArray(sessions)"  # only a recount reads the spans of the states


class Recording:
    """The real client, keeping the SQL of each read."""

    def __init__(self, ch: Client) -> None:
        self.ch = ch
        self.read: list[str] = []

    def query(self, sql: str, **kw: Any) -> Any:
        self.read.append(sql)
        return self.ch.query(sql, **kw)

    def command(self, sql: str, **kw: Any) -> Any:
        self.read.append(sql)
        return self.ch.command(sql, **kw)

    def insert(self, *args: Any, **kw: Any) -> Any:
        return self.ch.insert(*args, **kw)

    def recounted(self) -> bool:
        return any(_RECOUNT_MARK in sql for sql in self.read)


def _walk(offsets: list[float]) -> int:
    """Sessions of events at these offsets (s): a new one after a gap of more than 30 minutes."""
    ordered = sorted(offsets)
    return sum(1 for i, t in enumerate(ordered) if i == 0 or t - ordered[i - 1] > 1800)


def _latest(offsets: list[float]) -> tuple[float, float]:
    """The first and last event of the latest session."""
    ordered = sorted(offsets)
    begins = [i for i, t in enumerate(ordered) if i == 0 or t - ordered[i - 1] > 1800]
    return ordered[begins[-1]], ordered[-1]


def _row(ch: Client, profile: str) -> tuple[int, datetime, datetime, int]:
    sql = (
        "SELECT session_count, sessions_start, sessions_end, sessions_key FROM profiles FINAL"
        " WHERE profile_id = {p:String} AND deleted = 0"
    )
    count, start, end, key = ch.query(sql, parameters={"p": profile}).result_rows[0]
    return int(count), start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), int(key)


def _tick(world: World) -> Recording:
    recording = Recording(world.ch)
    stitch_incremental(recording, datetime.now(UTC))  # type: ignore[arg-type]
    return recording


def test_ticks_count_sessions_as_the_walk_over_the_events_does(world: World) -> None:
    a1: list[float] = []

    def send(*offsets: float, anon: str = "a1", **kw: Any) -> None:
        world.insert(
            *(world.event(kw.pop("type", "track"), t, anon=anon, event="Viewed", **kw) for t in offsets)
        )
        if anon == "a1":
            a1.extend(offsets)

    steps: list[tuple[tuple[float, ...], bool]] = [
        ((0, 600), True),  # a new profile: counted from its states
        ((1200,), False),  # extends the latest session
        ((3000,), False),  # exactly 30 minutes after the last event: the same session
        ((10_000,), False),  # a new session
        ((20_000, 20_500), False),  # another
        ((6_000,), True),  # late, between two sessions: a session of its own, counted again
        ((4_500,), True),  # late, within 30 minutes of both neighbours: joins two sessions into one
    ]
    for offsets, recounts in steps:
        send(*offsets)
        recording = _tick(world)
        profile = world.profile_of("anonymous_id", world.id("a1"))
        count, start, end, key = _row(world.ch, profile)
        assert count == _walk(a1), (offsets, count, _walk(a1))
        assert recording.recounted() is recounts, offsets
        first, last = _latest(a1)
        assert (start, end) == (BASE + timedelta(seconds=first), BASE + timedelta(seconds=last)) and key != 0
    assert _walk(a1) == 3  # 0..6000 joined by the late 4,500; 10,000; 20,000..20,500

    # The other browser: its own profile, then both identify as u1 (a merge: counted again).
    a2 = [15_000.0, 30_000.0]  # 15,000: a session of a1's past, once merged
    send(*a2, anon="a2")
    _tick(world)
    assert _row(world.ch, world.profile_of("anonymous_id", world.id("a2")))[0] == 2
    send(30_150, type="identify", user="u1")  # after both latest sessions began
    send(30_100, anon="a2", type="identify", user="u1")
    a2.append(30_100)
    recording = _tick(world)
    merged = world.profile_of("user_id", world.id("u1"))
    assert (
        merged
        == world.profile_of("anonymous_id", world.id("a2"))
        == world.profile_of("anonymous_id", world.id("a1"))
    )
    assert recording.recounted()
    assert _row(world.ch, merged)[0] == _walk(a1 + a2) == 5  # a2's 15,000 between two of a1's

    send(30_200, user="u1")  # after the merge: from the row again
    recording = _tick(world)
    assert not recording.recounted()
    assert _row(world.ch, merged)[0] == _walk(a1 + a2) == 5
    send(40_000, anon="a2")
    a2.append(40_000)
    recording = _tick(world)
    assert not recording.recounted() and _row(world.ch, merged)[0] == _walk(a1 + a2) == 6

    # A third browser with a session in the profile's past joins it, whose id stays (its canonical
    # identifier is u1's): the identifiers changed, so the profile is counted again.
    send(25_000, anon="a3")
    _tick(world)
    send(40_100, anon="a3", type="identify", user="u1")
    recording = _tick(world)
    assert world.profile_of("anonymous_id", world.id("a3")) == merged and recording.recounted()
    assert _row(world.ch, merged)[0] == _walk(a1 + a2 + [25_000, 40_100]) == 7


def _plant(ch: Client, anon: str, at: datetime) -> None:
    """A session span in the states with no event behind it: only a count from the states sees it."""
    ch.insert(
        states.PAIR_STATES,
        [["", anon, "planted", at, at, 0, 0.0, 0, 0, [(at, at)]]],
        column_names=[
            "user_id",
            "anonymous_id",
            "event",
            "first_seen",
            "last_seen",
            "events",
            "revenue",
            "ua_events",
            "bot_ua_events",
            "sessions",
        ],
    )


def test_a_tick_reads_no_earlier_session_of_the_profile(world: World) -> None:
    for anon, restitch in (("a1", stitch_incremental), ("a2", stitch_full)):
        world.insert(*(world.event("track", t, anon=anon, event="Viewed") for t in (0, 10_000, 20_000)))
        restitch(world.ch, datetime.now(UTC))
        profile = world.profile_of("anonymous_id", world.id(anon))
        before = _row(world.ch, profile)[0]
        assert before == 3
        _plant(world.ch, world.id(anon), BASE + timedelta(seconds=15_000))  # between two sessions
        world.insert(world.event("track", 20_600, anon=anon, event="Viewed"))
        recording = _tick(world)
        # the planted span lies in the profile's history: a tick counting from the row never reads it
        # (after a full restitch too: its keys are the ones a tick computes)
        assert not recording.recounted() and _row(world.ch, profile)[0] == before, anon
        profiles.recompute(world.ch, [profile], store.run_version(), datetime.now(UTC), [])
        assert _row(world.ch, profile)[0] == before + 1  # counted again from the states: there it is
        world.insert(world.event("track", 40_000, anon=anon, event="Viewed"))
        _tick(world)
        assert _row(world.ch, profile)[0] == before + 2  # and kept from the row on


def test_the_keys_of_a_restitch_and_of_a_tick_agree_with_owned_pairs(world: World) -> None:
    # "null" is a blocked user id: its pairs belong to the anonymous id's profile (an owned pair)
    world.insert(
        world.event("identify", 0, anon="a1", user="u1"),
        world.event("track", 10, anon="a2", user="!null", event="Viewed"),
        world.event("track", 20, anon="a2", event="Viewed"),
    )
    stitch_incremental(world.ch, datetime.now(UTC))
    ids = sorted({world.profile_of("anonymous_id", world.id(a)) for a in ("a1", "a2")})
    scope = states.scope_of(world.ch, ids)
    assert scope.unowned == [("null", world.id("a2"))]
    scoped = sessions.counted(world.ch, scope, None)
    everything = {str(p): int(k) for p, k in world.ch.query(sessions.KEYS_ALL).result_rows}
    assert {p: scoped[p].key for p in ids} == {p: everything[p] for p in ids}
    assert len({scoped[p].key for p in ids}) == 2 and 0 not in everything.values()
    # the owned pair is part of its profile's key
    owner = world.profile_of("anonymous_id", world.id("a2"))
    without = states.Scope(ids, scope.members, [])
    assert sessions.counted(world.ch, without, None)[owner].key != scoped[owner].key
