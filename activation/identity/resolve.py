"""Event → profile resolution, in one place: an event belongs to the profile its user_id is mapped
to, else to its anonymous_id's (events with neither mapped belong to nobody yet).

`resolved(events_sql)` wraps any SELECT yielding `user_id, anonymous_id` (plus other columns) into
one yielding `profile_id` too, looking up only those events' identifiers in the mapping (primary
key of identity_map), so its cost follows the events selected, not the size of the graph.

`resolved_in_scope(table)` is the same rule for the rows of a known set of profiles (a stitch tick's
scope, a streaming micro-batch), with their identifiers read once and bound as parameters
(identity.states.Scope.params): `u`/`up` the user ids and their profiles, `an`/`ap` the anonymous
ids and theirs, `xp` the (user_id, anonymous_id) pairs whose user id is mapped to no profile (they
follow the anonymous id). Rows are found by identifier, so on a table ordered by them (the states)
by primary key.
"""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from activation.identity.store import MEMBERS_SQL

_MAPPED = "(SELECT identifier_value, profile_id FROM identity_current WHERE identifier_type = '{t}'{only})"
_ONLY = " AND identifier_value IN (SELECT {t} FROM ({events}))"
_KIND = {
    "event": "event = {name:String}",
    "page": "type = 'page' AND name = {name:String}",
    "screen": "type = 'screen' AND name = {name:String}",
}
_IN_SPAN = (
    "SELECT DISTINCT user_id, anonymous_id FROM events WHERE KIND AND is_bot = 0"
    " AND timestamp > {since:DateTime64(3, 'UTC')} AND timestamp <= {until:DateTime64(3, 'UTC')}"
)


_IN_SCOPE = (
    "SELECT if(s.user_id IN {u:Array(String)},"
    " transform(s.user_id, {u:Array(String)}, {up:Array(String)}, ''),"
    " transform(s.anonymous_id, {an:Array(String)}, {ap:Array(String)}, '')) AS profile_id, s.*"
    " FROM TABLE AS s"
    " WHERE s.user_id IN {u:Array(String)}"
    " OR (s.user_id = '' AND s.anonymous_id IN {an:Array(String)})"
    " OR (s.user_id, s.anonymous_id) IN {xp:Array(Tuple(String, String))}"
)


def resolved_in_scope(table: str) -> str:
    """SELECT profile_id, s.* over the rows of `table` (with user_id and anonymous_id columns) that
    belong to the bound scope's profiles (module docstring)."""
    return _IN_SCOPE.replace("TABLE", table)


def resolved(events_sql: str, narrow: bool = True) -> str:
    """SELECT profile_id, e.* over `events_sql` (which selects user_id and anonymous_id).

    `narrow` looks up only the selected events' identifiers (events_sql runs three times); without it
    the whole mapping is joined once — cheaper when the events selected are most of the table."""
    users, anons = (_mapping(t, events_sql, narrow) for t in ("user_id", "anonymous_id"))
    return (
        "SELECT if(u.profile_id != '', u.profile_id, a.profile_id) AS profile_id, e.*"
        f" FROM ({events_sql}) AS e"
        f" LEFT JOIN {users} AS u ON u.identifier_value = e.user_id"
        f" LEFT JOIN {anons} AS a ON a.identifier_value = e.anonymous_id"
        " WHERE profile_id != ''"
    )


def _mapping(column: str, events_sql: str, narrow: bool) -> str:
    only = _ONLY.format(t=column, events=events_sql) if narrow else ""
    return _MAPPED.format(t=column, only=only)


def profiles_of_events(ch: Client, kind: str, name: str, since: datetime, until: datetime) -> set[str]:
    """Profiles with a non-bot event of this kind and name timestamped in (since, until]."""
    sql = f"SELECT DISTINCT profile_id FROM ({resolved(_IN_SPAN.replace('KIND', _KIND[kind]))})"
    rows = ch.query(sql, parameters={"name": name, "since": since, "until": until}).result_rows
    return {str(r[0]) for r in rows}


def members_sql(profile: str) -> str:
    """SELECT of one value, Array(Tuple(type, value)): the current identifiers of `profile` (an SQL
    expression), for `of_members`."""
    members = MEMBERS_SQL.replace("{p:Array(String)}", f"[{profile}]")
    return f"SELECT groupArray((identifier_type, identifier_value)) FROM ({members})"


def of_members(members: str, user_ids: str) -> str:
    """The rule above as a condition on a row's `user_id` and `anonymous_id`, for one profile whose
    current identifiers are `members` (an SQL Array(Tuple(type, value))): its user_id is a member, or
    its anonymous_id is and its user_id is mapped to no profile. `user_ids` (an SQL set: the rows'
    user ids) bounds the mapping looked up to those rows, by primary key."""
    return (
        f"(has({members}, ('user_id', user_id)) OR (has({members}, ('anonymous_id', anonymous_id))"
        " AND (user_id = '' OR user_id NOT IN (SELECT identifier_value FROM identity_current"
        f" WHERE identifier_type = 'user_id' AND identifier_value IN ({user_ids})))))"
    )
