"""Fixtures for forwarding tests: the shared ClickHouse, an in-process Redis, a `Forwarding` world that
writes sources, destinations, connections and events under a unique namespace, and fast settings."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client

from activation.connections.reader import WATERMARK_KEY
from activation.connections.settings import ForwardSettings
from activation.connections.store import ConnectionRecord, ConnectionStore
from activation.db import Database
from activation.destinations import Credentials
from activation.net import parse_allow_list
from activation.services import Services
from activation.sync.crypto import CredentialCipher
from activation.sync.delivery import RetryPolicy
from activation.sync.settings import SyncSettings
from activation.sync.store import DestinationRecord, DestinationStore

SECRET_KEY = "test-secret-key-for-forwarding-0123456789"
FAST = ForwardSettings(poll_s=0.01, reader_run_s=0.0, overlap_s=3.0, idle_s=0.05, deliver_run_s=20.0)
SYNC = SyncSettings(
    request_timeout_s=2.0,
    lock_ttl_s=5.0,
    retry=RetryPolicy(
        max_attempts=6, base_delay_s=0.01, max_delay_s=0.05, max_total_s=30.0, send_timeout_s=5.0
    ),
)


@dataclass
class Sleeps:
    delays_s: list[float] = field(default_factory=list)

    async def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)
        await asyncio.sleep(min(delay_s, 0.01))


@dataclass
class Queued:
    jobs: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, name: str, *args: Any, **kwargs: Any) -> bool:
        self.jobs.append((name, args, kwargs))
        return True


class Forwarding:
    """Rows for one test under a unique namespace, and the services a job would get."""

    def __init__(self, ch: Client, redis: aioredis.Redis) -> None:
        self.ch, self.redis, self.db = ch, redis, Database(ch)
        self.ns = uuid.uuid4().hex[:10]
        self.source = f"src_{self.ns}"
        self.sleeps, self.queued = Sleeps(), Queued()
        self.services = Services(
            ch=ch, redis=redis, secret_key=SECRET_KEY, allow=parse_allow_list("127.0.0.1"),
            enqueue=self.queued, sleep=self.sleeps, sync=SYNC,
        )  # fmt: skip
        self.destinations = DestinationStore(self.db, CredentialCipher(SECRET_KEY))
        self._n = itertools.count()
        self.base = datetime.now(UTC) - timedelta(hours=2)

    async def start(self) -> None:
        """Watermark a little in the past, so events inserted from now on are new."""
        await self.redis.set(WATERMARK_KEY, (datetime.now(UTC) - timedelta(seconds=1)).isoformat())

    async def destination(
        self, kind: str, config: dict[str, Any], credentials: dict[str, str], **extra: Any
    ) -> str:
        record = DestinationRecord(id=f"dst_{self.ns}_{kind}_{uuid.uuid4().hex[:6]}", type=kind, name=kind,
                                   config=config, **extra)  # fmt: skip
        saved = await self.destinations.save(self.destinations.seal(record, Credentials(credentials)))
        return saved.id

    async def connect(self, destination_id: str, created_at: datetime | None = None, **fields: Any) -> str:
        record = ConnectionRecord(
            id=f"con_{self.ns}_{uuid.uuid4().hex[:6]}", source_id=self.source, destination_id=destination_id,
            created_at=created_at or datetime.now(UTC) - timedelta(seconds=1), **fields,
        )  # fmt: skip
        return (await ConnectionStore(self.db).save(record)).id

    def events(self, specs: list[dict[str, Any]]) -> list[str]:
        """Insert events (one INSERT): each spec may set type, event, user, anon, props, consent, at."""
        columns = ["source_id", "message_id", "type", "event", "user_id", "anonymous_id", "timestamp",
                   "received_at", "properties", "traits", "context", "consent"]  # fmt: skip
        rows, ids = [], []
        for spec in specs:
            n = next(self._n)
            mid = spec.get("id") or f"m_{self.ns}_{n:05d}"
            at = spec.get("at") or self.base + timedelta(milliseconds=n)
            props = orjson.dumps(spec.get("props", {"n": n})).decode()
            context = orjson.dumps(spec.get("context", {})).decode()
            traits = orjson.dumps(spec.get("traits", {})).decode()
            rows.append([self.source, mid, spec.get("type", "track"), spec.get("event", "Order Completed"),
                         spec.get("user", ""), spec.get("anon", f"anon-{self.ns}"), at, at, props, traits,
                         context, spec.get("consent", "")])  # fmt: skip
            ids.append(mid)
        self.ch.insert("events", rows, column_names=columns)
        return ids


@pytest.fixture
async def fwd(ch: Client, redis: aioredis.Redis) -> Forwarding:
    world = Forwarding(ch, redis)
    await world.start()
    time.sleep(0.002)
    return world
