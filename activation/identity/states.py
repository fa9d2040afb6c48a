"""Profiles from aggregate states (0009): which states belong to which profiles, and their merge.

`profile_event_states` / `profile_trait_states` hold one row per identifier pair (user_id,
anonymous_id), event name and day, written by materialized views as events are inserted. A pair
belongs to the profile its user_id is mapped to, else to its anonymous_id's (the attribution of
`profile_events`). `owned(...)` is the FROM clause of a profile's states: for a scope it looks the
pairs up by primary key (user ids; anonymous ids with no user id; pairs of an anonymous id whose
user id is unmapped); only the profile ids and those few pairs are bound (a query's parameters
travel in its URL), so a tick costs what the touched profiles hold, whatever the history.
"""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.identity.store import read_mapping, read_members, read_setting, write_setting
from activation.privacy.person import VALUES
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.erase import erase

EVENT_STATES = "profile_event_states"
TRAIT_STATES = "profile_trait_states"
# The scope's live identifiers of one type (skip index on profile_id, then the key), as (value, pid).
_MEMBERS = (
    "SELECT identifier_value, argMax(profile_id, version) AS pid FROM identity_map"
    " WHERE identifier_type = '{t}' AND identifier_value IN (SELECT identifier_value FROM identity_map"
    " WHERE identifier_type = '{t}' AND profile_id IN {{p:Array(String)}})"
    " GROUP BY identifier_value HAVING argMax(deleted, version) = 0 AND pid IN {{p:Array(String)}}"
)
_USERS, _ANONS = _MEMBERS.format(t="user_id"), _MEMBERS.format(t="anonymous_id")
_SCOPED = (
    "SELECT if(u.pid != '', u.pid, a.pid) AS profile_id, s.* FROM TABLE AS s"
    f" LEFT JOIN ({_USERS}) AS u ON u.identifier_value = s.user_id"
    f" LEFT JOIN ({_ANONS}) AS a ON a.identifier_value = s.anonymous_id"
    f" WHERE (s.user_id IN (SELECT identifier_value FROM ({_USERS}))"
    f" OR (s.user_id = '' AND s.anonymous_id IN (SELECT identifier_value FROM ({_ANONS})))"
    " OR (s.user_id, s.anonymous_id) IN {xp:Array(Tuple(String, String))})"
    " AND if(u.pid != '', u.pid, a.pid) != ''"
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


def unowned_pairs(ch: Client, profile_ids: list[str]) -> list[tuple[str, str]]:
    """(user_id, anonymous_id) pairs of the scope's anonymous ids whose user_id is not mapped: they
    belong to the anonymous id's profile (a blocked user id, or one not stitched yet)."""
    members = read_members(ch, profile_ids)
    users = {i.value for i in members if i.type == "user_id"}
    anons = sorted(i.value for i in members if i.type == "anonymous_id")
    pairs = ch.query(_PAIRS_OF, parameters={"a": anons}).result_rows if anons else []
    foreign = {str(u) for _, u in pairs if u not in users}
    mapped = read_mapping(ch, [Identifier("user_id", u) for u in foreign]) if foreign else {}
    return sorted(
        (str(u), str(a)) for a, u in pairs if u in foreign and Identifier("user_id", u) not in mapped
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
