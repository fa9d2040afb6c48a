"""Stitch runs: the synchronous shell around the pure graph (ClickHouse in, ClickHouse out).

Incremental: extract links from events inserted since the watermark, take the link sets stored
since the links watermark (`identity_link_log`, by key range), find the connected components they
touch (by identifier, `identity_link_ids`), restitch them from all their links, write the diff,
recompute the profiles concerned (from their aggregate states, `activation.identity.states`).
Every read is bounded by what arrived, not by what is stored. An insert still in flight while a
run reads may become visible later with an `inserted_at` behind the watermark: each run
fingerprints the last `overlap_s` behind its mark (count and hash sum of the events there) before
reading, and the next run re-reads that overlap only when the fingerprint changed, so back-to-back
runs do not recompute each other's profiles. The first tick of a UTC day also recomputes every
profile holding a windowed computed trait, as a day has left each window.
Full: the same over every link. Both give the same mapping for the same links.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.identity import links as link_store
from activation.identity import profiles, states, store
from activation.identity.computed import ComputedTrait
from activation.identity.graph import Link, Stitched, stitch
from activation.identity.identifiers import ALIAS_TYPE, Identifier

WATERMARK_KEY = "stitch_watermark"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SPAN = "inserted_at > {since:DateTime64(6, 'UTC')} AND inserted_at <= {until:DateTime64(6, 'UTC')}"
_NEWEST = "SELECT max(inserted_at) FROM events WHERE WINDOW"
_WINDOW_PROFILES = """
SELECT DISTINCT profile_id FROM identity_current
WHERE (identifier_type = 'user_id' AND identifier_value IN (SELECT user_id FROM events WHERE WINDOW))
   OR (identifier_type = 'anonymous_id'
       AND identifier_value IN (SELECT anonymous_id FROM events WHERE WINDOW))
