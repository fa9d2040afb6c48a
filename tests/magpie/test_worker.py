"""The arq seam: msgpack payloads (never pickle), crons running inside `magpie serve`, and
every worker setting we pass being a real arq parameter."""

from __future__ import annotations

import inspect
import time

import pytest
import redis
from arq.worker import Worker

from magpie.embedded_redis import socket_path
from magpie.worker import deserialize, serialize
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
