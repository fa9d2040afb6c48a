"""Jobs of streaming audiences: `stream_audiences` (every second) and `sweep_audience_windows`
(every minute).

The identity stitch job pushes each tick's touched profiles onto the Redis list `CHANGES_KEY`
(`{"profiles": [...], "newest_event_at": epoch s}`, or `{"all": true}` after a full restitch); the
names of that list and of these jobs are the contract, so identity never imports audiences.
`stream_audiences` takes what is queued, evaluates every streaming audience for those profiles in
dependency order, enqueues `sync_destination` for each destination of an audience whose membership
changed (the sync engine keeps its batch and rate limits), emits Audience Entered/Exited events
where asked, records freshness, and only then trims the list (a crash re-evaluates: idempotent).
The sweep queues the profiles whose windowed events just left a window (`identity.resolve`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from activation.audiences import freshness, store, streaming
from activation.audiences.computation import audience_lock, changed_in
from activation.audiences.emit import emit_audience_events
from activation.audiences.store import Audience
from activation.identity.resolve import profiles_of_events
from activation.locks import held
from activation.services import Services
from activation.services import of as services_of

CHANGES_KEY = "magpie:identity:changes"
LOCK_KEY = "magpie:audiences:stream:lock"
SWEEP_KEY = "magpie:audiences:sweep:last"
BATCH = 500
SYNC_JOB = "sync_destination"


async def stream_audiences(ctx: dict[str, Any]) -> dict[str, Any]:
    services = services_of(ctx)
    async with held(services.redis, LOCK_KEY) as acquired:  # renewed: a killed worker frees it in 30 s
        if not acquired:
            return {"skipped": "another stream run is running"}
        raw = await services.redis.lrange(CHANGES_KEY, 0, BATCH - 1)
        if not raw:
            return {"batches": 0}
        result = await _process([orjson.loads(item) for item in raw], ctx, services)
        await services.redis.ltrim(CHANGES_KEY, len(raw), -1)
        return result


async def _process(entries: list[dict[str, Any]], ctx: dict[str, Any], services: Services) -> dict[str, Any]:
    audiences = await asyncio.to_thread(store.live, services.ch)
    ordered = streaming.streaming_order(audiences)
    if any(e.get("all") for e in entries):  # a full restitch: full runs, on the run_audience job
        for audience in ordered:
            await services.enqueue("run_audience", audience.id)
        return {"batches": len(entries), "full_runs": len(ordered)}
    scope = sorted({p for e in entries for p in e.get("profiles", [])})
    newest = max((float(e["newest_event_at"]) for e in entries if e.get("newest_event_at")), default=None)
    changed, moved = 0, set[str]()
    for audience in ordered:  # one micro-batch per audience for the whole scope (chunked inside)
        async with audience_lock(services.redis, audience.id):
            run = await asyncio.to_thread(streaming.evaluate, services.ch, audience, scope, services.clock())
        if run is not None:
            changed += 1
            await _deliver(ctx, services, audience, run)
            moved |= await asyncio.to_thread(changed_in, services.ch, audience.id, run["computed_at"])
    await services.profiles_changed(moved, ())  # their documents list their audiences
    await asyncio.to_thread(freshness.record, services.ch, ordered, streaming.STREAMING, newest, time.time())
    freshness.publish(services.metrics, ordered, newest, time.time())
    return {"batches": len(entries), "profiles": len(scope), "audiences": len(ordered), "changed": changed}


async def _deliver(ctx: dict[str, Any], services: Services, audience: Audience, run: dict[str, Any]) -> None:
    """Micro-batch out: one sync per destination, then the events if asked. The job id names the run
    (run times are unique per audience): an id already used is refused by the queue even after that
    job started, so an id shared with an earlier micro-batch would leave this one's changes waiting
    for the sync scheduler. Syncs of one destination still run one at a time (its lock)."""
    for destination_id in audience.destinations:
        job_id = f"sync:{destination_id}:{audience.id}:stream:{run['computed_at']}"
        await services.enqueue(SYNC_JOB, destination_id, audience.id, "streaming", job_id=job_id)
    if audience.emit_events:
        await emit_audience_events(ctx, audience.id, run["computed_at"])


async def sweep_audience_windows(ctx: dict[str, Any]) -> dict[str, Any]:
    """Queue the profiles with a windowed event whose window boundary passed since the last sweep."""
    services = services_of(ctx)
    now = services.clock()
    last = await services.redis.get(SWEEP_KEY)
    since = datetime.fromtimestamp(float(last), UTC) if last else now - timedelta(seconds=120)
    audiences = streaming.streaming_order(await asyncio.to_thread(store.live, services.ch))
    spans = {
        (leaf.kind, leaf.name, int(leaf.within_days or 0)) for a in audiences for leaf in streaming.windows(a)
    }
    found: set[str] = set()
    for kind, name, days in sorted(spans):
        window = (since - timedelta(days=days), now - timedelta(days=days))
        found |= await asyncio.to_thread(profiles_of_events, services.ch, kind, name, *window)
    if found:
        entry = {"profiles": sorted(found), "newest_event_at": None, "reason": "window"}
        await services.redis.rpush(CHANGES_KEY, orjson.dumps(entry))
    await services.redis.set(SWEEP_KEY, str(now.timestamp()))
    return {"windows": len(spans), "profiles": len(found)}
