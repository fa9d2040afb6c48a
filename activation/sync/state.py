"""What a destination should hold for an audience versus what it has confirmed (`sync_state`).

Desired members are the audience's current members (from `audience_membership_changes`), narrowed
to profiles whose newest consent signal grants the destination's category when it names one. The
newest consent signal is an event's `consent` column (categoryPreferences) or a `consent` trait.
To add = desired minus confirmed present (and minus permanent add failures); to remove = confirmed
present minus desired. Pages are keyed by profile id, so a run walks each list once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.audiences.current import members_sql
from activation.db import Database
from activation.privacy.consent import desired_sql
from activation.privacy.person import PROFILES
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.erase import erase

STATE_COLUMNS = ("destination_id", "audience_id", "profile_id", "status", "run_id", "updated_at", "version")
_CURRENT = members_sql()
_STATUS = (
    "SELECT profile_id FROM sync_state WHERE destination_id = {did:String} AND audience_id = {aid:String}"
    " GROUP BY profile_id HAVING has({statuses:Array(String)}, toString(argMax(status, version)))"
)
_TO_ADD = (
    "SELECT profile_id FROM ({desired}) WHERE profile_id > {after:String}"
    f" AND profile_id NOT IN ({_STATUS}) ORDER BY profile_id LIMIT {{n:UInt32}}"
)
_TO_REMOVE = (
    f"SELECT profile_id FROM ({_STATUS}) WHERE profile_id > {{after:String}}"
    " AND profile_id NOT IN ({desired}) ORDER BY profile_id LIMIT {n:UInt32}"
)


@dataclass(frozen=True)
class Pair:
    """One destination × audience, with the consent category the destination requires ('' = none)."""

    destination_id: str
    audience_id: str
    consent_category: str = ""
    consent_default: str = ""  # "allow" | "deny"; '' = deny with a category, allow without one

    def params(self) -> dict[str, Any]:
        return {"did": self.destination_id, "aid": self.audience_id, "cat": self.consent_category}

    def desired_sql(self) -> str:
        return desired_sql(_CURRENT, self.consent_category, self.consent_default)


async def to_add(db: Database, pair: Pair, after: str, limit: int) -> list[str]:
    sql = _TO_ADD.replace("{desired}", pair.desired_sql())
    params = {**pair.params(), "after": after, "n": limit, "statuses": ["present", "dead_add"]}
    return [str(row[0]) for row in await db.rows(sql, params)]


async def to_remove(db: Database, pair: Pair, after: str, limit: int) -> list[str]:
    sql = _TO_REMOVE.replace("{desired}", pair.desired_sql())
    params = {**pair.params(), "after": after, "n": limit, "statuses": ["present"]}
    return [str(row[0]) for row in await db.rows(sql, params)]


async def confirmed(db: Database, pair: Pair, status: str = "present") -> set[str]:
    """Profiles whose newest state is `status` (tests and the admin view)."""
    params = {**pair.params(), "statuses": [status]}
    return {str(row[0]) for row in await db.rows(_STATUS, params)}


async def record(db: Database, pair: Pair, run_id: str, changes: Sequence[tuple[str, str]]) -> None:
    """Checkpoint: write (profile_id, status) rows; a newer version supersedes older ones."""
    if not changes:
        return
    now, version = datetime.now(UTC), time.time_ns()
    rows = [
        [pair.destination_id, pair.audience_id, pid, status, run_id, now, version] for pid, status in changes
    ]
    await db.insert("sync_state", rows, STATE_COLUMNS)


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase what every destination confirmed about the person (privacy, SPEC §9). Run it only after
    the person was removed from every list (`activation.privacy.outbound`), which reads these rows."""
    return {"sync_state": erase(ch, "sync_state", f"profile_id IN {PROFILES}", person.params())}