""".replace("WINDOW", _SPAN)


@dataclass(frozen=True)
class StitchReport:
    mode: str
    links: int
    identifiers: int
    mapping_rows: int
    profiles_recomputed: int
    merges: int
    conflicts: int
    duration_ms: float
    changed_profiles: frozenset[str] = frozenset()
    changed_identifiers: frozenset[Identifier] = frozenset()
    newest_event_at: float | None = None  # inserted_at (epoch s) of the newest event this run read

    @property
    def changed_everything(self) -> bool:
        return self.mode == "full"

    def to_dict(self) -> dict[str, Any]:
        doc = {k: v for k, v in asdict(self).items() if not k.startswith(("changed_", "newest_"))}
        return {**doc, "changed_profiles": len(self.changed_profiles)}


def stitch_incremental(
    ch: Client, now: datetime, overlap_s: float = 10.0, max_component: int = 20_000
) -> StitchReport:
    """Stitch what arrived since the watermark; falls back to a full run for a huge component."""
    started = time.perf_counter()
    stored = _prepare(ch, now)
    mark = _watermark_of(stored.get(WATERMARK_KEY))
    since = mark.since(ch, timedelta(seconds=overlap_s))
    links_until = link_store.links_high_mark(ch, mark.links)
    if _nothing_new(ch, mark, since, now, links_until):
        # the watermark stays: an insert still in flight behind `now` is read by the next tick
        return StitchReport("incremental", 0, 0, 0, 0, 0, 0, (time.perf_counter() - started) * 1000)
    tail = _tail(ch, now - timedelta(seconds=overlap_s), now)  # before any read of (since, now]
    rules = store.rules_of(stored.get(store.RULES_KEY))
    link_store.extract_links(ch, since, now, rules)
    links_until = link_store.links_high_mark(ch, mark.links)
    seeds = link_store.new_link_ids(ch, mark.links, links_until) if links_until > mark.links else set()
    links = link_store.component_links(ch, seeds, rules, max_component) if seeds else []
    if links is None:
        return stitch_full(ch, now)
    stitched = stitch(links, rules, store.read_splits(ch))
    old = store.read_mapping(ch, _candidates(links))
    version = store.run_version()
    written = store.write_mapping(ch, old, stitched.mapping, version + 1)
    store.write_outcomes(ch, stitched, set(old.values()) | set(stitched.mapping.values()), version + 1)
    window = {"since": since, "until": now}
    scope = _changed_profiles(old, stitched.mapping) | _window_profiles(ch, window)
    definitions = store.read_definitions(ch)
    if mark.events.date() != now.date():
        scope |= _windowed_holders(ch, definitions)
    counted_from = (since, now) if since != EPOCH else None  # sessions: from each row and the window
    profiles.recompute(ch, sorted(scope), version, now, definitions, counted_from)
    _write_watermark(ch, _Watermark(now, links_until, tail, overlap_s))
    report = _report("incremental", links, stitched, written, len(scope), started)
    changed = _changed_ids(old, stitched.mapping)
    newest = _newest(ch, window)
    return replace(
        report, changed_profiles=frozenset(scope), changed_identifiers=changed, newest_event_at=newest
    )


def stitch_full(ch: Client, now: datetime, overlap_s: float = 10.0) -> StitchReport:
    """Restitch every link (after a rules change, an unmerge of many, or a huge component)."""
    started = time.perf_counter()
    _prepare(ch, now)
    tail = _tail(ch, now - timedelta(seconds=overlap_s), now)
    rules = store.read_rules(ch)
    link_store.extract_links(ch, EPOCH, now, rules)
    links_until = link_store.links_high_mark(ch)
    links = link_store.all_links(ch)
    stitched = stitch(links, rules, store.read_splits(ch))
    old = store.read_mapping(ch)
    version = store.run_version()
    written = store.write_mapping(ch, old, stitched.mapping, version + 1)
    store.write_outcomes(ch, stitched, None, version + 1)
    profiles.recompute(ch, None, version, now, store.read_definitions(ch))
    _write_watermark(ch, _Watermark(now, links_until, tail, overlap_s))
    return _report("full", links, stitched, written, len(set(stitched.mapping.values())), started)


def restitch_profiles(ch: Client, profile_ids: set[str], now: datetime) -> StitchReport:
    """Restitch the components holding these profiles (after an unmerge)."""
    return restitch_identifiers(ch, set(store.read_members(ch, profile_ids)), profile_ids, now)


def restitch_identifiers(
    ch: Client, seeds: set[Identifier], profile_ids: set[str], now: datetime
) -> StitchReport:
    """Restitch the components around these identifiers now (imports, proposals, unmerges)."""
    started = time.perf_counter()
    rules = store.read_rules(ch)
    links = link_store.component_links(ch, seeds, rules, 1_000_000) or []
    stitched = stitch(links, rules, store.read_splits(ch))
    old = store.read_mapping(ch, _candidates(links) | seeds)
    version = store.run_version()
    written = store.write_mapping(ch, old, stitched.mapping, version + 1)
    scope = set(old.values()) | set(stitched.mapping.values()) | profile_ids
    store.write_outcomes(ch, stitched, scope, version + 1)
    profiles.recompute(ch, sorted(scope), version, now, store.read_definitions(ch))
    report = _report("component", links, stitched, written, len(scope), started)
    return replace(
        report, changed_profiles=frozenset(scope), changed_identifiers=_changed_ids(old, stitched.mapping)
    )


def _nothing_new(ch: Client, mark: _Watermark, since: datetime, now: datetime, links_until: datetime) -> bool:
    """No event in (since, now], no stored set after the mark's, and the same UTC day (a new day
    slides the windowed computed traits): a tick would read and write nothing. An idle tick was
    12 reads and 2 writes (~140 ms of the store's CPU, most of it planning the identifier
    extraction's expression over an empty window); this check adds two cheap reads to a busy one."""
    if mark.events == EPOCH or mark.events.date() != now.date() or links_until > mark.links:
        return False
    return _tail(ch, since, now)[0] == 0


def _newest(ch: Client, window: dict[str, datetime]) -> float | None:
    sql = _NEWEST.replace("WINDOW", _SPAN)
    value = ch.query(sql, parameters=window).result_rows[0][0]
    return None if value is None or value.year <= 1970 else value.replace(tzinfo=UTC).timestamp()


def _windowed_holders(ch: Client, definitions: list[ComputedTrait]) -> set[str]:
    """Profiles holding a value of a windowed computed trait: on a new UTC day a day left its window."""
    names = [d.name for d in definitions if d.window_days]
    if not names:
        return set()
    sql = (
        "SELECT DISTINCT profile_id FROM profile_computed_traits FINAL"
        " WHERE deleted = 0 AND name IN {n:Array(String)}"
    )
    return {str(r[0]) for r in ch.query(sql, parameters={"n": names}).result_rows}


def _candidates(links: list[Link]) -> set[Identifier]:
    ids = {i for link in links for i in link.ids}
    aliases = {i for i in ids if i.type == ALIAS_TYPE}
    return (ids - aliases) | {Identifier(t, i.value) for i in aliases for t in ("user_id", "anonymous_id")}


def _changed_profiles(old: dict[Identifier, str], new: dict[Identifier, str]) -> set[str]:
    changed = {p for i, p in new.items() if old.get(i) != p}
    return changed | {p for i, p in old.items() if new.get(i) != p}


def _changed_ids(old: dict[Identifier, str], new: dict[Identifier, str]) -> frozenset[Identifier]:
    return frozenset({i for i, p in new.items() if old.get(i) != p} | {i for i in old if i not in new})


@dataclass(frozen=True)
class _Watermark:
    """Events read up to `events`; stored sets stitched up to `links`. `tail` fingerprints (count,
    hash sum) the events of (events - overlap_s, events] as the run that wrote it saw them first."""

    events: datetime
    links: datetime
    tail: tuple[int, int] | None = None
    overlap_s: float = 0.0

    def since(self, ch: Client, overlap: timedelta) -> datetime:
        """Where this run reads from: the mark itself when no event has since appeared behind it
        (an insert still in flight then), else the mark minus the overlap."""
        if self.events == EPOCH:
            return EPOCH
        same = self.tail is not None and overlap.total_seconds() == self.overlap_s
        if same and _tail(ch, self.events - overlap, self.events) == self.tail:
            return self.events
        return self.events - overlap


def _tail(ch: Client, since: datetime, until: datetime) -> tuple[int, int]:
    sql = f"SELECT count(), sum(cityHash64(source_id, message_id)) FROM events WHERE {_SPAN}"
    count, digest = ch.query(sql, parameters={"since": since, "until": until}).result_rows[0]
    return int(count), int(digest)


_TICK_SETTINGS = [
    states.BACKFILL_MARK,
    states.PAIRS_MARK,
    link_store.INDEXED_MARK,
    WATERMARK_KEY,
    store.RULES_KEY,
]


def _prepare(ch: Client, now: datetime) -> dict[str, str]:
    """One-time upgrades: aggregate states and the identity-set index for data stored before them.
    Their marks, the watermark and the rules are read at once (five reads were ~60 ms of a loaded
    tick); the settings read, as stored before any upgrade ran (which writes only its own mark)."""
    stored = store.read_settings(ch, _TICK_SETTINGS)
    if not (stored.get(states.BACKFILL_MARK) and stored.get(states.PAIRS_MARK)):
        states.ensure_backfilled(ch, now)
    if not stored.get(link_store.INDEXED_MARK):
        link_store.ensure_indexed(ch, now)
    return stored


def _window_profiles(ch: Client, window: dict[str, datetime]) -> set[str]:
    return {str(r[0]) for r in ch.query(_WINDOW_PROFILES, parameters=window).result_rows}


def _watermark_of(raw: str | None) -> _Watermark:
    if not raw:
        return _Watermark(EPOCH, EPOCH)
    doc = orjson.loads(raw)
    links = datetime.fromisoformat(doc.get("links", EPOCH.isoformat()))
    tail = tuple(doc["tail"]) if "tail" in doc else None
    return _Watermark(datetime.fromisoformat(doc["events"]), links, tail, float(doc.get("overlap_s", 0)))


def _write_watermark(ch: Client, mark: _Watermark) -> None:
    doc = {"events": mark.events.isoformat(), "links": mark.links.isoformat(), "overlap_s": mark.overlap_s}
    store.write_setting(ch, WATERMARK_KEY, orjson.dumps({**doc, "tail": mark.tail}).decode(), mark.events)


def _report(
    mode: str, links: list[Link], stitched: Stitched, written: int, recomputed: int, started: float
) -> StitchReport:
    return StitchReport(
        mode,
        len(links),
        len(stitched.mapping),
        written,
        recomputed,
        len(stitched.merges),
        len(stitched.conflicts),
        round((time.perf_counter() - started) * 1000, 1),
    )
