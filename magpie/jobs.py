"""The job list: every background job and cron, as plain data (names are the contract between
the API that enqueues and the worker that runs)."""

from __future__ import annotations

from typing import Any

from activation.maintenance import worker_heartbeat
from magpie.worker import CronSpec, JobFunction, JobSet


def job_set(ctx: dict[str, Any]) -> JobSet:
    functions: list[JobFunction] = [worker_heartbeat]
    crons: list[CronSpec] = [CronSpec(worker_heartbeat, every_s=10)]
    return JobSet(functions=functions, crons=crons, ctx=ctx)
