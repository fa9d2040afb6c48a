"""The composition root of one Magpie process: `create_app(settings, parts)` builds the services, the
collector and one route list (Starlette's shape); the lifespan starts and stops tasks in order."""

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
from activation.connections.routes import routes as connection_routes
from activation.crm.routes import routes as crm_routes
from activation.crm.sources import CrmSourceSettings
from activation.identity import admin as identity_admin
from activation.identity.cache import ProfileCache
from activation.identity.jobs import stitch_status
from activation.maintenance import HEARTBEAT_KEY
from activation.net import parse_allow_list
from activation.privacy import suppressions_api
from activation.privacy.registry import ACTIVATION_PATHS, ForgetPath, by_pairs, by_values
from activation.privacy.routes import routes as privacy_routes
from activation.privacy.suppressions import hash_key as suppression_hash_key
from activation.privacy.wiring import PrivacyWiring
from activation.profiles_api.documents import DocumentWriter
from activation.profiles_api.fills import FillLimits
from activation.profiles_api.routes import routes as profile_routes
from activation.services import Services
from activation.sync.context import SyncContext
from activation.sync.routes import routes as sync_routes
from clickhouse.client import ClickHouseTarget, connect
from clickhouse.migrations import migrate
from collector import forget as collector_forget
from collector.app import Collector
from collector.http import tracking_kind
from collector.metrics import Metrics
from collector.quarantine import forget_in_spools
from collector.settings import CollectorSettings
from collector.sources import CHANGES_CHANNEL
from collector.store import EventStore
from collector.web import STATIC
from magpie.bootstrap import announce
from magpie.health import Check, health_routes
from magpie.jobs import job_set
from magpie.metrics_share import SharedMetrics, default_process_name
from magpie.secrets_file import load_or_create_secret_key
from magpie.settings import Settings
from magpie.worker import JobRunner, JobSet

log = logging.getLogger("magpie")
WORKER_STALE_S = 30.0


@dataclass
class Runtime:
    """What one process started, so shutdown can stop it in reverse order."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    redis: aioredis.Redis | None = None
    collector: Collector | None = None
    jobs: JobRunner | None = None
    draining: bool = False


def fill_limits(settings: Settings) -> FillLimits:
    """How a web process reads the Profile API's misses (activation.profiles_api.fills)."""
    return FillLimits(
        concurrency=settings.profile_fill_concurrency,
        max_pending=settings.profile_fill_max_pending,
        wait_s=settings.profile_fill_wait_ms / 1000,
    )


def clickhouse_target(settings: Settings) -> ClickHouseTarget:
    return ClickHouseTarget.from_url(settings.clickhouse_url, settings.clickhouse_cluster)


def collector_settings(settings: Settings, secret_key: str = "") -> CollectorSettings:
    return CollectorSettings(
        spool_dir=settings.spool_dir or settings.data_dir / "spool",
        public_url=settings.base_url,
        spool_max_bytes=settings.spool_max_bytes,
        flush_interval_ms=settings.flush_interval_ms,
        trusted_proxies=settings.trusted_proxies,
        geoip_city_db=settings.geoip_city_db,
        geoip_asn_db=settings.geoip_asn_db,
        fault_file=settings.fault_file,
        suppression_key=suppression_hash_key(secret_key) if secret_key else b"",
    )


PARTS = frozenset({"collector", "api", "worker"})
WEB = frozenset({"collector", "api"})


