"""Trait sync through the sync engine (`sync_destination` with `"mode": "traits"`) against the CRM
fakes: mapped traits, computed traits and audience memberships written to CRM fields, by record id
or by email / external id, only changed values sent, CRM-owned fields never written, refused records
isolated and dead-lettered, token expiry refreshed."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client

from activation.db import Database
from activation.destinations import Credentials
from activation.sync import runs
from activation.sync.crypto import CredentialCipher
from activation.sync.engine import sync_destination
from activation.sync.store import DestinationRecord, DestinationStore
from tests.activation.crm.conftest import ALLOW, OAUTH, SECRET_KEY
from tests.activation.sync.conftest import FAST, World
from tests.fakes.hubspot_crm import FakeHubSpotCrm
from tests.fakes.salesforce_crm import FakeSalesforceCrm
from tests.services import job_ctx


@pytest.fixture
def world(ch: Client) -> World:
    return World(ch)


def link(world: World, pid: str, type_: str, value: str) -> None:
    columns = ["identifier_type", "identifier_value", "profile_id", "version", "deleted"]
    world.ch.insert("identity_map", [[type_, value, pid, time.time_ns(), 0]], column_names=columns)


async def destination(ch: Client, kind: str, config: dict[str, Any], credentials: dict[str, str]) -> str:
    store = DestinationStore(Database(ch), CredentialCipher(SECRET_KEY))
    record = DestinationRecord(id=f"dst_traits_{time.time_ns()}", type=kind, name=kind, config=config)
    return (await store.save(store.seal(record, Credentials(credentials)))).id


async def sync(ch: Client, redis: aioredis.Redis, destination_id: str, audience_id: str) -> dict[str, Any]:
    ctx = job_ctx(ch, redis, secret_key=SECRET_KEY, allow=ALLOW, sync=FAST)
    return await sync_destination(ctx, destination_id, audience_id, "manual")


def writes(fake: FakeHubSpotCrm) -> list[dict[str, Any]]:
    calls = [r for r in fake.requests if r.path.endswith(("/batch/upsert", "/batch/update"))]
    return [i for r in calls for i in orjson.loads(r.body)["inputs"]]


async def test_hubspot_trait_sync_writes_changed_values_only(
    ch: Client, redis: aioredis.Redis, world: World
) -> None:
    async with FakeHubSpotCrm() as fake:
        known = fake.put("contacts", {"email": world.email(1), "lifecyclestage": "lead"})
        pids = world.people([1, 2, 3], plan="pro", lifecycle="customer")
        link(world, pids[0], "ext:hubspot_contact_id", known)
        audience_id, key = world.audience("vip")
        world.change(audience_id, pids, "entered")
        mapping = {"plan": "plan_tier", f"audience:{key}": "magpie_vip", "first_name": "firstname",
                   "lifecycle": "lifecyclestage", "lifetime_revenue": "magpie_revenue"}  # fmt: skip
        config = {
            "mode": "traits",
            "base_url": fake.base_url,
            "mapping": mapping,
            "crm_owned": ["lifecyclestage"],
        }
        dst = await destination(ch, "hubspot", config, {"access_token": "access-1"})
        first = await sync(ch, redis, dst, audience_id)
        assert first["status"] == "succeeded" and first["added"] == 3
        assert fake.contacts[known]["plan_tier"] == "pro" and fake.contacts[known]["magpie_vip"] == "true"
        assert fake.contacts[known]["lifecyclestage"] == "lead"  # CRM-owned: never written
        created = fake.find("email", world.email(2))
        assert created is not None and fake.contacts[created]["firstname"] == "Ann"
        assert all("lifecyclestage" not in i["properties"] for i in writes(fake))
        assert len(fake.requests_to("/batch/update")) == 1  # the pulled contact by record id
        sent = len(writes(fake))
        assert (await sync(ch, redis, dst, audience_id))["added"] == 0 and len(writes(fake)) == sent
        world.traits({pids[1]: {"plan": "enterprise"}})
        world.change(audience_id, [pids[2]], "exited")
        third = await sync(ch, redis, dst, audience_id)
        assert third["added"] == 2
        assert [i["properties"] for i in writes(fake)[sent:]] == [
            {"plan_tier": "enterprise"},
            {"magpie_vip": "false"},
        ]


async def test_refused_record_is_isolated_and_dead_lettered(
    ch: Client, redis: aioredis.Redis, world: World
) -> None:
    async with FakeHubSpotCrm() as fake:
        pids = world.people([1, 2, 3, 4], plan="pro")
        audience_id, _ = world.audience("all")
        world.change(audience_id, pids, "entered")
        fake.refuse(world.email(3))
        config = {"mode": "traits", "base_url": fake.base_url, "mapping": {"plan": "plan_tier"}}
        dst = await destination(ch, "hubspot", config, {"access_token": "access-1", **OAUTH})
        fake.inject("auth_expired")  # the run refreshes its token once
        result = await sync(ch, redis, dst, audience_id)
        assert result["status"] == "partial" and (result["added"], result["failed"]) == (3, 1)
        assert fake.refresh_calls == 1
        letters = await runs.dead_letters(Database(ch), result["id"])
        assert [d["profile_id"] for d in letters] == [pids[2]] and letters[0]["permanent"]
        assert fake.find("email", world.email(3)) is None and fake.find("email", world.email(4))
        again = await sync(ch, redis, dst, audience_id)
        assert (again["added"], again["failed"]) == (0, 0)  # skipped until replayed


async def test_salesforce_trait_sync_by_record_id_and_external_id(
    ch: Client, redis: aioredis.Redis, world: World
) -> None:
    async with FakeSalesforceCrm() as fake:
        known = fake.put("Contact", LastName="Known", Email=world.email(1), Title="VP")
        pids = world.people([1, 2], plan="pro", last_name="Lee", title="Intern")
        link(world, pids[0], "ext:salesforce_contact_id", known)
        audience_id, key = world.audience("vip")
        world.change(audience_id, pids, "entered")
        config = {"mode": "traits", "instance_url": fake.base_url, "token_url": f"{fake.base_url}/services/oauth2/token",
                  "mapping": {"plan": "Plan__c", "last_name": "LastName", "title": "Title", f"audience:{key}": "Vip__c"},
                  "crm_owned": ["Title"], "external_id_field": "Magpie_Id__c"}  # fmt: skip
        dst = await destination(ch, "salesforce", config, {"access_token": "access-1"})
        result = await sync(ch, redis, dst, audience_id)
        assert result["status"] == "succeeded" and result["added"] == 2
        assert (
            fake.records["Contact"][known]["Plan__c"] == "pro"
            and fake.records["Contact"][known]["Title"] == "VP"
        )
        created = [r for r in fake.live("Contact").values() if r.get("Magpie_Id__c") == pids[1]]
        assert len(created) == 1 and created[0]["LastName"] == "Lee" and created[0]["Vip__c"] is True
        assert "Title" not in created[0]
        calls = len(fake.requests_to("/composite/sobjects"))
        assert (await sync(ch, redis, dst, audience_id))["added"] == 0
        assert len(fake.requests_to("/composite/sobjects")) == calls
