"""A stitch tick costs what arrived, not what is stored (issue 12 item 1): identity sets are found by
identifier and by insertion time through 0012's tables, and the events overlap is re-read only
when something appeared behind the watermark, so back-to-back ticks do not recompute each other's
profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity import links as link_store
from activation.identity import stitching, store
from activation.identity.identifiers import Identifier
from activation.identity.rules import Rules
from activation.identity.stitching import stitch_incremental
from clickhouse.client import FIELD_BYTES, Strings
from tests.activation.identity.conftest import World

_FILLER = """
INSERT INTO identity_links (ids, timestamp, message_id, source_id, kind, inserted_at)
SELECT [('anonymous_id', concat({tag:String}, toString(number)))], now64(3), '', 'filler', 'import',
       toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
FROM numbers({n:UInt64})
"""
_DROP = "ALTER TABLE {t} DELETE WHERE {w} SETTINGS mutations_sync = 2"


class CountingClient:
    """The real client, adding up the rows ClickHouse reports it read."""

    def __init__(self, ch: Client) -> None:
        self.ch = ch
        self.read_rows = 0

    def query(self, sql: str, **kw: Any) -> Any:
        result = self.ch.query(sql, **kw)
        self.read_rows += int(result.summary.get("read_rows", 0))
        return result


def _forget_filler(ch: Client, tag: str) -> None:
    keys = "link_key IN (SELECT link_key FROM identity_links WHERE source_id = 'filler')"
    ch.command(_DROP.format(t="identity_link_ids", w=f"startsWith(identifier_value, '{tag}') OR {keys}"))
    ch.command(_DROP.format(t="identity_link_log", w=keys))
    ch.command(_DROP.format(t="identity_links", w="source_id = 'filler'"))


def test_a_component_is_found_by_identifier_not_by_scanning_every_set(world: World) -> None:
    tag = world.id("filler-")
    world.ch.command(_FILLER, parameters={"tag": tag, "n": 30_000})
    try:
        world.insert(world.event("identify", 1, anon="a1", user="u1"), world.event("track", 2, anon="a2"))
        stitch_incremental(world.ch, datetime.now(UTC))
        counting = CountingClient(world.ch)
        found = link_store.component_links(
            counting,  # type: ignore[arg-type]
            {Identifier("user_id", world.id("u1"))},
            Rules(),
            100,
        )
        assert found is not None
        assert {i.value for link in found for i in link.ids} == {world.id("a1"), world.id("u1")}
        # 30,000 other sets are stored: a scan reads them all, the lookup a granule or two per round
        assert counting.read_rows < 20_000, counting.read_rows
    finally:
        _forget_filler(world.ch, tag)


def test_back_to_back_ticks_recompute_only_the_new_events_profiles(world: World) -> None:
    world.insert(world.event("track", 1, anon="a1"))
    first = stitch_incremental(world.ch, datetime.now(UTC))
    assert world.profile_of("anonymous_id", world.id("a1")) in first.changed_profiles
    world.insert(world.event("track", 2, anon="a2"))
    second = stitch_incremental(world.ch, datetime.now(UTC))
    # a1's event is within the overlap behind the watermark, but nothing new appeared there
    assert second.changed_profiles == {world.profile_of("anonymous_id", world.id("a2"))}
    assert stitch_incremental(world.ch, datetime.now(UTC)).changed_profiles == frozenset()


def test_an_event_that_appears_behind_the_watermark_is_still_read(world: World) -> None:
    world.insert(world.event("track", 1, anon="a1"))
    stitch_incremental(world.ch, datetime.now(UTC))
    mark = datetime.fromisoformat(
        orjson_loads(store.read_setting(world.ch, stitching.WATERMARK_KEY))["events"]
    )
    late = world.event("identify", 3, anon="a1", user="u1", traits={"plan": "pro"})
    late["inserted_at"] = mark - timedelta(seconds=1)  # an insert in flight while the tick ran
    world.insert(late)
    report = stitch_incremental(world.ch, datetime.now(UTC))
    profile = world.profile_of("user_id", world.id("u1"))
    assert profile == world.profile_of("anonymous_id", world.id("a1")) != ""
    assert profile in report.changed_profiles


def test_sets_stored_before_the_index_existed_are_indexed_once(world: World) -> None:
    ids = [("anonymous_id", world.id("old-a")), ("user_id", world.id("old-u"))]
    row = [
        ids,
        datetime(2025, 1, 1, tzinfo=UTC),
        "m-old",
        "src",
        "identify",
        datetime(2000, 1, 1, tzinfo=UTC),
    ]
    cols = ["ids", "timestamp", "message_id", "source_id", "kind", "inserted_at"]
    world.ch.insert("identity_links", [row], column_names=cols)
    for table in ("identity_link_ids", "identity_link_log"):  # as before migration 0012
        world.ch.command(_DROP.format(t=table, w="1"))
    seed = {Identifier("user_id", world.id("old-u"))}
    assert link_store.component_links(world.ch, seed, Rules(), 100) == []
    assert link_store.ensure_indexed(world.ch, datetime.now(UTC)) == 1
    assert link_store.ensure_indexed(world.ch, datetime.now(UTC)) == 0  # once
    found = link_store.component_links(world.ch, seed, Rules(), 100)
    assert found is not None and [link.message_id for link in found] == ["m-old"]


def orjson_loads(raw: str | None) -> dict[str, Any]:
    import orjson

    assert raw
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


class CallCounter:
    """The real client, counting its reads and its writes (commands, inserts)."""

    def __init__(self, ch: Client) -> None:
        self.ch = ch
        self.reads = 0
        self.writes = 0

    def query(self, sql: str, **kw: Any) -> Any:
        self.reads += 1
        return self.ch.query(sql, **kw)

    def command(self, sql: str, **kw: Any) -> Any:
        self.writes += 1
        return self.ch.command(sql, **kw)

    def insert(self, *args: Any, **kw: Any) -> Any:
        self.writes += 1
        return self.ch.insert(*args, **kw)


def test_an_idle_tick_reads_a_few_rows_and_writes_nothing(world: World) -> None:
    world.insert(world.event("track", 1, anon="a1"))
    stitch_incremental(world.ch, datetime.now(UTC))
    mark = store.read_setting(world.ch, stitching.WATERMARK_KEY)
    counting = CallCounter(world.ch)
    idle = stitch_incremental(counting, datetime.now(UTC))  # type: ignore[arg-type]
    assert idle.changed_profiles == frozenset() and idle.profiles_recomputed == 0
    # the settings (upgrade marks, watermark, rules), its tail, the newest stored set, the window: 4
    # (the whole tick: 12 reads and 2 writes, the identifier extraction among them)
    assert counting.writes == 0 and counting.reads <= 4, (counting.reads, counting.writes)
    assert store.read_setting(world.ch, stitching.WATERMARK_KEY) == mark  # an in-flight insert stays due
    world.insert(world.event("track", 2, anon="a2"))
    after = stitch_incremental(world.ch, datetime.now(UTC))
    assert world.profile_of("anonymous_id", world.id("a2")) in after.changed_profiles


def test_a_new_day_is_not_idle_the_windows_slide(world: World) -> None:
    world.insert(world.event("track", 1, anon="a1"))
    stitch_incremental(world.ch, datetime.now(UTC))
    counting = CallCounter(world.ch)
    stitch_incremental(counting, datetime.now(UTC) + timedelta(days=1))  # type: ignore[arg-type]
    assert counting.writes > 0  # the whole tick ran: at least its watermark was written


class Recording(CallCounter):
    """The real client, keeping each read's SQL and parameters."""

    def __init__(self, ch: Client) -> None:
        super().__init__(ch)
        self.read: list[tuple[str, dict[str, Any]]] = []

    def query(self, sql: str, **kw: Any) -> Any:
        self.read.append((sql, kw.get("parameters") or {}))
        return super().query(sql, **kw)

    def walked(self) -> set[tuple[str, str]]:
        """Every identifier the component walk looked up (links._BY_IDS binds them as `f`)."""
        return {tuple(t) for sql, p in self.read if "FROM identity_link_ids" in sql for t in p["f"]}