class App:
    """`create_app(settings, parts)`: migrations (unless supervised), the services, the collector and
    the one route list are built here, synchronously; the lifespan only starts and stops tasks.

    Under `magpie serve` each web process runs WEB and the worker process runs {"worker"}; server
    mode runs `collector`, `api` or `worker` alone.
    """

    def __init__(self, settings: Settings, parts: frozenset[str] = PARTS) -> None:
        self.parts, self.runtime = parts, Runtime(settings)
        self.target = clickhouse_target(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not settings.supervised:  # under `magpie serve` the supervisor has migrated already
            migrate(self.target)
        rt = self.runtime
        rt.redis = aioredis.Redis.from_url(settings.redis_url)
        secret_key = settings.secret_key or load_or_create_secret_key(settings.data_dir)
        rt.jobs = JobRunner(settings.redis_url, JobSet(), rt.metrics)
        ch = connect(self.target)
        self.services = Services(
            ch=ch,
            redis=rt.redis,
            # the Profile API's stored documents, rewritten when stitch or audience jobs change profiles
            profiles_changed=DocumentWriter(ch, ProfileCache(rt.redis), rt.jobs.enqueue),
            secret_key=secret_key,
            allow=parse_allow_list(settings.allow_private_destinations),
            enqueue=rt.jobs.enqueue,
            metrics=rt.metrics,
            tracking_url=settings.base_url,
        )
        self.privacy = privacy_wiring(settings)
        jobs_ctx = {"services": self.services, "secret_key": secret_key, "privacy": self.privacy}
        rt.jobs.jobs = job_set(jobs_ctx)
        self.tokens = TokenStore(self.services.db)
        # CRM sources' type, config and credentials
        crm = CrmSourceSettings(self.services.db, secret_key, self.services.allow)
        self.sources = SourceStore(self.services.db, partial(publish_source_change, rt.redis), crm)
        if "collector" in parts:
            # writes and reads on separate clients: a client is not shared by concurrent threads
            store = EventStore(connect(self.target), settings.fault_file, reader=connect(self.target))
            collector = collector_settings(settings, secret_key)
            rt.collector = Collector(collector, store, rt.redis, rt.metrics)
        name = settings.process_name or default_process_name()
        self.shared_metrics = SharedMetrics(rt.metrics, rt.redis, name)
        self._tasks: list[asyncio.Task[None]] = []
        self.starlette = Starlette(routes=self._routes(), lifespan=self.lifespan)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tracking POSTs go straight to the collector's raw ASGI app, before Starlette's router (the
        hot path skips routing and middleware); everything else, lifespan included, to Starlette."""
        collector = self.runtime.collector
        if collector is not None and scope["type"] == "http" and tracking_kind(scope["path"]) is not None:
            await collector.tracking(scope, receive, send)
            return
        await self.starlette(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            await self._start()
            yield
        finally:
            await self._stop()

    async def _start(self) -> None:
        rt, settings = self.runtime, self.runtime.settings
        assert rt.jobs is not None
        await rt.jobs.connect()
        self._tasks.append(asyncio.create_task(self.shared_metrics.run()))
        if rt.collector is not None:
            await rt.collector.start()
        if "worker" in self.parts:
            await rt.jobs.start_worker()
        if "api" in self.parts and not settings.supervised:
            admin_secret = await self.tokens.bootstrap(settings.admin_token)
            announce(admin_secret, await self.sources.ensure_default(), settings.base_url, "")

    def _routes(self) -> list[BaseRoute]:
        rt = self.runtime
        metrics = self.shared_metrics.render
        routes: list[BaseRoute] = [*health_routes(self._checks(), metrics, lambda: rt.draining)]
        if rt.collector is not None:
            routes += rt.collector.routes()
        if "api" in self.parts:
            api = [*self._admin_routes(), *self._activation_routes()]
            routes += [*api, openapi_route(api)]
        return routes

    def _checks(self) -> dict[str, Check]:
        rt, db, redis = self.runtime, self.services.db, self.services.redis

        async def check_clickhouse() -> None:
            await db.rows("SELECT 1")

        checks: dict[str, Check] = {"clickhouse": check_clickhouse, "redis": redis.ping}
        if rt.collector is not None:
            checks["writer"] = rt.collector.check_ready  # 503 while the spool writer is down
        if rt.settings.supervised and "worker" not in self.parts:
            checks["worker"] = partial(check_worker, redis)  # the supervisor's worker heartbeats
        return checks

    def _admin_routes(self) -> list[BaseRoute]:
        rt, settings = self.runtime, self.runtime.settings
        assert rt.jobs is not None
        tag_path = f"/tag.{rt.collector.tag.digest}.js" if rt.collector else "/tag.js"
        admin = AdminContext(
            self.services.db, self.tokens, self.sources, settings.base_url, _snippet_template(), tag_path
        )
        return admin_routes(admin, rt.jobs.failures)

    def _activation_routes(self) -> list[BaseRoute]:
        """Audiences, syncs, identity and the Profile API share one auth adapter and the services."""
        services, tokens = self.services, self.tokens
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
            await services.enqueue(name, audience_id)

        async def enqueue_identity(function: str, job_id: str) -> None:
            await services.enqueue(function, job_id=job_id)

        async def status() -> dict[str, str]:
            return await stitch_status(services.redis)

        sync = SyncContext(services.db, tokens, services.secret_key, services.allow, services.enqueue)
        sync.redis = services.redis  # destinations' freshness
        cache = ProfileCache(services.redis)
        ch = services.ch
        return [
            *audience_routes(lambda: audience_client, enqueue_audience, require),
            *sync_routes(sync),
            *privacy_routes(services, tokens, self.privacy),
            *connection_routes(services, tokens),
            *crm_routes(services, tokens),
            *profile_routes(lambda: ch, enqueue_identity, require, cache, fill_limits(self.runtime.settings)),
            *identity_admin.routes(lambda: ch, enqueue_identity, require, status=status, cache=cache),
            *suppressions_api.routes(services, require),
        ]

    async def _stop(self) -> None:
        rt = self.runtime
        rt.draining = True
        if rt.collector is not None:
            await rt.collector.stop()
        if rt.jobs is not None:
            await rt.jobs.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if rt.redis is not None:
            await rt.redis.aclose()


def privacy_wiring(settings: Settings) -> PrivacyWiring:
    """Every table's forget path: activation's owners plus the collector's (activation never imports it)."""
    collector = ForgetPath(("events", "rejected_events"), by_pairs(collector_forget.forget))
    # no table: the quarantine files of the spools under the data directory
    quarantine = ForgetPath(
        (), by_values(lambda v: {"spool_quarantine": forget_in_spools(settings.data_dir, v)})
    )
    paths = (*ACTIVATION_PATHS, collector, quarantine)
    return PrivacyWiring(settings.data_dir, paths, settings.rejected_retention_days)


def create_app(settings: Settings, parts: frozenset[str] = PARTS) -> App:
    return App(settings, parts)


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
