"""CPU per tracking request in one process, without the network: the collector's raw ASGI app, the
real pipeline (GeoIP test databases included) and a real fsync'd spool in a temporary directory.

    python -m bench.hot_path [requests] [batch]

Requests run 32 at a time on uvloop (like wrk's 32 connections), so spool group commit behaves as
under load. Prints CPU microseconds per request and per event (process time, all threads), which
is repeatable on a shared machine where requests/s is not. `--profile` adds a cProfile summary.
"""

from __future__ import annotations

import asyncio
import base64
import cProfile
import itertools
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from collector.enrich.geo import GeoLookup
from collector.http import TrackingApp
from collector.ingest import Ingestor
from collector.metrics import Metrics
from collector.pipeline import build_steps
from collector.ratelimit import RateLimiter
from collector.settings import CollectorSettings
from collector.sources import Source, SourceCache
from collector.spool import Spool

GEOIP = Path(__file__).resolve().parent.parent.parent / "shared" / "geoip"
CONCURRENCY = 32
WRITE_KEY = "bench-write-key"
PROPS = '"properties":{"plan":"pro","revenue":42.5,"sku":"SKU-1234","currency":"EUR","items":3}'
CONTEXT = (
    '"context":{"library":{"name":"analytics.js","version":"5.2.0"},"page":{"url":'
    '"https://shop.example/p/1?utm_source=news","path":"/p/1","title":"Product","referrer":'
    '"https://www.google.com/"},"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36'
    ' (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","locale":"en-GB"}'
)
_counter = itertools.count()


def event() -> str:
    n = next(_counter)
    return (
        f'{{"type":"track","event":"Product Viewed","anonymousId":"anon-{n % 5000}",'
        f'"messageId":"hot-{n}",{PROPS},{CONTEXT}}}'
    )


def request(batch: int) -> tuple[dict[str, Any], bytes]:
    """A scope as uvicorn's httptools protocol builds it, and the body (the wrk script's event)."""
    path = "/v1/track" if batch == 1 else "/v1/batch"
    body = event() if batch == 1 else '{"batch":[' + ",".join(event() for _ in range(batch)) + "]}"
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"authorization", auth.encode()),
        ],
    }
    return scope, body.encode()


def tracking_app(spool_dir: Path) -> TrackingApp:
    settings = CollectorSettings(spool_dir=spool_dir, public_url="http://127.0.0.1:8000")
    metrics = Metrics()
    sources = SourceCache(None)  # type: ignore[arg-type]  # every lookup hits the cache
    sources.by_key[WRITE_KEY] = Source("src_bench", WRITE_KEY)
    geo = GeoLookup(str(GEOIP / "GeoIP2-City-Test.mmdb"), str(GEOIP / "GeoLite2-ASN-Test.mmdb"))
    ingestor = Ingestor(Spool(spool_dir, 1 << 34), build_steps(geo), metrics)
    return TrackingApp(settings, sources, ingestor, RateLimiter(), metrics)


async def one(app: TrackingApp, batch: int) -> int:
    scope, body = request(batch)
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def run(app: TrackingApp, requests: int, batch: int) -> None:
    remaining = iter(range(requests))

    async def client() -> None:
        for _ in remaining:
            status = await one(app, batch)
            if status != 200:
                raise RuntimeError(f"status {status}")

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    requests = int(args[0]) if args else 20_000
    batch = int(args[1]) if len(args) > 1 else 1
    with tempfile.TemporaryDirectory(prefix="magpie-hot-") as tmp:
        app = tracking_app(Path(tmp) / "spool")
        uvloop.run(run(app, 200, batch))  # warm-up: caches, ua-parser's matchers
        profile = cProfile.Profile() if "--profile" in sys.argv else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        uvloop.run(run(app, requests, batch))
        if profile:
            profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    per_request = cpu / requests * 1e6
    print(
        f"batch {batch}: {requests} requests, {per_request:.1f} µs CPU per request, "
        f"{per_request / batch:.1f} µs per event, wall {requests / wall:,.0f} req/s"
    )
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
