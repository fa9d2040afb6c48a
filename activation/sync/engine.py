"""The sync job: `sync_destination(ctx, destination_id, audience_id)`, a plain async job function.

`ctx["services"]` (activation.services.Services) carries what the worker opened at start-up: the
ClickHouse client, Redis, the credential key, the allow-list, sync settings, `sleep` and `http` (an
`(allow, timeout_s) -> SafeSession` factory) — tests swap the last three.
Job arguments are ids only: credentials are read and decrypted inside the job, never enqueued.
Each destination × audience sync is its own job, so a hanging platform delays nobody else.
An unexpected error inside a run is logged here with the credentials masked and re-raised as a
`SyncFailed` whose message is masked too, so neither the worker's log nor its failure list sees them.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any

from activation.crm.trait_sync import TraitSyncJob
from activation.db import Database
from activation.destinations import REGISTRY, Credentials
from activation.destinations.trait_mapping import is_trait_mode
from activation.net import AllowList
from activation.privacy.consent import consent_default
from activation.retry import RetryLater
from activation.services import Services, SessionFactory
from activation.services import of as services_of
from activation.sync import freshness
from activation.sync.crypto import CredentialCipher
from activation.sync.delivery import Delivery, Sleep
from activation.sync.limits import DestinationLock, LockBusy, RateLimiter
from activation.sync.redact import Redactor
from activation.sync.runner import SyncJob
from activation.sync.runs import SyncRun, mark_interrupted, new_run_id
from activation.sync.settings import SyncSettings
from activation.sync.state import Pair
from activation.sync.store import DestinationRecord, DestinationStore

JOB_NAME = "sync_destination"
log = logging.getLogger("magpie.sync")


class SyncFailed(Exception):
    """An unexpected error inside a sync run; the message has every credential form masked."""


def sync_job_id(destination_id: str, audience_id: str, tag: str = "") -> str:
    """Deterministic: one queued sync per destination × audience (and per replay or trigger tag)."""
    return f"sync:{destination_id}:{audience_id}" + (f":{tag}" if tag else "")


@dataclass(frozen=True)
class SyncDeps:
    db: Database
    redis: Any
    store: DestinationStore
    allow: AllowList
    settings: SyncSettings
    sleep: Sleep
    http: SessionFactory
    metrics: Any = None

    @classmethod
    def of(cls, services: Services) -> SyncDeps:
        db = services.db
        return cls(
            db=db,
            redis=services.redis,
            store=DestinationStore(db, CredentialCipher(services.secret_key)),
            allow=services.allow,
            settings=services.sync,
            sleep=services.sleep,
            http=services.http,
            metrics=services.metrics,
        )


async def sync_destination(
    ctx: dict[str, Any], destination_id: str, audience_id: str, trigger: str = "schedule"
) -> dict[str, Any]:
    """Job: bring one destination's copy of one audience to the computed membership."""
    deps = SyncDeps.of(services_of(ctx))
    record = await deps.store.get(destination_id)
    if record is None or not record.enabled:
        return {"destination_id": destination_id, "audience_id": audience_id, "status": "skipped"}
    lock = DestinationLock(
        deps.redis, destination_id, ttl_s=deps.settings.lock_ttl_s, wait_s=deps.settings.lock_wait_s
    )
    try:
        async with lock:
            await mark_interrupted(deps.db, destination_id)
            return await _run(deps, record, audience_id, trigger)
    except LockBusy:
        # Another worker holds the destination — or a crashed one did, until its lock expires. Come
        # back later rather than finish: a finished job id would block this pair's re-queue.
        raise RetryLater(f"destination {destination_id} is busy", deps.settings.lock_ttl_s) from None


async def _run(deps: SyncDeps, record: DestinationRecord, audience_id: str, trigger: str) -> dict[str, Any]:
    credentials = deps.store.credentials(record)
    try:
        return await _sync(deps, record, credentials, audience_id, trigger)
    except Exception as exc:
        redactor = Redactor(credentials.values())
        log.error(
            "sync of %s failed:\n%s", record.id, redactor.scrub("".join(traceback.format_exception(exc)))
        )
        raise SyncFailed(redactor(f"{type(exc).__name__}: {exc}")) from None


async def _sync(
    deps: SyncDeps, record: DestinationRecord, credentials: Credentials, audience_id: str, trigger: str
) -> dict[str, Any]:
    destination = REGISTRY[record.type]

    async def persist(fresh: Credentials) -> None:
        await deps.store.save_credentials(record, fresh)

    async with deps.http(deps.allow, deps.settings.request_timeout_s) as session:
        delivery = Delivery(
            destination, session, credentials, record.config,
            policy=deps.settings.retry, on_refresh=persist, sleep=deps.sleep,
        )  # fmt: skip
        kind = TraitSyncJob if is_trait_mode(record.config) else SyncJob  # CRM trait sync: a value diff
        job = kind(
            db=deps.db,
            record=record,
            pair=Pair(
                record.id,
                audience_id,
                record.consent_category,
                consent_default(record.config, record.consent_category),
            ),
            audience_key=await audience_key(deps.db, audience_id),
            delivery=delivery,
            limiter=RateLimiter(deps.redis, record.id, deps.settings.batches_per_s),
            batch_size=min(destination.batch_limit(record.config), deps.settings.max_batch_members),
            run=SyncRun(new_run_id(), record.id, audience_id, trigger),
            split_sends=deps.settings.split_sends_per_run,
        )
        newest = await freshness.newest_event_of_audience(deps.db, audience_id)
        run = await job.execute()
        count(deps.metrics, record.type, run)
        await freshness.record_sync(deps.redis, deps.metrics, record.id, newest, run.status)
        return job.summary()


def count(metrics: Any, kind: str, run: SyncRun) -> None:
    """Prometheus counters through the worker's metrics object (anything with `inc`), if any."""
    if metrics is None:
        return
    metrics.inc("magpie_destination_sync_runs_total", destination_type=kind, status=run.status)
    metrics.inc(
        "magpie_destination_records_sent_total", amount=run.added + run.removed, destination_type=kind
    )
    metrics.inc("magpie_destination_records_failed_total", amount=run.failed, destination_type=kind)
    metrics.inc("magpie_destination_sync_seconds_total", amount=run.duration_ms / 1000, destination_type=kind)


async def audience_key(db: Database, audience_id: str) -> str:
    rows = await db.rows("SELECT key FROM audiences FINAL WHERE id = {id:String}", {"id": audience_id})
    return str(rows[0][0]) if rows and rows[0][0] else audience_id
