"""The composition root of `magpie serve`: start the embedded runtime, build the parts, mount
them into one Starlette app, and tear everything down in order on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from activation.admin.auth import TokenStore
from activation.admin.errors import ApiError
from activation.admin.openapi import openapi_route
from activation.admin.routes import AdminContext, admin_routes
from activation.admin.sources import SourceStore
from activation.audiences.routes import routes as audience_routes
from activation.db import Database
from activation.identity import admin as identity_admin
from activation.identity import api as identity_api
from activation.identity.cache import ProfileCache
from activation.identity.jobs import stitch_status
from activation.maintenance import HEARTBEAT_KEY
from activation.net import parse_allow_list
from activation.sync.context import SyncContext
from activation.sync.routes import routes as sync_routes
from clickhouse.client import ClickHouseTarget, connect
from clickhouse.migrations import migrate
from collector.app import Collector
from collector.http import tracking_kind
from collector.metrics import Metrics
from collector.settings import CollectorSettings
from collector.sources import CHANGES_CHANNEL
from collector.store import EventStore
from collector.web import STATIC
from magpie.bootstrap import announce
from magpie.health import health_routes
from magpie.jobs import job_set
from magpie.secrets_file import load_or_create_secret_key
from magpie.settings import Settings
from magpie.worker import JobRunner

log = logging.getLogger("magpie")
WORKER_STALE_S = 30.0


@dataclass
class Runtime:
    """Everything started for one process, so shutdown can stop it in reverse order."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    redis: aioredis.Redis | None = None
    collector: Collector | None = None
    jobs: JobRunner | None = None
    secret_key: str = field(default="", repr=False)
    draining: bool = False


def clickhouse_target(settings: Settings) -> ClickHouseTarget:
    if settings.embedded:  # TEMPORARY: the one-process mode until the supervisor is switched on
        return ClickHouseTarget.embedded_at(settings.data_dir)
    return ClickHouseTarget.from_url(settings.clickhouse_url, settings.clickhouse_cluster)


def collector_settings(settings: Settings) -> CollectorSettings:
    return CollectorSettings(
        spool_dir=settings.spool_dir or settings.data_dir / "spool",
        public_url=settings.base_url,
        spool_max_bytes=settings.spool_max_bytes,
        flush_interval_ms=settings.flush_interval_ms,
        trusted_proxies=settings.trusted_proxies,
        geoip_city_db=settings.geoip_city_db,
        geoip_asn_db=settings.geoip_asn_db,
        fault_file=settings.fault_file,
    )


PARTS = frozenset({"collector", "api", "worker"})
WEB = frozenset({"collector", "api"})


