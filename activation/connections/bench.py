"""Forwarding benchmark: event → signed webhook latency at a sustained 1,000 events/s through a real
`magpie serve` (collector → spool → ClickHouse → reader → queue → delivery job → receiver).

    .venv/bin/python -m activation.connections.bench [--rate 1000] [--seconds 10]

Latency is from the moment a batch is sent to the collector to the moment the receiver has the event;
prints p50/p95/p99 and the target (p95 ≤ 2 s). Uses the test harness (tests/server.py, the webhook fake).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from tests.fakes.webhook import FakeWebhookReceiver
from tests.server import ServerProcess

BATCH = 50


class TimedReceiver(FakeWebhookReceiver):
    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def _receive_events(self, msg_id: str, payload: dict[str, Any]) -> web.StreamResponse:
        now = time.monotonic()
        for event in payload.get("events", []):
            self.arrived.setdefault(str(event.get("messageId")), now)
        return web.Response(status=204)


async def run(rate: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            async with TimedReceiver() as hook:
                return await _measure(server, hook, rate, seconds)
        finally:
            server.stop()


async def _measure(server: ServerProcess, hook: TimedReceiver, rate: int, seconds: float) -> dict[str, float]:
    source = server.create_source("bench")
    body = {"type": "webhook", "name": "bench", "config": {"url": hook.url, "batch_size": 500},
            "credentials": {"secret": hook.secret}}  # fmt: skip
    dest = server.admin("POST", "/destinations", json=body).json()
    server.admin("POST", "/connections", json={"source_id": source["id"], "destination_id": dest["id"]})
    auth = {"Authorization": "Basic " + base64.b64encode(f"{source['write_key']}:".encode()).decode()}
    sent: dict[str, float] = {}
    interval = BATCH / rate
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await asyncio.sleep(6)  # the reader loop and the worker are up
        start = time.monotonic()
        for tick in range(int(seconds * rate / BATCH)):
            await asyncio.sleep(max(0.0, start + tick * interval - time.monotonic()))
            ids = [f"b{tick}-{i}-{uuid.uuid4().hex[:6]}" for i in range(BATCH)]
            batch = [
                {"type": "track", "event": "Bench", "userId": f"u{i % 100}", "messageId": m}
                for i, m in enumerate(ids)
            ]
            at = time.monotonic()
            response = await client.post("/v1/batch", json={"batch": batch}, headers=auth)
            response.raise_for_status()
            sent.update({m: at for m in ids})
    deadline = time.monotonic() + 30
    while len(hook.arrived) < len(sent) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    latencies = sorted(hook.arrived[m] - at for m, at in sent.items() if m in hook.arrived)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"sent": len(sent), "delivered": len(latencies), "p50_s": q[49], "p95_s": q[94], "p99_s": q[98]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.rate, args.seconds))
    print(
        f"forwarding: {result['delivered']}/{result['sent']} events at {args.rate}/s → webhook:"
        f" p50 {result['p50_s']:.2f} s, p95 {result['p95_s']:.2f} s, p99 {result['p99_s']:.2f} s"
        f" (target p95 ≤ 2 s: {'met' if result['p95_s'] <= 2 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
