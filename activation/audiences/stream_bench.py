"""Streaming audience benchmark: event → webhook latency of a profile entering a streaming audience
while 1,000 events/s are sustained into the collector, through a real `magpie serve` (collector →
spool → ClickHouse → stitch tick → streaming evaluation → sync micro-batch → signed webhook).

    .venv/bin/python -m activation.audiences.stream_bench [--rate 1000] [--seconds 60] [--probes-per-s 1]

The audience has an event-count condition and a trait condition. Background load: batches of
track events from a few thousand identified visitors (each tick touches many profiles). Probes:
a new person sends identify(plan=pro) and two qualifying orders in one batch at t; latency = when
the webhook receives that profile's "entered" delivery − t. Prints p50/p95/p99 against the target
(p95 ≤ 5 s) and each hop's p50/p95 from the server's own records (events.inserted_at, the stitch
status and changes list, the micro-batch's run time and duration, the sync run's start) plus the
stitch ticks seen meanwhile.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import base64
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from aiohttp import web

from clickhouse.client import ClickHouseTarget, connect
from magpie.embedded_redis import socket_path
from tests.fakes.webhook import FakeWebhookReceiver
from tests.server import ServerProcess

BATCH = 50
VISITORS = 3000
QUERY = "event('Order Completed').within(7 days).count() >= 2 and trait('plan') = 'pro'"
STATUS_KEY = "magpie:identity:stitch:status"
CHANGES_KEY = "magpie:identity:changes"


class TimedReceiver(FakeWebhookReceiver):
    """The webhook fake, noting when each probe (trait `probe`) first arrives as entered."""

    def __init__(self) -> None:
        super().__init__()
        self.entered: dict[str, float] = {}

    async def receive(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        response = await super().receive(request)
        payload = orjson.loads(await request.read())
        if response.status == 204 and isinstance(payload, dict):
            for member in payload.get("entered", []):
                probe = member.get("traits", {}).get("probe")
                if isinstance(probe, str):
                    self.entered.setdefault(probe, now)
        return response


class Bench:
    def __init__(self, server: ServerProcess, hook: TimedReceiver, rate: int, seconds: float) -> None:
        self.server, self.hook, self.rate, self.seconds = server, hook, rate, seconds
        self.ns = uuid.uuid4().hex[:6]
        self.sent: dict[str, float] = {}
        self.ticks: list[dict[str, Any]] = []
        self.backlog: list[int] = []
        self.announced: dict[str, float] = {}
        self.auth: dict[str, str] = {}
        self.audience_id = ""
        self.load_rate = 0.0  # achieved events/s of the background load

    def setup(self) -> None:
        source = self.server.create_source("stream-bench")
        self.auth = {
            "Authorization": "Basic " + base64.b64encode(f"{source['write_key']}:".encode()).decode()
        }
        config = {"url": self.hook.url, "batch_size": 500}
        body = {"type": "webhook", "name": "stream-bench", "config": config,
                "credentials": {"secret": self.hook.secret}}  # fmt: skip
        dest = self.server.admin("POST", "/destinations", json=body).json()
        made = self.server.admin("POST", "/audiences", json={
            "name": "stream bench", "key": "stream_bench", "query": QUERY, "destinations": [dest["id"]],
        })  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["mode"] == "streaming", made.json()
        self.audience_id = made.json()["id"]
        deadline = time.monotonic() + 60
        while not self.server.admin("GET", f"/audiences/{self.audience_id}/runs").json()["data"]:
            assert time.monotonic() < deadline, "the audience's first full run did not finish"
            time.sleep(0.5)

    async def load(self, client: httpx.AsyncClient) -> None:
        """`rate` events/s in batches of BATCH, paced against the clock."""
        interval, start = BATCH / self.rate, time.monotonic()
        for tick in range(int(self.seconds * self.rate / BATCH)):
            await asyncio.sleep(max(0.0, start + tick * interval - time.monotonic()))
            batch = [_visitor_event(self.ns, tick * BATCH + i) for i in range(BATCH)]
            response = await client.post("/v1/batch", json={"batch": batch}, headers=self.auth)
            response.raise_for_status()
            self.load_rate = (tick + 1) * BATCH / max(time.monotonic() - start, interval)

    async def probes(self, client: httpx.AsyncClient, per_s: float) -> None:
        start = time.monotonic()
        for n in range(int(self.seconds * per_s)):
            await asyncio.sleep(max(0.0, start + 1.0 + n / per_s - time.monotonic()))
            probe, user = f"{self.ns}-{n}", f"probe-{self.ns}-{n}"
            order = {"type": "track", "event": "Order Completed", "userId": user, "properties": {"total": 10}}
            identify = {"type": "identify", "userId": user, "traits": {"plan": "pro", "probe": probe}}
            at = time.time()
            response = await client.post(
                "/v1/batch", json={"batch": [identify, order, order]}, headers=self.auth
            )
            response.raise_for_status()
            self.sent[probe] = at

    async def watch(self, until: asyncio.Event) -> None:
        """Sample the stitch status (each tick's report), the streaming backlog and when each profile
        was first announced by a tick (the stitch → streaming list)."""
        redis = aioredis.Redis(unix_socket_path=str(socket_path(self.server.data_dir)))
        seen_report, seen_entries = "", set[bytes]()
        try:
            while not until.is_set():
                now = time.time()
                report = (await redis.hget(STATUS_KEY, "last_report") or b"").decode()  # type: ignore[misc]
                if report and report != seen_report:
                    seen_report = report
                    self.ticks.append({**ast.literal_eval(report), "seen": now})
                entries = await redis.lrange(CHANGES_KEY, 0, -1)  # type: ignore[misc]
                self.backlog.append(len(entries))
                for raw in set(entries) - seen_entries:
                    for pid in orjson.loads(raw).get("profiles", []):
                        self.announced.setdefault(pid, now)
                seen_entries = set(entries)
                await asyncio.sleep(0.25)
        finally:
            await redis.aclose()

    async def run(self, per_s: float) -> None:
        done = asyncio.Event()
        watcher = asyncio.create_task(self.watch(done))
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30) as client:
            await asyncio.gather(self.load(client), self.probes(client, per_s))
        deadline = time.monotonic() + 30
        while len(self.hook.entered) < len(self.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        done.set()
        await watcher


def _visitor_event(ns: str, n: int) -> dict[str, Any]:
    visitor = n * 7919 % VISITORS
    return {"type": "track", "event": "Page Viewed", "userId": f"v-{ns}-{visitor}",
            "anonymousId": f"a-{ns}-{visitor}", "properties": {"path": f"/p/{n % 50}"}}  # fmt: skip


_PROBES = (
    "SELECT profile_id, argMax(value, version) FROM profile_traits WHERE trait = 'probe' GROUP BY profile_id"
)
_ENTERED = (
    "SELECT c.profile_id, c.at, r.duration_ms FROM (SELECT profile_id, min(at) AS at"
    " FROM audience_membership_changes WHERE audience_id = {aid:String} AND change = 'entered'"
    " GROUP BY profile_id) AS c INNER JOIN (SELECT computed_at, duration_ms FROM audience_runs"
    " WHERE audience_id = {aid:String}) AS r ON r.computed_at = c.at"
)
_STORED = (
    "SELECT user_id, max(inserted_at) FROM events WHERE event = 'Order Completed'"
    " AND startsWith(user_id, 'probe-') GROUP BY user_id"
)
_SYNCS = (
    "SELECT DISTINCT started_at FROM sync_runs FINAL WHERE audience_id = {aid:String} AND added > 0"
    " ORDER BY started_at"
)
HOPS = ("stored", "to_tick", "tick", "to_evaluation", "evaluation", "to_sync", "sync")


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _records(
    bench: Bench,
) -> tuple[dict[str, str], dict[str, tuple[float, float]], dict[str, float], list[float]]:
    """Probe of each profile, (run time, duration) of its entry, newest order stored per user, sync starts."""
    ch = connect(ClickHouseTarget(dsn=f"http://127.0.0.1:{bench.server.env['MAGPIE_CLICKHOUSE_PORT']}"))
    params = {"aid": bench.audience_id}
    probes = {str(pid): str(orjson.loads(raw)) for pid, raw in ch.query(_PROBES).result_rows}
    rows = ch.query(_ENTERED, parameters=params).result_rows
    entered = {str(pid): (_epoch(at), ms / 1000) for pid, at, ms in rows}
    stored = {str(user): _epoch(at) for user, at in ch.query(_STORED).result_rows}
    syncs = [_epoch(row[0]) for row in ch.query(_SYNCS, parameters=params).result_rows]
    return probes, entered, stored, syncs


def _tick_start(bench: Bench, announced: float) -> float | None:
    """Start of the tick that announced at `announced`: its report appears right after its announcement."""
    tick = next((t for t in bench.ticks if t["seen"] >= announced - 0.3), None)
    return None if tick is None else announced - float(tick.get("duration_ms", 0)) / 1000


def hops(bench: Bench) -> dict[str, list[float]]:
    """Seconds of each hop per probe, from the server's records (one machine, one clock):
    sent → stored (events.inserted_at) → the stitch tick that reads it starts → it announces the
    profile (the changes list, sampled every 0.25 s) → the micro-batch that entered it starts (its run
    time) → it ends (+ duration) → the sync run starts → the webhook has it."""
    probes, entered, stored, syncs = _records(bench)
    spans: dict[str, list[float]] = {k: [] for k in HOPS}
    for pid, (at, duration_s) in entered.items():
        probe = probes.get(pid, "")
        announced = bench.announced.get(pid)
        if probe not in bench.hook.entered or f"probe-{probe}" not in stored or announced is None:
            continue
        sync = next((s for s in syncs if s >= at), None)
        tick = _tick_start(bench, announced)
        if sync is None or tick is None:
            continue
        arrived = bench.hook.entered[probe]
        points = [
            bench.sent[probe],
            stored[f"probe-{probe}"],
            tick,
            announced,
            at,
            at + duration_s,
            sync,
            arrived,
        ]
        for key, first, second in zip(HOPS, points[:-1], points[1:], strict=True):
            spans[key].append(second - first)
    return {k: v for k, v in spans.items() if v}


def quantiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0] if values else 0.0] * 99
    return q[49], q[94], q[98]


async def measure(rate: int, seconds: float, per_s: float) -> tuple[Bench, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            async with TimedReceiver() as hook:
                bench = Bench(server, hook, rate, seconds)
                await asyncio.to_thread(bench.setup)
                await bench.run(per_s)
                if len(hook.entered) < len(bench.sent):  # say why, while the server's log exists
                    print(server.log()[-4000:], file=sys.stderr)
                return bench, await asyncio.to_thread(hops, bench)
        finally:
            server.stop()


def report(bench: Bench, spans: dict[str, list[float]]) -> str:
    latencies = sorted(bench.hook.entered[p] - at for p, at in bench.sent.items() if p in bench.hook.entered)
    p50, p95, p99 = quantiles(latencies)
    durations = [float(t.get("duration_ms", 0)) for t in bench.ticks]
    touched = [int(t.get("changed_profiles", 0)) for t in bench.ticks]
    lines = [
        f"streaming audience: {len(latencies)}/{len(bench.sent)} probes entered at {bench.rate} events/s"
        f" (achieved {bench.load_rate:.0f})"
        f" → webhook: p50 {p50:.2f} s, p95 {p95:.2f} s, p99 {p99:.2f} s"
        f" (target p95 ≤ 5 s: {'met' if latencies and p95 <= 5 else 'NOT met'})",
        "  hops p50/p95 (s): "
        + ", ".join(f"{k} {quantiles(v)[0]:.2f}/{quantiles(v)[1]:.2f}" for k, v in spans.items()),
    ]
    if durations:
        lines.append(
            f"  stitch ticks seen: {len(durations)}, duration p50 {statistics.median(durations) / 1000:.2f} s"
            f" max {max(durations) / 1000:.2f} s, profiles touched p50 {statistics.median(touched):.0f};"
            f" streaming backlog max {max(bench.backlog, default=0)} tick(s)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--probes-per-s", type=float, default=1.0)
    args = parser.parse_args()
    bench, spans = asyncio.run(measure(args.rate, args.seconds, args.probes_per_s))
    print(report(bench, spans))


if __name__ == "__main__":
    main()
