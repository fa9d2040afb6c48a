"""The collector's parts, assembled: `Collector(settings, store, redis, metrics)` gives the routes
and a start/stop pair that the composition root calls from its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from collector.enrich.geo import GeoLookup
from collector.enrich.useragent import enrich_user_agent
from collector.http import TrackingApp
from collector.ingest import Ingestor
from collector.metrics import Metrics
from collector.pipeline import build_steps
from collector.ratelimit import RateLimiter
from collector.settings import CollectorSettings
from collector.sources import SourceCache
from collector.spool import Spool
from collector.store import EventStore
from collector.suppressions import SuppressionCache
from collector.web import STATIC, Asset, pixel, serve_asset, settings_document
from collector.writer import Writer, WriterSupervisor

log = logging.getLogger("magpie.collector")
WARM_UP_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)


class WriterDown(Exception):
    """Events are acknowledged into the spool but nothing moves them into ClickHouse."""


class Collector:
    def __init__(
        self, settings: CollectorSettings, store: EventStore, redis: aioredis.Redis, metrics: Metrics
    ) -> None:
        self.settings, self.store, self.metrics = settings, store, metrics
        self.geo = GeoLookup(settings.geoip_city_db, settings.geoip_asn_db)
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        self.sources = SourceCache(store, redis)
        self.suppressions = SuppressionCache(settings.suppression_key, store, redis)
        self.ingestor = Ingestor(self.spool, build_steps(self.geo, self.suppressions), metrics)
        self.tracking = TrackingApp(settings, self.sources, self.ingestor, RateLimiter(), metrics)
        make_writer = partial(Writer, self.spool, store, redis, metrics, settings.flush_interval_ms / 1000)
        self.writer = WriterSupervisor(make_writer, metrics)
        self.tag = Asset.load(STATIC / "tag.js")
        self._tasks: list[asyncio.Task[None]] = []
        metrics.gauge("magpie_spool_depth_bytes", lambda: float(self.spool.depth_bytes))

    async def start(self) -> None:
        # ua-parser builds its matchers lazily on first use (hundreds of ms): do it before traffic.
        await asyncio.to_thread(enrich_user_agent, WARM_UP_AGENT)
        try:
            await self.sources.refresh()
        except Exception as exc:
            log.warning("could not load sources at start: %s", exc)
        try:
            await self.suppressions.refresh()
        except Exception as exc:  # the listener re-reads as soon as it subscribes
            log.warning("could not load suppressions at start: %s", exc)
        self._tasks = [
            asyncio.create_task(self.writer.run()),
            asyncio.create_task(self.sources.run()),
            asyncio.create_task(self.suppressions.run()),
        ]

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Flush: let the writer drain what is committed, then stop the background tasks."""
        self.writer.stop()
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[0]), timeout_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.spool.close()
        self.geo.close()

    @property
    def ready(self) -> bool:
        """The writer is running (a writer waiting to restart after an error is not)."""
        return not self.writer.down and bool(self._tasks) and not self._tasks[0].done()

    async def check_ready(self) -> None:
        """A readiness check for /readyz (magpie/health.py): raises while the writer is down."""
        if not self.ready:
            raise WriterDown("the spool writer is not running")

    def routes(self) -> list[BaseRoute]:
        tracking = self.tracking
        return [
            Route("/v1/projects/{write_key}/settings", self.project_settings, methods=["GET"]),
            Route("/v1/{kind}", tracking),
            Route("/beacon/v1/batch", tracking),
            Route("/pixel/v1/{kind}", partial(pixel, tracking=tracking), methods=["GET"]),
            Route("/tag.js", self.tag_js, methods=["GET"]),
            Route("/tag.{digest}.js", self.tag_js, methods=["GET"]),
        ]

    async def project_settings(self, request: Request) -> Response:
        key = request.path_params["write_key"]
        if await self.sources.lookup(key) is None:
            return JSONResponse(
                {"error": {"code": "invalid_write_key", "message": "unknown write key"}},
                404,
                headers={"Access-Control-Allow-Origin": "*"},
            )
        return JSONResponse(
            settings_document(key, self.settings.public_url),
            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
        )

    async def tag_js(self, request: Request) -> Response:
        digest = request.path_params.get("digest")
        if digest is not None and digest != self.tag.digest:
            return Response("not found", 404)
        return serve_asset(request, self.tag, immutable=digest is not None)
