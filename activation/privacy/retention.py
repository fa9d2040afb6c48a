"""Retention (SPEC §9) and the privacy crons.

Events: a source's `retention_days` is written into each event row at collection (collector
pipeline), and the events table's TTL (`received_at + retention_days`, where retention_days > 0)
drops expired rows in merges — a per-row TTL expression rather than a daily job, because ClickHouse
then expires whole parts without a scan and a source's retention needs no per-source DDL. A source
whose retention changes keeps the old figure on rows already stored (the promise made when they
were collected). `materialize_events_ttl` forces it now (tests, operators).

Rejected events: kept MAGPIE_REJECTED_RETENTION_DAYS (default 30) by the daily
`expire_rejected_events` job (a setting cannot live in DDL; the table's TTL is a 1-year bound).

`resume_privacy_requests`: re-enqueues deletion and export requests a crashed worker left pending
or running (deterministic job ids: a queued one is not queued twice).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.privacy import requests
from activation.privacy.deletion import JOB as DELETE_JOB
from activation.privacy.deletion import job_id as delete_job_id
from activation.privacy.export import JOB as EXPORT_JOB
from activation.privacy.wiring import wiring_of
from activation.services import of
from clickhouse.erase import MUTATION_SETTINGS, erase_plain, mutated

STALE_S = 120


def materialize_events_ttl(ch: Client) -> None:
    ch.command(f"ALTER TABLE {mutated(ch, 'events')} MATERIALIZE TTL", settings=MUTATION_SETTINGS)


async def expire_rejected_events(ctx: dict[str, Any]) -> int:
    """Delete rejected events older than the configured retention; returns how many went."""
    services, wiring = of(ctx), wiring_of(ctx)
    cutoff = services.clock() - timedelta(days=wiring.rejected_retention_days)
    where = "received_at < {cutoff:DateTime64(3, 'UTC')}"
    return await asyncio.to_thread(erase_plain, services.ch, "rejected_events", where, {"cutoff": cutoff})


async def resume_privacy_requests(ctx: dict[str, Any]) -> int:
    services = of(ctx)
    stale = await requests.unfinished(services.db, services.clock() - timedelta(seconds=STALE_S))
    for request in stale:
        if request.kind == "deletion":
            await services.enqueue(DELETE_JOB, request.id, job_id=delete_job_id(request.id))
        else:
            await services.enqueue(EXPORT_JOB, request.id, job_id=f"{EXPORT_JOB}:{request.id}")
    return len(stale)
