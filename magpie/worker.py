"""Background jobs on arq — the only module that imports arq.

Job functions are plain `async def job(ctx, ...)` from activation/; this module wraps them with
failure accounting and a timeout, serialises payloads with msgpack (never pickle), and runs the arq
worker either inside `magpie serve` or as `magpie worker`. Every failed attempt — an exception, a
timeout, a `RetryLater` on its last try — is recorded (job, id, try, masked error, time) in a Redis
list (`magpie:jobs:failures`, newest first, at most MAX_FAILURES_KEPT) that `/admin/v1/jobs/failed`
lists, and counted in the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson
from arq import cron
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from arq.cron import CronJob
from arq.worker import Function, Retry, Worker, func
from redis.exceptions import RedisError

from activation.retry import RetryLater
from activation.sync.redact import Redactor
from collector.metrics import Metrics

log = logging.getLogger("magpie.worker")
JobFunction = Callable[..., Coroutine[Any, Any, Any]]
FAILED_KEY = "magpie:jobs:failures"
MAX_FAILURES_KEPT = 500
MAX_TRIES = 5
JOB_TIMEOUT_S = 600
ARQ_GRACE_S = 5  # arq's own timeout fires later, so ours (a recorded failure) fires first
# arq marks a running job with an in-progress key that expires after the longest job timeout + 10 s
# (615 s here): a worker killed mid-job left its job, and every cron with a pinned id (the stitch
# every 2 s), stuck for ten minutes. The key lives IN_PROGRESS_TTL_S instead and the worker renews
# the keys of its running jobs every third of that, so a dead worker's jobs run again within a minute.
IN_PROGRESS_TTL_S = 45.0
# credential-looking values in an error message: `Bearer x`, `Basic x`, `token=x`, `"secret": "x"`, whsec_…
_CREDENTIAL = re.compile(
    r"(?P<scheme>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?P<name>\w*(?:token|secret|password|passwd|api[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
    r"|\bwhsec_[A-Za-z0-9+/=]+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CronSpec:
    """Run `function` every `every_s` seconds (a divisor of 60 or a multiple of 60 up to an hour),
    or daily at `daily_at` (hour, minute). `job_id` pins one id so overlapping runs coalesce."""

    function: JobFunction
    every_s: int = 0
    daily_at: tuple[int, int] | None = None
    job_id: str | None = None
    run_at_startup: bool = False


@dataclass
class JobSet:
    functions: Sequence[JobFunction] = ()
    crons: Sequence[CronSpec] = ()
    ctx: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """A job's exception (kept by arq as its result) as data, credential-shaped values masked."""
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": mask(str(value), {})[:500]}
    return repr(value)


def serialize(value: Any) -> bytes:
    return bytes(msgpack.packb(value, default=_plain, use_bin_type=True))


