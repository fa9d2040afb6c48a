"""`make bench` (collector part): a bare Starlette app vs. the Magpie collector, same machine,
same server stack, same load generator (wrk from Debian, in its own process), one run.

Each server is pinned to CPU 0 and wrk to CPU 1 so "per core" means one core. Prints requests/s,
events/s, p50/p99 and the ratio to the bare app; then p99 latency at half of Magpie's peak rate
(open-loop, bench/fixed_rate.py) and how long an acknowledged event takes to become visible.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.server import ServerProcess, free_port

HERE = Path(__file__).resolve().parent
DURATION_S = int(os.environ.get("BENCH_DURATION_S", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))


def pinned(cpu: int) -> list[str]:
    return (
        ["taskset", "-c", str(cpu)]
        if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1
        else []
    )  # type: ignore[operator]


def wrk(url: str, batch: int, auth: str) -> dict[str, float]:
    env = {**os.environ, "BATCH": str(batch), "AUTH": auth}
    command = [
        *pinned(1),
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{DURATION_S}s",
        "--latency",
        "-s",
        str(HERE / "wrk_post.lua"),
        url,
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "events_s": rps * batch,
        "p50_ms": _percentile(out, "50"),
        "p99_ms": _percentile(out, "99"),
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def _percentile(out: str, which: str) -> float:
    value, unit = re.search(rf"\s{which}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def bare_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([*pinned(0), sys.executable, str(HERE / "bare_app.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.post(url + "/v1/track", content=b"{}")
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("bare app did not start")


def magpie_server(data_dir: Path) -> tuple[ServerProcess, str, str]:
    """`magpie serve` with every process (store, Redis, the web process, the worker) on CPU 0, like the
    bare app: one web process, since a second on the same core only adds switching."""
    server = ServerProcess(
        data_dir, prefix=tuple(pinned(0)), MAGPIE_FLUSH_INTERVAL_MS="200", MAGPIE_WEB_PROCESSES="1"
    )
    server.start()
    source = server.create_source("bench", rate_limit_per_s=0)
    auth = "Basic " + base64.b64encode(f"{source['write_key']}:".encode()).decode()
    return server, auth, source["id"]


def drained(server: ServerProcess, source_id: str, started: float, timeout_s: float = 300) -> float:
    """Wait until every acknowledged event is in ClickHouse; return seconds since `started`."""
    deadline = time.monotonic() + timeout_s
    accepted = server.metric("magpie_events_accepted_total", source=source_id)
    while server.metric("magpie_events_stored_total", source=source_id) < accepted:
        if time.monotonic() > deadline:
            raise RuntimeError("the writer did not catch up")
        time.sleep(0.2)
    return time.monotonic() - started


def durable_rate(server: ServerProcess, source_id: str, batch: int, auth: str) -> dict[str, float]:
    """wrk for DURATION_S, then wait for the writer: events stored per second of load + drain."""
    before = server.metric("magpie_events_accepted_total", source=source_id)
    started = time.monotonic()
    result = wrk(server.url, batch, auth)
    total_s = drained(server, source_id, started)
    stored = server.metric("magpie_events_accepted_total", source=source_id) - before
    return {**result, "durable_events_s": stored / total_s}


def with_worker_stopped(server: ServerProcess, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The same load with the worker paused (SIGSTOP): what ingestion costs while it stitches."""
    worker = server.children()["worker"]
    os.kill(worker, signal.SIGSTOP)
    try:
        return run()
    finally:
        os.kill(worker, signal.SIGCONT)