def _event_count(ch: Client, profile: str) -> int:
    sql = "SELECT event_count FROM profiles FINAL WHERE profile_id = {p:String} AND deleted = 0"
    return int(ch.query(sql, parameters={"p": profile}).result_rows[0][0])


def test_a_known_identifier_seen_alone_seeds_no_component_walk(world: World) -> None:
    world.insert(world.event("identify", 1, anon="a1", user="u1"))
    stitch_incremental(world.ch, datetime.now(UTC))
    profile = world.profile_of("user_id", world.id("u1"))
    # a1 alone is a new identifier set, but it joins nothing: no walk, no stitch, no rewrite
    world.insert(world.event("track", 2, anon="a1"))
    recording = Recording(world.ch)
    alone = stitch_incremental(recording, datetime.now(UTC))  # type: ignore[arg-type]
    assert recording.walked() == set() and alone.links == 0
    assert profile in alone.changed_profiles and _event_count(world.ch, profile) == 2
    # a new visitor seen alone is no known identifier: it is walked and gets a profile of its own
    world.insert(world.event("track", 3, anon="a1"), world.event("track", 4, anon="a9"))
    recording = Recording(world.ch)
    mixed = stitch_incremental(recording, datetime.now(UTC))  # type: ignore[arg-type]
    assert ("anonymous_id", world.id("a9")) in recording.walked()
    assert ("anonymous_id", world.id("a1")) not in recording.walked()
    stranger = world.profile_of("anonymous_id", world.id("a9"))
    assert stranger != profile and {stranger, profile} <= mixed.changed_profiles
    assert _event_count(world.ch, profile) == 3
    assert world.profile_of("anonymous_id", world.id("a1")) == profile


