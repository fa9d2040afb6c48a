"""Per-identifier consent states (migration 0013): each (user_id, anonymous_id) pair's newest consent
signal from events, kept by a materialized view at insert time, one row per identifier of the pair.

`newest_of_members_sql(members)` reads the pairs of a profile's identifiers by primary key, so finding
a profile's newest consent costs its number of pairs, not its history. Events stored before the view
existed are folded in once by `backfill` (the `backfill_consent_states` job, at worker start).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity.resolve import of_members
from activation.identity.store import read_setting, write_setting
from activation.privacy.person import VALUES
from activation.privacy.person import Person as PrivacyPerson
from activation.services import of as services_of
from clickhouse.erase import erase

TABLE = "consent_states"
BACKFILLED_MARK = "consent_states_backfilled"
# the view's SELECT (0013), for the events inserted up to a second after the view's creation
_BACKFILL = (
    "INSERT INTO consent_states SELECT id.1, id.2, user_id, anonymous_id,"
    " argMaxState(consent, (timestamp, message_id)), max(timestamp) FROM events"
    " ARRAY JOIN arrayFilter(x -> x.2 != '', [('user_id', user_id), ('anonymous_id', anonymous_id)]) AS id"
    " WHERE consent != '' AND inserted_at <= (SELECT max(metadata_modification_time) + 1 FROM system.tables"
    " WHERE database = currentDatabase() AND name = 'consent_states_mv')"
    " GROUP BY id.1, id.2, user_id, anonymous_id"
)


_OF_MEMBERS = (
    "SELECT argMaxMerge(prefs) AS prefs, max(at) AS at FROM consent_states WHERE {found}"
    " GROUP BY user_id, anonymous_id HAVING {belongs} ORDER BY at DESC LIMIT 1"
)
_FOUND = "(identifier_type, identifier_value) IN (SELECT arrayJoin({members}))"


def newest_of_members_sql(members: str) -> str:
    """SELECT prefs, at: the newest consent signal of the pairs belonging to the profile whose current
    identifiers are `members` (an SQL Array(Tuple(type, value))), by identity.resolve's rule."""
    found = _FOUND.format(members=members)
    user_ids = f"SELECT user_id FROM consent_states WHERE {found}"
    return _OF_MEMBERS.format(found=found, belongs=of_members(members, user_ids))


# The same rule for many profiles at once: `{members}` selects (identifier_type, identifier_value, pid)
# for each profile's current identifiers (identity.store.MEMBERS_SQL); one row per profile with a signal.
_BY_PROFILE = (
    "SELECT pid, argMax(pair_prefs, pair_at) AS prefs, max(pair_at) AS at FROM ("
    " SELECT m.pid AS pid, s.user_id AS user_id, s.anonymous_id AS anonymous_id,"
    " argMaxMerge(s.prefs) AS pair_prefs, max(s.at) AS pair_at, any(g.members) AS pm FROM consent_states AS s"
    " INNER JOIN ({members}) AS m"
    " ON s.identifier_type = m.identifier_type AND s.identifier_value = m.identifier_value"
    " INNER JOIN (SELECT pid, groupArray((toString(identifier_type), identifier_value)) AS members"
    " FROM ({members}) GROUP BY pid) AS g ON g.pid = m.pid"
    " WHERE (s.identifier_type, s.identifier_value) IN"
    " (SELECT identifier_type, identifier_value FROM ({members}))"
    " GROUP BY pid, user_id, anonymous_id HAVING {belongs}"
    ") GROUP BY pid"
)


def newest_by_profile_sql(members: str) -> str:
    """SELECT pid, prefs, at: newest_of_members_sql's signal for every profile of `members` (an SQL
    SELECT of identifier_type, identifier_value, pid) that has one, in one read."""
    user_ids = (
        "SELECT user_id FROM consent_states WHERE (identifier_type, identifier_value) IN"
        f" (SELECT identifier_type, identifier_value FROM ({members}))"
    )
    return _BY_PROFILE.format(members=members, belongs=of_members("pm", user_ids))


def backfill(ch: Client, now: datetime) -> bool:
    """Fold the consent events stored before the view existed (an upgrade) into the states, once;
    False when done before. Events also seen by the view count once (argMax, max)."""
    if read_setting(ch, BACKFILLED_MARK):
        return False
    ch.command(_BACKFILL)
    write_setting(ch, BACKFILLED_MARK, now.isoformat(), now)
    return True


async def backfill_consent_states(ctx: dict[str, Any]) -> dict[str, bool]:
    """The job: `backfill` once per installation (the mark makes later runs a single read)."""
    services = services_of(ctx)
    return {"backfilled": await asyncio.to_thread(backfill, services.ch, services.clock())}


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase the states of every pair holding one of the person's identifiers (privacy, SPEC §9)."""
    where = f"user_id IN {VALUES} OR anonymous_id IN {VALUES} OR identifier_value IN {VALUES}"
    return {TABLE: erase(ch, TABLE, where, person.params())}
