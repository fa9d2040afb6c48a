"""The pull job `pull_crm_source(ctx, source_id, trigger)` and the cron `schedule_crm_pulls(ctx)`.

One pull at a time per source (a Redis lock shared by every worker). Objects are read in order
(people, then companies, then deals); every page is applied to identity and only then its cursor is
saved, so a crash re-reads at most one page (idempotent upserts) and never skips one. A platform
that says its allowance is spent (HubSpot `DAILY`, Salesforce `REQUEST_LIMIT_EXCEEDED` or usage past
the configured share) ends the run as `throttled`; the next scheduled pull resumes from the cursor.
Credentials are decrypted inside the job (job arguments are ids) and refreshed tokens stored sealed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from activation.crm import store
from activation.crm.client import Backoff, LimitReached
from activation.crm.ingest import Target, apply_page
from activation.crm.platforms import PLATFORMS
from activation.crm.sources import CrmSource, CrmSourceSettings
from activation.destinations.base import Credentials, DestinationError
from activation.identity import store as identity_store
from activation.identity.cache import ProfileCache
from activation.retry import RetryLater
from activation.services import Services
from activation.services import of as services_of
from activation.sync.limits import DestinationLock, LockBusy
from activation.sync.redact import Redactor

JOB_NAME = "pull_crm_source"
LOCK_TTL_S = 120.0
BUSY_RETRY_S = 5.0  # a pull asked for while another runs retries after 5 s, 10 s, 15 s…
log = logging.getLogger("magpie.crm")


def pull_job_id(source_id: str, tag: str) -> str:
    return f"crm_pull:{source_id}:{tag}"


def settings_of(services: Services) -> CrmSourceSettings:
    return CrmSourceSettings(services.db, services.secret_key, services.allow)


async def pull_crm_source(ctx: dict[str, Any], source_id: str, trigger: str = "schedule") -> dict[str, Any]:
    """Job: pull what changed in one CRM source since its cursors."""
    services = services_of(ctx)
    settings = settings_of(services)
    source = await settings.get(source_id)
    if source is None or not await _enabled(services, source_id):
        return {"source_id": source_id, "status": "skipped"}
    lock = DestinationLock(services.redis, f"crm:{source_id}", ttl_s=LOCK_TTL_S, wait_s=1.0)
    try:
        async with lock:
            await store.mark_interrupted(services.db, source_id)
            run = await _run(services, settings, source, trigger)
    except LockBusy:
        # the holder is alive (its lock is renewed): ask again soon, then less often
        delay_s = min(LOCK_TTL_S, BUSY_RETRY_S * int(ctx.get("job_try", 1)))
        raise RetryLater(f"source {source_id} is being pulled", delay_s) from None
    return {"id": run.id, "source_id": source_id, "status": run.status, **run.counts()}


async def _enabled(services: Services, source_id: str) -> bool:
    sql = "SELECT enabled FROM sources FINAL WHERE id = {s:String} AND deleted = 0"
    rows = await services.db.rows(sql, {"s": source_id})
    return bool(rows and rows[0][0])


async def _run(
    services: Services, settings: CrmSourceSettings, source: CrmSource, trigger: str
) -> store.PullRun:
    progress = [store.PullRun(store.new_run_id(), source.source_id, trigger)]  # the newest counts
    await store.save_run(services.db, progress[0])
    credentials = settings.credentials(source)
    redactor = Redactor(credentials.values())
    status = "succeeded"
    try:
        await _pull(services, settings, source, credentials, progress)
    except LimitReached as exc:
        progress[0], status = progress[0].note(redactor(exc.reason)), "throttled"
    except DestinationError as exc:
        progress[0], status = progress[0].add(errors=1).note(redactor(exc.reason)), "failed"
    except BaseException:
        await asyncio.shield(store.save_run(services.db, progress[0].finished("interrupted")))
        raise
    run = progress[0].finished(status)
    await store.save_run(services.db, run)
    log.info("crm pull %s source=%s status=%s %s", run.id, source.source_id, status, run.counts())
    return run


async def _pull(
    services: Services,
    settings: CrmSourceSettings,
    source: CrmSource,
    credentials: Credentials,
    progress: list[store.PullRun],
) -> None:
    platform = PLATFORMS[source.type]

    async def persist(fresh: Credentials) -> None:
        await settings.save_credentials(source, fresh)

    region = (await asyncio.to_thread(identity_store.read_rules, services.ch)).default_phone_region
    async with services.http(services.allow, services.sync.request_timeout_s) as session:
        retry = services.sync.retry  # the sync engine's retry policy: attempts and backoff
        backoff = Backoff(retry.max_attempts, retry.base_delay_s, retry.max_delay_s)
        client = platform.client(
            session, credentials, source.config, on_refresh=persist, sleep=services.sleep, backoff=backoff
        )
        await client.ensure_token()
        puller = platform.puller(client, source.config)
        for spec in platform.objects(source.config):
            target = Target(source.source_id, source.type, spec, region, services.secret_key)
            cursor = await store.read_cursor(services.db, source.source_id, spec.name)
            now_ms = int(services.clock().timestamp() * 1000)
            async for page in puller.pages(spec, cursor, now_ms):
                counts = await asyncio.to_thread(apply_page, services.ch, target, page, datetime.now(UTC))
                await store.write_cursor(services.db, source.source_id, spec.name, page.cursor)
                if any(counts[k] for k in ("created", "updated", "merged", "deleted")):
                    await ProfileCache(services.redis).invalidate_all()  # as imports do: restitched inline
                    await services.profiles_changed((), (), everything=True)  # stored documents rebuilt
                run = progress[0].add(**counts)
                for note in page.notes:
                    run = run.note(note)
                progress[0] = run
                await store.save_run(services.db, run)


async def schedule_crm_pulls(ctx: dict[str, Any]) -> dict[str, Any]:
    """Cron: queue a pull for every enabled CRM source whose last pull started `every_s` ago or more."""
    services = services_of(ctx)
    last = await store.last_started(services.db)
    now = datetime.now(UTC)
    queued = 0
    for source in await settings_of(services).all():
        every_s = PLATFORMS[source.type].every_s(source.config) if source.type in PLATFORMS else 0
        started = last.get(source.source_id)
        if not every_s or (started is not None and (now - started).total_seconds() < every_s):
            continue
        if not await _enabled(services, source.source_id):
            continue
        tag = f"{int(time.time()) // every_s}"
        job_id = pull_job_id(source.source_id, tag)
        queued += bool(await services.enqueue(JOB_NAME, source.source_id, "schedule", job_id=job_id))
    return {"queued": queued}
