"""Cron job: enqueue a sync for every audience × destination whose audience was recomputed since
the pair's last finished sync (failed pairs wait `RETRY_FAILED_AFTER_S` before another try).

Needs `ctx["enqueue"]` (`async (job_name, *args, job_id=...) -> bool`). Job ids carry the last
finished run id, so a pair is queued at most once until that job has run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from activation.services import of as services_of
from activation.sync.engine import JOB_NAME, sync_job_id

RETRY_FAILED_AFTER_S = 300
_PAIRS = (
    "SELECT a.id, d, r.last FROM (SELECT id, destinations FROM audiences FINAL"
    " WHERE deleted = 0 AND enabled = 1 AND notEmpty(destinations)) AS a ARRAY JOIN a.destinations AS d"
    " LEFT JOIN (SELECT audience_id, max(computed_at) AS last FROM audience_runs GROUP BY audience_id) AS r"
    " ON r.audience_id = a.id"
    " WHERE d IN (SELECT id FROM destinations FINAL WHERE deleted = 0 AND enabled = 1)"
)
_LAST_SYNCS = (
    "SELECT destination_id, audience_id, argMax(id, id), argMax(status, id), max(started_at)"
    " FROM sync_runs FINAL WHERE status != 'running' GROUP BY destination_id, audience_id"
)


def due(
    pairs: list[tuple[str, str, datetime | None]],
    last: dict[tuple[str, str], tuple[str, str, datetime]],
    now: datetime,
) -> list[tuple[str, str, str]]:
    """Pure: (destination_id, audience_id, tag) for each pair that should sync now."""
    out = []
    for audience_id, destination_id, computed_at in pairs:
        if computed_at is None or computed_at.year <= 1970:
            continue
        previous = last.get((destination_id, audience_id))
        if previous is None:
            out.append((destination_id, audience_id, "first"))
            continue
        run_id, status, started_at = previous
        stale = started_at < computed_at or status == "failed"
        if status == "failed" and now - started_at < timedelta(seconds=RETRY_FAILED_AFTER_S):
            stale = False
        if stale:
            out.append((destination_id, audience_id, run_id))
    return out


async def schedule_syncs(ctx: dict[str, Any]) -> dict[str, Any]:
    services = services_of(ctx)
    db = services.db
    pairs = [(str(a), str(d), _utc(t)) for a, d, t in await db.rows(_PAIRS)]
    last = {(str(d), str(a)): (str(i), str(s), _utc(t)) for d, a, i, s, t in await db.rows(_LAST_SYNCS)}
    queued = 0
    for destination_id, audience_id, tag in due(pairs, last, datetime.now(UTC)):
        job_id = sync_job_id(destination_id, audience_id, tag)
        queued += bool(await services.enqueue(JOB_NAME, destination_id, audience_id, job_id=job_id))
    return {"pairs": len(pairs), "queued": queued}


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
