"""The delivery job of one destination: `deliver_events(ctx, destination_id)` drains that
destination's queue, one platform request at a time, in queue order.

Isolation: each destination has its own job and lock (`events:<id>`, separate from its audience
syncs), so a slow or throttled platform only delays its own queue. A platform that asks for a wait
longer than `in_job_retry_s` (or keeps failing) pauses the destination: the job leaves the events at
the head of the queue and re-queues itself for when the wait is over — throttling never
dead-letters. Refused events go to the dead letters with the platform's reason. Unexpected errors
are logged and raised with every credential form masked (as audience syncs do).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from activation.connections import letters, queue
from activation.connections.reader import DELIVER_JOB, wake
from activation.connections.routing import destinations
from activation.connections.sender import Blocked, Sender, Tally
from activation.connections.settings import FORWARD, ForwardSettings
from activation.destinations.base import Credentials
from activation.destinations.events import EVENT_REGISTRY
from activation.services import Services
from activation.services import of as services_of
from activation.sync import freshness
from activation.sync.limits import DestinationLock, LockBusy
from activation.sync.redact import RedactingClient, Redactor
from activation.sync.store import DestinationRecord

log = logging.getLogger("magpie.connections")


class ForwardFailed(Exception):
    """An unexpected error while delivering; the message has every credential form masked."""


@dataclass
class Drained:
    requests: int = 0
    delivered: int = 0
    refused: int = 0
    status: str = "drained"

    def as_dict(self, destination_id: str) -> dict[str, Any]:
        return {"destination_id": destination_id, **self.__dict__}


async def deliver_events(ctx: dict[str, Any], destination_id: str) -> dict[str, Any]:
    return await run_delivery(services_of(ctx), destination_id, FORWARD)


async def run_delivery(services: Services, destination_id: str, settings: ForwardSettings) -> dict[str, Any]:
    record = await destinations(services).get(destination_id)
    if record is None or not record.enabled or record.type not in EVENT_REGISTRY:
        return {"destination_id": destination_id, "status": "skipped"}
    if await queue.paused_for_s(services.redis, destination_id):
        return {"destination_id": destination_id, "status": "paused"}
    lock = DestinationLock(
        services.redis, queue.lock_name(destination_id), ttl_s=services.sync.lock_ttl_s, wait_s=0
    )
    try:
        async with lock:
            drained = await _guarded(services, record, settings)
    except LockBusy:
        return {"destination_id": destination_id, "status": "busy"}
    if drained.status == "drained" and await queue.length(services.redis, destination_id):
        await wake(services, destination_id)  # arrived while this job was finishing
    return drained.as_dict(destination_id)


async def _guarded(services: Services, record: DestinationRecord, settings: ForwardSettings) -> Drained:
    credentials = destinations(services).credentials(record)
    try:
        return await _drain(services, record, settings, credentials)
    except Exception as exc:
        redactor = Redactor(credentials.values())
        log.error(
            "delivery to %s failed:\n%s", record.id, redactor.scrub("".join(traceback.format_exception(exc)))
        )
        raise ForwardFailed(redactor(f"{type(exc).__name__}: {exc}")) from None


async def _drain(
    services: Services, record: DestinationRecord, settings: ForwardSettings, credentials: Credentials
) -> Drained:
    client, redis, drained = EVENT_REGISTRY[record.type], services.redis, Drained()
    async with services.http(services.allow, services.sync.request_timeout_s) as session:
        sender = Sender(
            client, RedactingClient(session, credentials.values), credentials, record.config,
            services.sync.retry, settings, services.sleep,
        )  # fmt: skip
        deadline, idle_since = time.monotonic() + settings.deliver_run_s, None
        while time.monotonic() < deadline:
            head = await queue.peek(redis, record.id, settings.queue_peek)
            if not head:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settings.idle_s:
                    return drained
                await asyncio.sleep(0.02)
                continue
            idle_since = None
            batch = head[: client.take(head, record.config)]
            try:
                tally = await sender.send(batch)
            except Blocked as exc:
                await _blocked(services, record, batch, exc)
                drained.status = "paused"
                return drained
            await record_tally(services, record, tally)
            await queue.drop_head(redis, record.id, len(batch))
            drained.requests += 1
            drained.delivered += len(tally.delivered)
            drained.refused += len(tally.refused)
    drained.status = "more" if await queue.length(redis, record.id) else "drained"
    if drained.status == "more":
        await services.enqueue(DELIVER_JOB, record.id, job_id=f"deliver:{record.id}:{time.time_ns()}")
    return drained


async def _blocked(services: Services, record: DestinationRecord, batch: list[Any], exc: Blocked) -> None:
    log.warning("delivery to %s paused %.1f s: %s", record.id, exc.wait_s, exc.reason)
    await queue.count(services.redis, "failed", batch)
    await queue.pause(services.redis, record.id, exc.wait_s)
    job_id = f"deliver:{record.id}:{time.time_ns()}"
    await services.enqueue(DELIVER_JOB, record.id, job_id=job_id, defer_s=exc.wait_s)


async def record_tally(services: Services, record: DestinationRecord, tally: Tally) -> None:
    await letters.add(services.db, record.id, tally.refused)
    redis = services.redis
    await queue.count(redis, "delivered", tally.delivered)
    await freshness.record_delivery(
        redis, services.metrics, record.id, [e.inserted_at_ms for e in tally.delivered]
    )
    await queue.count(redis, "failed", tally.failed)
    await queue.count(redis, "skipped", tally.skipped)
    await queue.count(redis, "dead_lettered", [e for e, _ in tally.refused])
    metrics, kind = services.metrics, record.type
    metrics.inc("magpie_events_forwarded_total", amount=len(tally.delivered), destination_type=kind)
    metrics.inc("magpie_events_forward_failed_total", amount=len(tally.failed), destination_type=kind)
    metrics.inc("magpie_events_dead_lettered_total", amount=len(tally.refused), destination_type=kind)
