"""Who may receive an event: the destination's consent category, and suppressions (a hook).

Consent: a destination with a `consent_category` receives an event only when the person's newest
consent signal as of that event grants the category — the event's own `consent` column
(categoryPreferences), else the newest earlier consent among the person's stored events; no signal
means no consent (the same rule as audience syncs, activation/sync/state.py).

Suppression: SUPPRESSION_CHECKS is a plain list of async functions `(services, rows) -> message ids
to drop`. The collector already drops events of suppressed identifiers at the door; a check here
also covers events stored before a suppression (a replay, a backlog). The privacy package adds its
check is activation/privacy/forwarding.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from activation.connections.rules import consent_granted
from activation.db import Database
from activation.privacy.forwarding import suppressed_events
from activation.services import Services

Row = dict[str, Any]
SuppressionCheck = Callable[[Services, Sequence[Row]], Awaitable[set[str]]]
SUPPRESSION_CHECKS: list[SuppressionCheck] = [suppressed_events]

_NEWEST_CONSENT = """
SELECT if(user_id != '', concat('u:', user_id), concat('a:', anonymous_id)) AS person,
       argMax(consent, timestamp) AS newest
FROM events
WHERE consent != '' AND timestamp < {before:DateTime64(3, 'UTC')}
  AND (user_id IN {users:Array(String)} OR (user_id = '' AND anonymous_id IN {anons:Array(String)}))
GROUP BY person
"""


def row_person(row: Row) -> str:
    return f"u:{row['user_id']}" if row["user_id"] else f"a:{row['anonymous_id']}"


async def earlier_consent(db: Database, rows: Sequence[Row]) -> dict[str, str]:
    """The newest consent JSON each person had before the first of these rows."""
    if not rows:
        return {}
    users = sorted({r["user_id"] for r in rows if r["user_id"]})
    anons = sorted({r["anonymous_id"] for r in rows if not r["user_id"]})
    before = min(r["timestamp"] for r in rows)
    found = await db.rows(_NEWEST_CONSENT, {"before": before, "users": users, "anons": anons})
    return {str(p): str(c) for p, c in found}


class ConsentState:
    """Walks rows in order, tracking each person's newest consent signal."""

    def __init__(self, earlier: dict[str, str]) -> None:
        self.current = dict(earlier)

    def see(self, row: Row) -> None:
        if row["consent"]:
            self.current[row_person(row)] = row["consent"]

    def granted(self, row: Row, category: str) -> bool:
        return consent_granted(self.current.get(row_person(row), ""), category) is True


async def suppressed(services: Services, rows: Sequence[Row]) -> set[str]:
    dropped: set[str] = set()
    for check in SUPPRESSION_CHECKS:
        dropped |= await check(services, rows)
    return dropped
