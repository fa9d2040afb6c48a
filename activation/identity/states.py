"""Profiles from aggregate states (0009): which states belong to which profiles, and their merge.

`profile_event_states` / `profile_trait_states` hold one row per identifier pair (user_id,
anonymous_id), event name and day, written by materialized views as events are inserted. A pair
belongs to the profile its user_id is mapped to, else to its anonymous_id's (the attribution of
`profile_events`). `owned(...)` is the FROM clause of a profile's states: for a scope it looks the
pairs up by primary key (user ids; anonymous ids with no user id; pairs of an anonymous id whose
user id is unmapped), so a tick costs what the touched profiles hold, whatever the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.identity.store import read_mapping, read_members, read_setting, write_setting
from activation.privacy.person import VALUES
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.erase import erase

EVENT_STATES = "profile_event_states"
TRAIT_STATES = "profile_trait_states"
_OWNER = (
    "if(user_id IN {uk:Array(String)}, transform(user_id, {uk:Array(String)}, {up:Array(String)}, ''),"
    " transform(anonymous_id, {ak:Array(String)}, {ap:Array(String)}, ''))"
)
_SCOPED = (
    f"SELECT {_OWNER} AS profile_id, * FROM TABLE"
    " WHERE user_id IN {uk:Array(String)} OR (user_id = '' AND anonymous_id IN {ak:Array(String)})"
    " OR (user_id, anonymous_id) IN {xp:Array(Tuple(String, String))}"
)
_MAPPED = "(SELECT identifier_value, profile_id FROM identity_current WHERE identifier_type = '{t}')"
_ALL = (
    "SELECT if(u.profile_id != '', u.profile_id, a.profile_id) AS profile_id, s.* FROM TABLE AS s"
    f" LEFT JOIN {_MAPPED.format(t='user_id')} AS u ON u.identifier_value = s.user_id"
    f" LEFT JOIN {_MAPPED.format(t='anonymous_id')} AS a ON a.identifier_value = s.anonymous_id"
    " WHERE profile_id != ''"
)
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
_PAIRS_OF = "SELECT anonymous_id, user_id FROM profile_pairs FINAL WHERE anonymous_id IN {a:Array(String)}"


@dataclass(frozen=True)
class Owners:
    """Pair owners of a scope, as query parameters (`uk`/`up`, `ak`/`ap`, `xp`)."""

    params: dict[str, Any]

    @classmethod
    def of(cls, ch: Client, profile_ids: list[str]) -> Owners:
        members = read_members(ch, profile_ids)
        users = {i.value: p for i, p in members.items() if i.type == "user_id"}
        anons = {i.value: p for i, p in members.items() if i.type == "anonymous_id"}
        pairs = ch.query(_PAIRS_OF, parameters={"a": sorted(anons)}).result_rows if anons else []
        foreign = {u for _, u in pairs if u not in users}
        mapped = read_mapping(ch, [Identifier("user_id", u) for u in foreign]) if foreign else {}
        unowned = sorted((str(u), str(a)) for a, u in pairs if Identifier("user_id", u) not in mapped)
        unowned = [(u, a) for u, a in unowned if u not in users]
        return cls(
            {
                "uk": list(users),
                "up": list(users.values()),
                "ak": list(anons),
                "ap": list(anons.values()),
                "xp": unowned,
            }
        )


def owned(table: str, scope: list[str] | None) -> str:
    """FROM-clause subquery: `profile_id` plus every column of `table`, for the scope (None: all)."""
    if scope is None:
        return _ALL.replace("TABLE", table)
    return _SCOPED.replace("TABLE", table)


def ensure_backfilled(ch: Client, now: datetime) -> int:
    """Feed the states from events stored before the views existed (an upgrade), once.

    The views see every insert from their creation on; events inserted before it are run through
    each view's own SELECT here. Returns how many such events there were."""
    if read_setting(ch, BACKFILL_MARK):
        return 0
    views = ch.query(_VIEW_SQL, parameters={"names": list(_VIEWS)}).result_rows
    cutoff = min(row[2] for row in views)
    older = "SELECT count() FROM events WHERE inserted_at < {c:DateTime64(6, 'UTC')}"
    count = int(ch.query(older, parameters={"c": cutoff}).result_rows[0][0])
    for name, select, _, database in views if count else []:
        source = f"(SELECT * FROM {database}.events WHERE inserted_at < {{c:DateTime64(6, 'UTC')}}) AS events"
        body = select.replace(f"FROM {database}.events", f"FROM {source}", 1)
        ch.command(f"INSERT INTO {_VIEWS[name]} {body}", parameters={"c": cutoff})
    write_setting(ch, BACKFILL_MARK, str(count), now)
    return count


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase the states of every pair holding one of the person's identifiers (privacy, SPEC §9)."""
    where, params = f"user_id IN {VALUES} OR anonymous_id IN {VALUES}", person.params()
    return {t: erase(ch, t, where, params) for t in (EVENT_STATES, TRAIT_STATES, "profile_pairs")}