def _bound_sizes(recording: Recording) -> list[int]:
    """The rendered size of every identifier array the recorded reads bound."""
    return [
        len(str(v).encode())
        for _, params in recording.read
        for v in params.values()
        if isinstance(v, Strings)
    ]


def test_a_recompute_binds_each_array_within_a_form_field(world: World) -> None:
    # three people with 900 browsers each: their anonymous ids (~58 KB rendered each) exceed
    # ClickHouse's 128 KiB form-field limit together, so the chunk is cut; results are unchanged
    people = {f"u{k}": [f"a{k}-{n:04d}-{'x' * 44}" for n in range(900)] for k in range(3)}
    world.insert(*(world.event("track", 1, user=u, anon=a) for u, anons in people.items() for a in anons))
    recording = Recording(world.ch)
    report = stitch_incremental(recording, datetime.now(UTC))  # type: ignore[arg-type]
    owners = {world.profile_of("user_id", world.id(u)) for u in people}
    assert len(owners) == 3 and owners <= report.changed_profiles
    assert all(_event_count(world.ch, p) == 900 for p in owners)
    bound = _bound_sizes(recording)
    assert max(bound) <= FIELD_BYTES, max(bound)
    # the anonymous ids of the three together were bound, cut: one array could not hold them
    assert sum(size for size in bound if size > 40_000) > FIELD_BYTES


def test_one_profile_with_more_identifiers_than_a_form_field_holds_is_bound_in_parts(world: World) -> None:
    # one person with 900 browsers of long anonymous ids (~190 KB rendered): no cut of the scope can
    # help, so each array past the limit is bound as parts joined in SQL (clickhouse.client.fit)
    anons = [f"a-{n:04d}-{'x' * 190}" for n in range(900)]
    world.insert(*(world.event("track", 1 + n * 60, user="u1", anon=a) for n, a in enumerate(anons)))
    recording = Recording(world.ch)
    stitch_incremental(recording, datetime.now(UTC))  # type: ignore[arg-type]
    owner = world.profile_of("user_id", world.id("u1"))
    assert {world.profile_of("anonymous_id", world.id(a)) for a in anons} == {owner}
    assert _event_count(world.ch, owner) == 900
    sql = "SELECT session_count FROM profiles FINAL WHERE profile_id = {p:String} AND deleted = 0"
    assert world.ch.query(sql, parameters={"p": owner}).result_rows[0][0] == 1  # a minute apart: one
    bound = _bound_sizes(recording)
    assert max(bound) <= FIELD_BYTES, max(bound)
    assert any("arrayConcat({an__0:Array(String)}" in sql for sql, _ in recording.read)
