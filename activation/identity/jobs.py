"""Stitching jobs: plain async functions for any queue (the worker module registers them with arq).

ctx["services"].ch is a synchronous clickhouse-connect client (called through a thread), .redis a
redis.asyncio client. One stitch runs at a time (a Redis lock with a short TTL renewed while the run
lives, activation.locks, so a killed worker frees it within seconds); a run that finds the lock taken
returns at once, since the running one or the next tick covers its events. Every run records
its outcome in a Redis hash that the API and /metrics read, so failures are visible, not just logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from activation.identity.cache import ProfileCache
from activation.identity.identifiers import Identifier
from activation.identity.stitching import StitchReport, stitch_full, stitch_incremental
from activation.locks import held
from activation.services import of as services_of

STITCH_JOB = "identity_stitch"
RESTITCH_JOB = "identity_restitch"
STITCH_JOB_ID = "identity:stitch"
LOCK_KEY = "magpie:identity:stitch:lock"
STATUS_KEY = "magpie:identity:stitch:status"
# Each run's touched profiles, for the `stream_audiences` job (the key is the contract between them)
CHANGES_KEY = "magpie:identity:changes"
CHAIN_KEY = "magpie:identity:stitch:chain"
CHAIN_S = 10.0  # one stitch job ticks this long, then queues its successor
TICK_EVERY_S = 1.0  # a tick starts at most once a second...
TICK_GAP_S = 0.1  # ...and at least this long after the previous one ended
STREAM_JOB = "stream_audiences"  # evaluates the profiles a tick touched (activation.audiences.stream_jobs)
FULL_WAIT_S = 900  # a full restitch waits this long for a running stitch (the lock itself: activation.locks)
DEBOUNCE_S = 1.0
WRITE_REST_RATIO = 4.0  # under load a stitch chain's document writes rest 4 times as long as they took...
WRITE_REST_MAX_S = 10.0  # ...at most this long (the Profile API's documents lag the ticks by up to it)
log = logging.getLogger(__name__)


def restitch_job_id(reason: str) -> str:
    """Deterministic id for a full restitch (e.g. reason = the rules version that asked for it)."""
    return f"identity:restitch:{reason}"


async def identity_stitch(ctx: dict[str, Any]) -> dict[str, Any]:
    """Incremental stitch ticks back to back for CHAIN_S, then a successor job takes over.

    A tick starts TICK_EVERY_S after the previous one started, or TICK_GAP_S after it ended when it
    took longer, so under load the period is the tick's own duration rather than the next free slot
    of a 2 s cron (a 1.7 s tick used to mean a 4 s period: an event waited 2 s for its tick on
    average). Each tick that touched profiles queues the streaming-audience job at once. One chain
    runs at a time (CHAIN_KEY, renewed); the cron every 2 s restarts it if its worker died."""
    services = services_of(ctx)
    writes = Writes(services)  # the ticks' document writes, behind the ticks
    try:
        async with held(services.redis, CHAIN_KEY) as chained:
            if not chained:
                return {"mode": "incremental", "skipped": "a stitch chain is running"}
            report, ticks, deadline = await _tick(ctx, writes), 1, time.monotonic() + CHAIN_S
            while time.monotonic() < deadline:
                started = time.monotonic()
                report, ticks = await _tick(ctx, writes), ticks + 1
                await services.sleep(max(TICK_GAP_S, started + TICK_EVERY_S - time.monotonic()))
        if CHAIN_S > 0:  # the successor ticks while this chain's last write finishes
            await services.enqueue(STITCH_JOB, job_id=f"{STITCH_JOB_ID}:{time.time_ns()}")
    finally:
        await writes.drain()
    return {**report, "ticks": ticks}


async def stitch_tick(ctx: dict[str, Any]) -> dict[str, Any]:
    """One incremental stitch, now (no chain; nothing queued): what a tick of the chain does first."""
    return await _run(ctx, "incremental")


async def _tick(ctx: dict[str, Any], writes: Writes) -> dict[str, Any]:
    async def stream(report: StitchReport) -> None:
        await services_of(ctx).enqueue(STREAM_JOB, job_id=f"stream:{time.time_ns()}")

    return await _run(ctx, "incremental", stream, writes)


async def identity_restitch(ctx: dict[str, Any]) -> dict[str, Any]:
    """Full restitch of every link (rules changed, many unmerges, or on demand)."""
    return await _run(ctx, "full")


class Changes(NamedTuple):
    profiles: frozenset[str]
    identifiers: frozenset[Identifier]
    everything: bool

    @staticmethod
    def of(report: StitchReport) -> Changes:
        return Changes(report.changed_profiles, report.changed_identifiers, report.changed_everything)


async def _kept(services: Any, changes: Changes) -> None:
    """What is kept from the changed profiles (Services.profiles_changed: the Profile API's stored
    documents), then the cache entries dropped."""
    if not changes.everything:
        await services.profiles_changed(changes.profiles, changes.identifiers)
    await _invalidate(ProfileCache(services.redis), changes)
    if changes.everything:  # after the new generation: rebuilt in it
        await services.profiles_changed((), (), everything=True)


class Writes:
    """A stitch chain's document writes (`_kept`): one at a time, never waited for by a tick. The
    changes of ticks that end while a write runs are merged into the next one, so under load the
    writes fall behind by at most one write and cost less (a profile touched by three ticks is
    written once), instead of slowing the ticks. After a write, the next waits WRITE_REST_RATIO times
    as long (at most WRITE_REST_MAX_S) while changes merge: writes take at most a fifth of the time.
    Streaming bench (1,000 events/s, 3,000 visitors, 2 cores), one session: without document
    writes p95 3.78 s, ticks 1.0 s; writing after every tick p95 6.1-13 s, ticks 1.6-4.4 s; this
    way p95 5.8-7.3 s, ticks 1.2-1.6 s: the writes still take the store's CPU from the ticks.
    A failed write fails the chain at its next tick (the cron restarts it; the writer has already
    stopped serving stored documents: documents.DocumentWriter)."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self._task: asyncio.Task[None] | None = None
        self._profiles: set[str] = set()
        self._identifiers: set[Identifier] = set()
        self._everything = False
        self._draining = False

    def add(self, changes: Changes) -> None:
        self._profiles |= changes.profiles
        self._identifiers |= changes.identifiers
        self._everything |= changes.everything
        if self._task is not None and self._task.done():
            self._task.result()  # raises a failed write's error
            self._task = None
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._profiles or self._identifiers or self._everything:
            changes = Changes(frozenset(self._profiles), frozenset(self._identifiers), self._everything)
            self._profiles, self._identifiers, self._everything = set(), set(), False
            started = time.monotonic()
            await _kept(self.services, changes)
            rest = min(WRITE_REST_MAX_S, (time.monotonic() - started) * WRITE_REST_RATIO)
            if not self._draining and (self._profiles or self._identifiers):
                await self.services.sleep(rest)  # the ticks get the store meanwhile; changes merge

    async def drain(self) -> None:
        self._draining = True
        if self._task is not None:
            await self._task


