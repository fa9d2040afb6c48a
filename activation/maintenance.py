"""Housekeeping jobs."""

from __future__ import annotations

import time
from typing import Any

from activation.services import of as services_of

HEARTBEAT_KEY = "magpie:worker:heartbeat"


async def worker_heartbeat(ctx: dict[str, Any]) -> float:
    """Record that a worker is alive and running crons (read by operators and tests)."""
    now = time.time()
    await services_of(ctx).redis.set(HEARTBEAT_KEY, str(now), ex=300)
    return now