class App:
    """Build with `App(settings, parts)`; `asgi` is the Starlette app whose lifespan runs the parts.

    `magpie serve` runs every part; server mode runs `collector`, `api` or `worker` alone.
    """

    def __init__(self, settings: Settings, parts: frozenset[str] = PARTS) -> None:
        self.parts = parts
        self.runtime = Runtime(settings)
        self.target = clickhouse_target(settings)
        self.starlette = Starlette(routes=[], lifespan=self.lifespan)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tracking POSTs go straight to the collector's raw ASGI app (the hot path skips the
        router and middleware stack); everything else, lifespan included, to Starlette."""
        collector = self.runtime.collector
        if collector is not None and scope["type"] == "http" and tracking_kind(scope["path"]) is not None:
            await collector.tracking(scope, receive, send)
            return
        await self.starlette(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            await self._start(app)
            yield
        finally:
            await self._stop()

    async def _start(self, app: Starlette) -> None:
        rt, settings = self.runtime, self.runtime.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        redis_url = settings.redis_url
        if not redis_url:  # TEMPORARY: the one-process mode until the supervisor is switched on
            from magpie.embedded_redis import EmbeddedRedis

            self._legacy_redis = EmbeddedRedis(settings.data_dir)
            self._legacy_redis.start()
            redis_url = self._legacy_redis.url
        rt.redis = aioredis.Redis.from_url(redis_url)
        if not settings.supervised:  # under `magpie serve` the supervisor has migrated already
            await asyncio.to_thread(migrate, self.target)
        secret_key = settings.secret_key or load_or_create_secret_key(settings.data_dir)
        rt.secret_key = secret_key
        db = Database(connect(self.target))
        if "collector" in self.parts:
            # writes and reads on separate clients: a client is not shared by concurrent threads
            store = EventStore(connect(self.target), settings.fault_file, reader=connect(self.target))
            rt.collector = Collector(collector_settings(settings), store, rt.redis, rt.metrics)
        ctx = {
            "ch": connect(self.target),
            "db": db,
            "metrics": rt.metrics,
            "secret_key": secret_key,
            "allow_private": settings.allow_private_destinations,
            "tracking_url": settings.base_url,
        }
        rt.jobs = JobRunner(redis_url, job_set(ctx), rt.metrics)
        await rt.jobs.connect()
        ctx["enqueue"] = rt.jobs.enqueue
        tokens, sources = TokenStore(db), SourceStore(db, partial(publish_source_change, rt.redis))
        app.router.routes.extend(self._routes(db, tokens, sources))
        if rt.collector is not None:
            await rt.collector.start()
        if "worker" in self.parts:
            await rt.jobs.start_worker()
        if "api" in self.parts and not settings.supervised:
            admin_secret = await tokens.bootstrap(settings.admin_token)
            announce(admin_secret, await sources.ensure_default(), settings.base_url, "")

    def _routes(self, db: Database, tokens: TokenStore, sources: SourceStore) -> list[BaseRoute]:
        rt, settings = self.runtime, self.runtime.settings
        assert rt.redis is not None and rt.jobs is not None
        redis = rt.redis

        async def check_clickhouse() -> None:
            await db.rows("SELECT 1")

        async def check_redis() -> None:
            await redis.ping()

        checks = {"clickhouse": check_clickhouse, "redis": check_redis}
        if rt.collector is not None:
            checks["writer"] = rt.collector.check_ready  # 503 while the spool writer is down
        if settings.supervised and "worker" not in self.parts:
            checks["worker"] = partial(check_worker, redis)  # the supervisor's worker heartbeats
        routes: list[BaseRoute] = [*health_routes(checks, rt.metrics.render, lambda: rt.draining)]
        if rt.collector is not None:
            routes += rt.collector.routes()
        if "api" in self.parts:
            tag_path = f"/tag.{rt.collector.tag.digest}.js" if rt.collector else "/tag.js"
            admin = AdminContext(db, tokens, sources, settings.base_url, _snippet_template(), tag_path)
            api = [*admin_routes(admin, rt.jobs.failures), *self._activation_routes(tokens)]
            routes += [*api, openapi_route(api)]
        return routes

    def _activation_routes(self, tokens: TokenStore) -> list[BaseRoute]:
        """Audiences (and, as they land, identity, profiles and syncs) share one auth adapter."""
        jobs = self.runtime.jobs
        assert jobs is not None
        audience_client = connect(self.target)  # its own client: read-only SETTINGS never leak to others

        async def require(request: Request, scope: str) -> Response | None:
            try:
                await tokens.require(request, scope)
            except ApiError as exc:
                return exc.response()
            return None

        async def enqueue_audience(job: str, audience_id: str) -> None:
            # "compute" from the API means the whole run: compute, then emit events if asked
            # An explicit request always runs (arq picks a fresh job id); only the scheduler dedupes.
            name = "run_audience" if job == "compute_audience" else job
            await jobs.enqueue(name, audience_id)

        sync_ctx = SyncContext(
            Database(connect(self.target)),
            tokens,
            self.runtime.secret_key,
            parse_allow_list(self.runtime.settings.allow_private_destinations),
            jobs.enqueue,
        )
        identity_client = connect(self.target)
        redis = self.runtime.redis
        cache = ProfileCache(redis)

        async def enqueue_identity(function: str, job_id: str) -> None:
            await jobs.enqueue(function, job_id=job_id)

        async def status() -> dict[str, str]:
            return await stitch_status(redis)

        return [
            *audience_routes(lambda: audience_client, enqueue_audience, require),
            *sync_routes(sync_ctx),
            *identity_api.routes(lambda: identity_client, enqueue_identity, require, cache),
            *identity_admin.routes(
                lambda: identity_client, enqueue_identity, require, status=status, cache=cache
            ),
        ]

    async def _stop(self) -> None:
        rt = self.runtime
        rt.draining = True
        if rt.collector is not None:
            await rt.collector.stop()
        if rt.jobs is not None:
            await rt.jobs.stop()
        if rt.redis is not None:
            await rt.redis.aclose()
        legacy = getattr(self, "_legacy_redis", None)
        if legacy is not None:
            legacy.stop()


async def publish_source_change(redis: aioredis.Redis) -> None:
    """Tell every collector's source cache to re-read; a lost message is caught by its periodic re-read."""
    try:
        await redis.publish(CHANGES_CHANNEL, "1")
    except (RedisError, OSError) as exc:
        log.warning("could not publish a source change (collectors catch up within 30 s): %s", exc)


async def check_worker(redis: aioredis.Redis) -> None:
    """A worker heartbeat younger than WORKER_STALE_S (the worker writes one every few seconds)."""
    beat = await redis.get(HEARTBEAT_KEY)
    if beat is None or time.time() - float(beat) > WORKER_STALE_S:
        raise WorkerDown("no recent worker heartbeat")


class WorkerDown(Exception):
    pass


def _snippet_template() -> str:
    path = Path(STATIC) / "snippet.html"
    return path.read_text() if path.exists() else "<!-- snippet template missing: build tag/ -->"
