"""Fixtures for CRM tests: the shared ClickHouse, an in-process Redis, the fake CRMs, and a helper
that registers a CRM source (its `sources` row and its sealed config) and pulls it as the job does."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client

from activation.admin.sources import SourceStore
from activation.crm import store
from activation.crm.pull import pull_crm_source
from activation.crm.sources import CrmSourceSettings
from activation.identity.identifiers import Identifier
from activation.identity.lookup import lookup
from activation.net import parse_allow_list
from activation.profiles_api import reads
from activation.services import Services
from activation.sync.delivery import RetryPolicy
from activation.sync.settings import SyncSettings
from tests.fakes.hubspot_crm import FakeHubSpotCrm
from tests.fakes.salesforce_crm import FakeSalesforceCrm

SECRET_KEY = "test-secret-key-for-crm-0123456789"
_LOOKUP = (
    "SELECT profile_id FROM identity_current WHERE identifier_type = {t:String} AND identifier_value = {v:String}"
    " AND profile_id IN (SELECT profile_id FROM profiles GROUP BY profile_id HAVING argMax(deleted, version) = 0)"
)
_TRAITS = (
    "SELECT trait, value, source_id FROM profile_traits FINAL WHERE profile_id = {p:String} AND deleted = 0"
)
_IDS = "SELECT identifier_type, identifier_value FROM identity_current WHERE profile_id = {p:String}"
OAUTH = {"refresh_token": "refresh-1", "client_id": "client-id", "client_secret": "client-secret"}
ALLOW = parse_allow_list("127.0.0.1,localhost")


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpotCrm]:
    async with FakeHubSpotCrm() as fake:
        yield fake


@pytest.fixture
async def salesforce() -> AsyncIterator[FakeSalesforceCrm]:
    async with FakeSalesforceCrm() as fake:
        yield fake


@dataclass
class Crm:
    """One test's view: unique names, the services a job gets, sources it registered."""

    ch: Client
    services: Services
    uid: str

    @property
    def phone(self) -> str:
        """A per-test E.164 number."""
        return "+1415" + str(int(self.uid, 16) % 10**7).zfill(7)

    def email(self, name: str) -> str:
        return f"{name}.{self.uid}@example.com"

    async def source(self, kind: str, config: dict[str, Any], credentials: dict[str, str]) -> str:
        settings = CrmSourceSettings(self.services.db, SECRET_KEY, ALLOW)
        created = await SourceStore(self.services.db, None, settings).create(
            {"name": f"{kind} {self.uid}", "type": kind, "config": config, "credentials": credentials}
        )
        return str(created["id"])

    async def pull(self, source_id: str) -> dict[str, Any]:
        return await pull_crm_source({"services": self.services}, source_id, "manual")

    async def runs(self, source_id: str) -> list[dict[str, Any]]:
        return await store.list_runs(self.services.db, source_id, None, 100)

    def profile(self, type_: str, value: str) -> dict[str, Any] | None:
        pid = lookup(self.ch, Identifier(type_, value))
        return reads.profile_document(self.ch, pid) if pid else None

    def traits(self, type_: str, value: str) -> dict[str, Any]:
        doc = self.profile(type_, value)
        return {k: v["value"] for k, v in doc["traits"].items()} if doc else {}


@pytest.fixture
def crm(ch: Client, redis: aioredis.Redis) -> Crm:
    fast = SyncSettings(retry=RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05))
    services = Services(
        ch=ch, redis=redis, secret_key=SECRET_KEY, allow=ALLOW, clock=lambda: datetime.now(UTC), sync=fast
    )
    return Crm(ch, services, secrets.token_hex(4))