async def _run(
    ctx: dict[str, Any],
    mode: str,
    changed: Callable[[StitchReport], Awaitable[None]] | None = None,
    writes: Writes | None = None,
) -> dict[str, Any]:
    services = services_of(ctx)
    redis = services.redis
    async with held(redis, LOCK_KEY, wait_s=FULL_WAIT_S if mode == "full" else 0) as acquired:
        if not acquired:
            return {"mode": mode, "skipped": "another stitch is running"}
        try:
            report = await asyncio.to_thread(_stitch, services.ch, mode, services.clock())
        except Exception as exc:
            await _record(
                redis,
                {"last_error": f"{type(exc).__name__}: {exc}"[:500], "last_error_at": str(time.time())},
                failed=True,
            )
            log.exception("identity %s stitch failed", mode)
            raise
        await _announce(redis, report)
        if changed is not None and report.changed_profiles:
            await changed(report)  # streaming audiences start on it while the documents are written
    if writes is None:
        await _kept(services, Changes.of(report))
    else:  # the chain: the next tick runs while this one's documents are written
        writes.add(Changes.of(report))
    await _record(redis, {"last_ok_at": str(time.time()), "last_report": str(report.to_dict())}, failed=False)
    return report.to_dict()


async def _announce(redis: Any, report: StitchReport) -> None:
    """Tell whoever evaluates profiles as they change (streaming audiences) what this run touched."""
    if report.changed_everything:
        entry: dict[str, Any] = {"all": True}
    elif report.changed_profiles:
        entry = {"profiles": sorted(report.changed_profiles), "newest_event_at": report.newest_event_at}
    else:
        return
    await redis.rpush(CHANGES_KEY, orjson.dumps(entry))


async def _invalidate(cache: ProfileCache, changes: Changes) -> None:
    if changes.everything:
        await cache.invalidate_all()
    else:
        await cache.invalidate(changes.profiles, changes.identifiers)


def _stitch(ch: Any, mode: str, now: datetime) -> StitchReport:
    return stitch_full(ch, now) if mode == "full" else stitch_incremental(ch, now)


async def _record(redis: Any, fields: dict[str, str], *, failed: bool) -> None:
    await redis.hset(STATUS_KEY, mapping=fields)
    await redis.hincrby(STATUS_KEY, "runs_failed" if failed else "runs_ok", 1)
    if failed:
        await redis.hincrby(STATUS_KEY, "consecutive_failures", 1)
    else:
        await redis.hset(STATUS_KEY, "consecutive_failures", "0")


async def stitch_status(redis: Any) -> dict[str, str]:
    """The recorded outcome of stitch runs, for the admin API and /metrics."""
    raw = await redis.hgetall(STATUS_KEY)
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
