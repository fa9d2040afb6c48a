"""Profiles from aggregate states (0009, 0014): which states belong to which profiles, and their merge.

`profile_event_states` / `profile_trait_states` hold one row per identifier pair (user_id,
anonymous_id), event name and day (trait name), written by materialized views as events are
inserted; `profile_pair_states` sums the day states per pair and event name (a view on the day
states), so built-in and all-time traits read a row per pair and event name, not one per day of
history. A pair belongs to the profile its user_id is mapped to, else to its anonymous_id's (the
attribution of `profile_events`). `owned(...)` is the FROM clause of a profile's states: for a
scope it looks the pairs up by primary key (user ids; anonymous ids with no user id; pairs of an
anonymous id whose user id is unmapped), from the scope's identifiers read once and bound as
parameters (large ones travel in the request body), so a tick costs what the touched profiles
hold, whatever the history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.identity.resolve import resolved, resolved_in_scope
from activation.identity.store import read_mapping, read_members, read_setting, write_setting
from activation.privacy.person import VALUES
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.client import FIELD_BYTES, Strings, parts, rendered_size
from clickhouse.erase import erase

EVENT_STATES = "profile_event_states"
PAIR_STATES = "profile_pair_states"  # 0014: the day states summed per pair and event name
TRAIT_STATES = "profile_trait_states"
_VIEWS = {
    "profile_event_states_mv": EVENT_STATES,
    "profile_trait_states_mv": TRAIT_STATES,
    "profile_pairs_mv": "profile_pairs",
}
_VIEW_SQL = (
    "SELECT name, as_select, metadata_modification_time, currentDatabase() FROM system.tables"
    " WHERE database = currentDatabase() AND name IN {names:Array(String)}"
)
BACKFILL_MARK = "profile_states_backfilled"
PAIRS_MARK = "profile_pair_states_backfilled"
_OLDER = (
    "SELECT count() FROM events"
    " WHERE inserted_at >= {a:DateTime64(6, 'UTC')} AND inserted_at < {c:DateTime64(6, 'UTC')}"
)
_PAIR_VIEWS = ("profile_event_states_mv", "profile_pair_states_mv")
_BOUNDED = (
    "(SELECT * FROM {db}.events WHERE inserted_at >= {{a:DateTime64(6, 'UTC')}}"
    " AND inserted_at < {{c:DateTime64(6, 'UTC')}}) AS events"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAIRS_OF = "SELECT anonymous_id, user_id FROM profile_pairs FINAL WHERE anonymous_id IN {a:Array(String)}"


@dataclass(frozen=True)
class Scope:
    """Profiles being recomputed and their live identifiers, bound into the queries as parameters."""

    profile_ids: list[str]
    members: dict[Identifier, str]
    unowned: list[tuple[str, str]]

    def of_type(self, type_: str) -> tuple[list[str], list[str]]:
        pairs = sorted((i.value, p) for i, p in self.members.items() if i.type == type_)
        return [v for v, _ in pairs], [p for _, p in pairs]

    def only(self, profile_ids: list[str]) -> Scope:
        """The part of this scope that belongs to some of its profiles (an unowned pair follows its
        anonymous id's profile)."""
        keep = set(profile_ids)
        members = {i: p for i, p in self.members.items() if p in keep}
        anons = {i.value: p for i, p in self.members.items() if i.type == "anonymous_id"}
        unowned = [(u, a) for u, a in self.unowned if anons.get(a) in keep]
        return Scope(profile_ids, members, unowned)

    def params(self) -> dict[str, object]:
        """Formatted once (clickhouse.client.Strings), bound into each of the chunk's queries."""
        (u, up), (an, ap), (r, rp) = (self.of_type(t) for t in ("user_id", "anonymous_id", "record"))
        arrays = {"p": self.profile_ids, "u": u, "up": up, "an": an, "ap": ap, "r": r, "rp": rp}
        return {name: Strings(values) for name, values in arrays.items()} | {"xp": self.unowned}


def scope_of(ch: Client, profile_ids: list[str]) -> Scope:
    """The scope's identifiers (one read of the mapping) and the pairs it owns through an anonymous id."""
    members = read_members(ch, profile_ids)
    return Scope(profile_ids, members, unowned_pairs(ch, members))


def bounded_scopes(ch: Client, profile_ids: list[str]) -> Iterator[Scope]:
    """The profiles' scopes, halved until each bound array renders within FIELD_BYTES (a profile
    can hold many identifiers): one scope when they fit, the usual case. A single profile is not
    cut; arrays it alone overflows are bound in parts by the queries (`clickhouse.client.fit`)."""
    scope = scope_of(ch, profile_ids)
    if len(profile_ids) > 1 and largest(scope.params()) > FIELD_BYTES:
        half = len(profile_ids) // 2
        yield from bounded_scopes(ch, profile_ids[:half])
        yield from bounded_scopes(ch, profile_ids[half:])
        return
    yield scope


def largest(params: dict[str, object]) -> int:
    """The longest rendering among bound arrays (identifiers and pairs), as they are sent."""
    sizes = [rendered_size(v) for v in params.values() if isinstance(v, (Strings, list))]
    return max(sizes, default=0)


def unowned_pairs(ch: Client, members: dict[Identifier, str]) -> list[tuple[str, str]]:
    """(user_id, anonymous_id) pairs of the scope's anonymous ids whose user_id is not mapped: they
    belong to the anonymous id's profile (a blocked user id, or one not stitched yet)."""
    users = {i.value for i in members if i.type == "user_id"}
    anons = sorted(i.value for i in members if i.type == "anonymous_id")
    pairs = [
        row
        for part in parts(anons)
        for row in ch.query(_PAIRS_OF, parameters={"a": Strings(part)}).result_rows
    ]
    foreign = {str(u) for _, u in pairs if u not in users}
    mapped = read_mapping(ch, [Identifier("user_id", u) for u in foreign]) if foreign else {}
    return sorted(
        (str(u), str(a)) for a, u in pairs if u in foreign and Identifier("user_id", u) not in mapped
    )


def owned(table: str, scope: list[str] | None) -> str:
    """FROM-clause subquery: `profile_id` plus every column of `table`, for the scope (None: all)."""
    if scope is None:
        return resolved(f"SELECT * FROM {table}", narrow=False)  # the one resolution rule
    return resolved_in_scope(table)


def ensure_backfilled(ch: Client, now: datetime) -> int:
    """Feed the states from events stored before the views existed (an upgrade), once.

    The views see every insert from their creation on; events inserted before it are run through
    each view's own SELECT here (the pair states of 0014 follow through their view on the day states).
    Returns how many such events there were."""
    if read_setting(ch, BACKFILL_MARK):
        ensure_pairs_backfilled(ch, now, EPOCH)
        return 0
    views = ch.query(_VIEW_SQL, parameters={"names": list(_VIEWS)}).result_rows
    cutoff = min(row[2] for row in views)
    ensure_pairs_backfilled(ch, now, cutoff)  # older events reach the pair states through their view
    older = "SELECT count() FROM events WHERE inserted_at < {c:DateTime64(6, 'UTC')}"
    count = int(ch.query(older, parameters={"c": cutoff}).result_rows[0][0])
    for name, select, _, database in views if count else []:
        source = f"(SELECT * FROM {database}.events WHERE inserted_at < {{c:DateTime64(6, 'UTC')}}) AS events"
        body = select.replace(f"FROM {database}.events", f"FROM {source}", 1)
        ch.command(f"INSERT INTO {_VIEWS[name]} {body}", parameters={"c": cutoff})
    write_setting(ch, BACKFILL_MARK, str(count), now)
    return count


def ensure_pairs_backfilled(ch: Client, now: datetime, after: datetime) -> int:
    """Feed the pair states (0014) from events inserted in [after, the pair view's creation), once:
    the day states of those events existed before the view did. `after` is where the day states'
    own backfill starts feeding them through the view (EPOCH when it ran before). How many events."""
    if read_setting(ch, PAIRS_MARK):
        return 0
    rows = ch.query(_VIEW_SQL, parameters={"names": list(_PAIR_VIEWS)}).result_rows
    views = {str(name): (str(select), when, str(db)) for name, select, when, db in rows}
    day_select, _, db = views["profile_event_states_mv"]
    pair_select, created, _ = views["profile_pair_states_mv"]
    params = {"a": _utc(after), "c": _utc(created)}
    count = int(ch.query(_OLDER, parameters=params).result_rows[0][0]) if _utc(after) < _utc(created) else 0
    if count:
        days = _swap_source(day_select, f"FROM {db}.events", "FROM " + _BOUNDED.format(db=db))
        body = _swap_source(pair_select, f"FROM {db}.{EVENT_STATES}", f"FROM ({days}) AS {EVENT_STATES}")
        ch.command(f"INSERT INTO {PAIR_STATES} {body}", parameters=params)
    write_setting(ch, PAIRS_MARK, str(count), now)
    return count


def _swap_source(select: str, source: str, bounded: str) -> str:
    """A view's query reading `bounded` instead of its source (never the whole source by mistake)."""
    if select.count(source) != 1:
        raise RuntimeError(f"view query without exactly one {source!r}: {select[:120]!r}")
    return select.replace(source, bounded)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase the states of every pair holding one of the person's identifiers (privacy, SPEC §9)."""
    where, params = f"user_id IN {VALUES} OR anonymous_id IN {VALUES}", person.params()
    tables = (EVENT_STATES, PAIR_STATES, TRAIT_STATES, "profile_pairs")
    return {t: erase(ch, t, where, params) for t in tables}
