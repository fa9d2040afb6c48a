"""`Audience Entered` / `Audience Exited` track events for a run's changes, in Segment's shape.

The caller inserts them like any event (they carry a deterministic `messageId`, so re-emitting a
run is deduplicated by (source, messageId)). Each names the profile by a `userId` when it has one,
else an `anonymousId`, else the profile id as `anonymousId`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.audiences import membership
from activation.audiences.limits import select
from activation.audiences.store import Audience

EVENT_NAMES = {"entered": "Audience Entered", "exited": "Audience Exited"}
_IDS = (
    "SELECT profile_id, argMaxIf(identifier_value, version, identifier_type = 'user_id'),"
    " argMaxIf(identifier_value, version, identifier_type = 'anonymous_id')"
    " FROM identity_map FINAL WHERE deleted = 0 AND identifier_type IN ('user_id', 'anonymous_id')"
    " AND has({pids:Array(String)}, profile_id) GROUP BY profile_id"
)


def membership_events(
    audience: Audience, changes: list[tuple[str, str]], computed_at: datetime, ids: dict[str, tuple[str, str]]
) -> list[dict[str, Any]]:
    """One track event per (profile_id, change); `ids` maps profile ids to (user_id, anonymous_id)."""
    return [_event(audience, pid, change, computed_at, ids.get(pid, ("", ""))) for pid, change in changes]


def _event(
    audience: Audience, profile_id: str, change: str, at: datetime, ids: tuple[str, str]
) -> dict[str, Any]:
    user_id, anonymous_id = ids
    seed = f"{audience.id}|{profile_id}|{change}|{at.isoformat()}".encode()
    event: dict[str, Any] = {
        "type": "track",
        "event": EVENT_NAMES[change],
        "messageId": "audience-" + hashlib.sha256(seed).hexdigest()[:32],
        "timestamp": at.isoformat(),
        "properties": {
            "audience_key": audience.key,
            "audience_id": audience.id,
            "audience_name": audience.name,
            "profile_id": profile_id,
        },
        "context": {"library": {"name": "magpie-audiences", "version": "1"}},
    }
    if user_id:
        event["userId"] = user_id
    if anonymous_id or not user_id:
        event["anonymousId"] = anonymous_id or profile_id
    return event


def run_events(
    ch: Client, audience: Audience, computed_at: datetime, after: str = "", limit: int = 1000
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the events for the run at `computed_at` and the cursor (profile id) of the next."""
    changes = membership.diff(ch, audience.id, computed_at, after, limit)
    if not changes:
        return [], None
    pids = [pid for pid, _ in changes]
    rows = select(ch, _IDS, {"pids": pids})
    ids = {row[0]: (row[1], row[2]) for row in rows}
    next_after = pids[-1] if len(changes) == limit else None
    return membership_events(audience, changes, computed_at, ids), next_after
