"""`magpie serve` as a supervisor of real processes: the store, Redis, web processes and a worker,
each its own process; restarts; kill -9 leaves no child; a signal to the whole group flushes."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import clickhouse_connect
import httpx
import pytest

from collector.checkpoint import Checkpoint, save_checkpoint
from collector.spool import Spool
from magpie.supervisor import spool_backlog
from tests.server import ServerProcess, alive

pytestmark = pytest.mark.timeout(240)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _track(server: ServerProcess, write_key: str, message_id: str) -> httpx.Response:
    body = {"event": "x", "userId": "u", "messageId": message_id}
    return server.http.post("/v1/track", json=body, auth=(write_key, ""))


def _wait_for(check: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_serve_runs_each_part_as_its_own_process_and_restarts_a_dead_one(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", MAGPIE_WEB_PROCESSES="2").start()
    try:
        children = server.children()
        assert set(children) == {"supervisor", "clickhouse", "redis", "web-0", "web-1", "worker"}
        assert len(set(children.values())) == 6 and all(alive(pid) for pid in children.values())
        assert "magpie.cli clickhouse" in _cmdline(children["clickhouse"])
        assert "redis-server" in _cmdline(children["redis"])
        assert "magpie.cli web --fd" in _cmdline(children["web-0"])
        assert "magpie.cli worker --headless" in _cmdline(children["worker"])
        # the first-start banner tells where to point a BI tool
        store_url = f"http://127.0.0.1:{server.env['MAGPIE_CLICKHOUSE_PORT']}"
        assert f"ClickHouse (HTTP, database magpie; for BI tools): {store_url}" in server.log()
        assert httpx.get(store_url + "/?query=SELECT+1").text == "1\n"
        for name in ("clickhouse", "redis", "web-0", "worker"):  # own process groups
            assert os.getpgid(children[name]) == children[name]
        source = server.create_source("supervised")
        os.kill(children["web-0"], signal.SIGKILL)
        _wait_for(lambda: server.children().get("web-0") not in (None, children["web-0"]))
        _wait_for(lambda: server.http.get("/readyz").status_code == 200)
        ids = [str(uuid.uuid4()) for _ in range(20)]
        assert all(_track(server, source["write_key"], i).status_code == 200 for i in ids)
        assert {e["messageId"] for e in server.wait_for_ids(source["id"], ids)} >= set(ids)
        assert "web-0" in server.log() and "restarting in" in server.log()
        # one /metrics for the deployment: whichever web process answers, the counts are the sum
        _wait_for(lambda: server.metric("magpie_events_accepted_total", source=source["id"]) == 20)
        assert all(server.metric("magpie_events_accepted_total", source=source["id"]) == 20 for _ in range(6))
    finally:
        server.stop()


def test_kill_9_of_the_supervisor_leaves_no_child(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    pids = [pid for name, pid in server.children().items() if name != "supervisor"]
    assert len(pids) == 4
    server.kill()  # waits (bounded) until every recorded child is gone, or fails
    assert not any(alive(pid) for pid in pids)


def test_ctrl_c_to_the_process_group_flushes_cleanly(tmp_path: Path) -> None:
    """SIGINT to the whole group, as a terminal's Ctrl-C does: only the supervisor gets it (children
    have their own groups), so Redis and ClickHouse stay up until the web processes have flushed."""
    server = ServerProcess(tmp_path / "data", own_group=True, MAGPIE_FLUSH_INTERVAL_MS="5000").start()
    source = server.create_source("ctrl-c")
    ids = [str(uuid.uuid4()) for _ in range(300)]
    batch = {"batch": [{"type": "track", "event": "bye", "userId": "u", "messageId": i} for i in ids]}
    assert server.http.post("/v1/batch", json=batch, auth=(source["write_key"], "")).status_code == 200
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGINT)
    assert server.process.wait(90) == 0
    log = server.log()
    assert "Application shutdown failed" not in log and "Traceback" not in log, log[-3000:]
    order = [log.index(f"stopped {name}") for name in ("web-0", "worker", "redis", "clickhouse")]
    assert order == sorted(order), log[-2000:]
    # Read back with the writers held off (fault file): only the shutdown flush can have stored them.
    restarted = ServerProcess(server.data_dir)
    restarted.set_clickhouse_down(True)
    restarted.start()
    try:
        port = int(restarted.env["MAGPIE_CLICKHOUSE_PORT"])
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database="magpie")
        count = client.query(
            "SELECT count() FROM events WHERE source_id = {s:String}", parameters={"s": source["id"]}
        ).result_rows[0][0]
        assert count == 300
    finally:
        restarted.stop()


async def test_a_spool_with_unwritten_events_is_seen_as_a_backlog(tmp_path: Path) -> None:
    """Lowering MAGPIE_WEB_PROCESSES must not strand a higher-numbered spool's events."""
    directory = tmp_path / "spool" / "web-1"
    spool = Spool(directory, 1 << 20)
    await spool.append([b"event-1", b"event-2"])
    end = spool.committed
    spool.close()
    assert spool_backlog(directory)
    save_checkpoint(directory / "checkpoint.json", Checkpoint(end))
    assert not spool_backlog(directory)
    assert not spool_backlog(tmp_path / "spool" / "web-7")  # never existed
