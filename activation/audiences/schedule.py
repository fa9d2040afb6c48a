"""The audience scheduler: a cron job that enqueues every audience whose schedule is due.

Job ids are per audience and minute, so two schedulers (two workers in server mode) enqueue each
computation once, and a "run now" from the API is not blocked for long by an earlier result.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from activation.audiences import membership
from activation.services import of as services_of

# How often the worker runs `enqueue_due_audiences` (magpie/jobs.py); schedules are kept to that tick.
TICK_S = 60


def compute_job_id(audience_id: str, now_s: float | None = None) -> str:
    minute = int((time.time() if now_s is None else now_s) // 60)
    return f"run_audience:{audience_id}:{minute}"


async def enqueue_due_audiences(ctx: dict[str, Any]) -> dict[str, int]:
    services = services_of(ctx)
    ids = await asyncio.to_thread(membership.due, services.ch, services.clock(), TICK_S)
    for audience_id in ids:
        await services.enqueue("run_audience", audience_id, job_id=compute_job_id(audience_id))
    return {"enqueued": len(ids)}