def fixed_rate(url: str, rate: float, batch: int, auth: str) -> dict[str, float]:
    out = subprocess.run(
        [*pinned(1), sys.executable, str(HERE / "fixed_rate.py"), url, str(rate), "8", str(batch), auth],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def visibility_ms(server: ServerProcess, source_id: str, auth: str, samples: int = 40) -> list[float]:
    """Acknowledgement → visible through the debugger (a ClickHouse query), per event."""
    delays = []
    for _ in range(samples):
        message_id = str(uuid.uuid4())
        body = {"event": "visible", "userId": "v", "messageId": message_id}
        server.http.post("/v1/track", json=body, headers={"Authorization": auth})
        acked = time.perf_counter()
        while not any(
            e["messageId"] == message_id
            for e in server.admin("GET", f"/sources/{source_id}/events", params={"limit": 5}).json()["data"]
        ):
            time.sleep(0.01)
        delays.append((time.perf_counter() - acked) * 1000)
    return sorted(delays)


def table(rows: list[tuple[str, dict[str, float], dict[str, float] | None]]) -> str:
    lines = [
        "| case | server | requests/s | events/s | p50 ms | p99 ms | non-2xx | vs bare |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, result, bare in rows:
        ratio = f"{result['rps'] / bare['rps']:.0%}" if bare else "—"
        server = "bare Starlette" if bare is None else "Magpie"
        lines.append(
            f"| {case} | {server} | {result['rps']:,.0f} | {result['events_s']:,.0f} | "
            f"{result['p50_ms']:.2f} | {result['p99_ms']:.2f} | {result['errors']:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: `sudo apt-get install -y wrk` (Debian) — see README, Benchmarks")
    results: dict[str, Any] = {}
    bare, bare_url = bare_server()
    try:
        results["bare_single"] = wrk(bare_url, 1, "")
        results["bare_batch"] = wrk(bare_url, 100, "")
    finally:
        bare.terminate()
        bare.wait()
    with tempfile.TemporaryDirectory(prefix="magpie-bench-") as tmp:
        server, auth, source_id = magpie_server(Path(tmp) / "data")
        try:
            results["magpie_single"] = durable_rate(server, source_id, 1, auth)
            results["worker_idle_single"] = with_worker_stopped(server, lambda: wrk(server.url, 1, auth))
            drained(server, source_id, time.monotonic())
            results["magpie_batch"] = durable_rate(server, source_id, 100, auth)
            half = results["magpie_single"]["rps"] / 2
            results["half_peak_single"] = fixed_rate(server.url, half, 1, auth)
            drained(server, source_id, time.monotonic())
            results["half_peak_batch"] = fixed_rate(server.url, results["magpie_batch"]["rps"] / 2, 100, auth)
            accepted = server.metric("magpie_events_accepted_total", source=source_id)
            deadline = time.monotonic() + 120
            while (
                server.metric("magpie_events_stored_total", source=source_id) < accepted
                and time.monotonic() < deadline
            ):
                time.sleep(0.5)
            results["stored"] = server.metric("magpie_events_stored_total", source=source_id)
            results["accepted"] = accepted
            delays = visibility_ms(server, source_id, auth)
            results["visible_p50_ms"], results["visible_p99_ms"] = delays[len(delays) // 2], delays[-1]
        finally:
            server.stop()
    print(
        table(
            [
                ("single event", results["bare_single"], None),
                ("single event", results["magpie_single"], results["bare_single"]),
                ("batch of 100", results["bare_batch"], None),
                ("batch of 100", results["magpie_batch"], results["bare_batch"]),
            ]
        )
    )
    live, idle = results["magpie_single"]["rps"], results["worker_idle_single"]["rps"]
    print(
        f"\nsingle events while the worker stitches the live population of 5,000 anonymous ids: "
        f"{live:,.0f} req/s = {live / idle:.0%} of the same load with the worker paused ({idle:,.0f})"
    )
    for key in ("magpie_single", "magpie_batch"):
        print(
            f"\n{key}: {results[key]['durable_events_s']:,.0f} events/s stored in ClickHouse "
            "(load plus the writer catching up)"
        )
    for key in ("half_peak_single", "half_peak_batch"):
        r = results[key]
        print(
            f"\n{key}: {r['rate']:,.0f} req/s open-loop, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"{r['failures']} non-200"
        )
    print(f"\nstored {results['stored']:,.0f} of {results['accepted']:,.0f} acknowledged events")
    print(
        f"ack → visible in ClickHouse: p50 {results['visible_p50_ms']:.0f} ms, "
        f"max of 40 {results['visible_p99_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