def deserialize(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _accounted(function: JobFunction, metrics: Metrics, timeout_s: float = JOB_TIMEOUT_S) -> JobFunction:
    name = function.__name__

    @functools.wraps(function)
    async def job(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        metrics.inc("magpie_job_runs_total", job=name)
        try:
            async with asyncio.timeout(timeout_s):
                return await function(ctx, *args, **kwargs)
        except RetryLater as exc:
            if ctx.get("job_try", 1) < MAX_TRIES:
                metrics.inc("magpie_job_retries_total", job=name)
                raise Retry(defer=exc.defer_s) from exc
            await _failed(ctx, metrics, name, exc, timeout_s)
            raise
        except Exception as exc:
            await _failed(ctx, metrics, name, exc, timeout_s)
            raise

    return job


def mask(message: str, ctx: dict[str, Any]) -> str:
    """An error message without the worker's secrets (and their derived forms) or anything shaped like
    a credential; destination credentials are already masked by the sync job itself."""
    secrets = [str(ctx[k]) for k in ("secret_key", "admin_token") if ctx.get(k)]
    return _CREDENTIAL.sub(_masked_credential, Redactor(secrets).scrub(message))


def _masked_credential(match: re.Match[str]) -> str:
    return (match.group("scheme") or match.group("name") or "whsec_") + "***"


def failure_entry(ctx: dict[str, Any], name: str, exc: BaseException, timeout_s: float) -> dict[str, Any]:
    text = f"timed out after {timeout_s:g} s" if isinstance(exc, TimeoutError) and not str(exc) else str(exc)
    return {
        "job": name,
        "job_id": ctx.get("job_id"),
        "try": ctx.get("job_try", 1),
        "error": type(exc).__name__,
        "message": mask(text, ctx)[:500],
        "failed_at": datetime.now(UTC).isoformat(),
    }


async def _failed(
    ctx: dict[str, Any], metrics: Metrics, name: str, exc: BaseException, timeout_s: float
) -> None:
    """Count and record one failed attempt (bounded list, newest first). Recording must never hide the
    job's own error, so a Redis problem here is logged and the original exception still propagates."""
    metrics.inc("magpie_job_failures_total", job=name)
    entry = failure_entry(ctx, name, exc, timeout_s)
    redis = ctx.get("redis")
    if redis is None:
        return
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.lpush(FAILED_KEY, orjson.dumps(entry))
            pipe.ltrim(FAILED_KEY, 0, MAX_FAILURES_KEPT - 1)
            await pipe.execute()
    except Exception as record_error:
        log.warning(
            "could not record the failure of job %s: %s", entry["job_id"], type(record_error).__name__
        )


def _cron_fields(every_s: int) -> tuple[set[int] | None, set[int]]:
    """(minute, second) sets for arq's cron."""
    if every_s < 60:
        return None, set(range(0, 60, every_s))
    return set(range(0, 60, max(1, every_s // 60))), {0}


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


class JobRunner:
    """Owns the arq pool (for enqueueing) and, when asked, a worker running in this process."""

    def __init__(self, redis_url: str, jobs: JobSet, metrics: Metrics) -> None:
        self.redis_url, self.jobs, self.metrics = redis_url, jobs, metrics
        self.pool: ArqRedis | None = None
        self.worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.pool = await create_pool(
            redis_settings(self.redis_url), job_serializer=serialize, job_deserializer=deserialize
        )

    def _functions(self) -> list[Function]:
        timeout = JOB_TIMEOUT_S + ARQ_GRACE_S
        return [
            func(_accounted(f, self.metrics), name=f.__name__, max_tries=MAX_TRIES, timeout=timeout)
            for f in self.jobs.functions
        ]

    async def start_worker(self) -> None:
        assert self.pool is not None
        crons = []
        for spec in self.jobs.crons:
            crons.append(self._cron(spec))
        self.worker = Worker(
            functions=self._functions(),
            cron_jobs=crons,
            redis_pool=self.pool,
            handle_signals=False,
            ctx=dict(self.jobs.ctx),
            job_serializer=serialize,
            job_deserializer=deserialize,
            max_tries=MAX_TRIES,
            job_timeout=JOB_TIMEOUT_S + ARQ_GRACE_S,
            keep_result=3600,
            poll_delay=0.2,
            # jobs are async and wait on I/O; two of them loop for seconds at a time (the stitch chain
            # and the forwarding reader) and each event destination's delivery drains for a while, so
            # 8 slots could leave a destination's delivery queued behind others (blocking work runs
            # in the default thread pool either way)
            max_jobs=32,
        )
        self.worker.in_progress_timeout_s = IN_PROGRESS_TTL_S  # renewed by _renew_in_progress
        self._task = asyncio.create_task(self.worker.async_run())
        self._renewer = asyncio.create_task(self._renew_in_progress(self.worker))

    async def _renew_in_progress(self, worker: Worker) -> None:
        """Keep the in-progress keys of this worker's running jobs alive (see IN_PROGRESS_TTL_S)."""
        ttl_ms = int(IN_PROGRESS_TTL_S * 1000)
        while True:
            await asyncio.sleep(IN_PROGRESS_TTL_S / 3)
            running = [job_id for job_id, task in list(worker.tasks.items()) if not task.done()]
            try:
                async with worker.pool.pipeline(transaction=False) as pipe:
                    for job_id in running:
                        pipe.pexpire(in_progress_key_prefix + job_id, ttl_ms)  # no-op once deleted
                    await pipe.execute()
            except (OSError, RedisError):
                log.warning("renewing the in-progress marks of %d jobs failed", len(running), exc_info=True)

    def _cron(self, spec: CronSpec) -> CronJob:
        job = _accounted(spec.function, self.metrics)
        hour: set[int] | None = None
        minute: set[int] | None
        if spec.daily_at is not None:
            hour, minute, second = {spec.daily_at[0]}, {spec.daily_at[1]}, {0}
        else:
            minute, second = _cron_fields(spec.every_s)
        return cron(
            job,
            name=f"cron:{spec.function.__name__}",
            hour=hour,
            minute=minute,
            second=second,
            unique=True,
            job_id=spec.job_id,
            run_at_startup=spec.run_at_startup,
        )

    async def enqueue(
        self, name: str, *args: Any, job_id: str | None = None, defer_s: float | None = None
    ) -> bool:
        """Enqueue by name; a deterministic `job_id` makes this idempotent. False if already queued."""
        assert self.pool is not None
        job = await self.pool.enqueue_job(name, *args, _job_id=job_id, _defer_by=defer_s)
        return job is not None

    async def failures(self) -> list[dict[str, Any]]:
        """Recorded failed attempts, newest first."""
        assert self.pool is not None
        raw: list[bytes] = await self.pool.lrange(FAILED_KEY, 0, MAX_FAILURES_KEPT - 1)  # type: ignore[misc]
        return [orjson.loads(item) for item in raw]

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        if self.worker is not None:
            await self.worker.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.pool is not None:
            await self.pool.aclose()
