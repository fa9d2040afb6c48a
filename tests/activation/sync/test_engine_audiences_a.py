"""The sync engine end to end against the Salesforce, SendGrid, Braze and Klaviyo fakes: final state
equals the computed membership, one refused record is dead-lettered while the rest is delivered,
consent gates who is sent, Salesforce's expired token is refreshed and stored, a rejected API key is
a permanent dead letter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from activation.sync import runs, state
from activation.sync.engine import sync_destination
from activation.sync.state import Pair
from tests.activation.sync.conftest import FAST, OAUTH, World
from tests.fakes.base import FakeServer
from tests.fakes.braze import FakeBraze
from tests.fakes.klaviyo import FakeKlaviyo
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.sendgrid import FakeSendGrid
from tests.services import changed

KINDS = ("salesforce", "sendgrid", "braze", "klaviyo")
CAMPAIGN, SG_LIST, KL_LIST = "701000000000001AAA", "8a6b5c4d-1234-4abc-9def-0123456789ab", "VRgFBd"
BAD = 3


@dataclass
class Fakes:
    salesforce: FakeSalesforce
    sendgrid: FakeSendGrid
    braze: FakeBraze
    klaviyo: FakeKlaviyo

    def setup(self, kind: str) -> tuple[dict[str, Any], dict[str, str]]:
        sf = self.salesforce.base_url
        return {
            "salesforce": (
                {"campaign_id": CAMPAIGN, "instance_url": sf, "token_url": sf + "/services/oauth2/token"},
                {"access_token": "access-1", **OAUTH},
            ),
            "sendgrid": (
                {"list_id": SG_LIST, "base_url": self.sendgrid.base_url},
                {"api_key": FakeSendGrid.api_key},
            ),
            "braze": ({"base_url": self.braze.base_url}, {"api_key": FakeBraze.api_key}),
            "klaviyo": (
                {"list_id": KL_LIST, "base_url": self.klaviyo.base_url},
                {"api_key": FakeKlaviyo.api_key},
            ),
        }[kind]

    def fake(self, kind: str) -> FakeServer:
        fake: FakeServer = getattr(self, kind)
        return fake

    def held(self, world: World, kind: str, key: str) -> set[int]:
        """Person numbers the platform holds for the audience."""
        numbers = range(0, 100)
        if kind == "braze":
            ids = self.braze.holding(f"magpie_{key}")
            return {n for n in numbers if f"u_{world.ns}_{n}" in ids}
        emails = {
            "salesforce": lambda: self.salesforce.campaign_emails(CAMPAIGN),
            "sendgrid": lambda: self.sendgrid.list_emails(SG_LIST),
            "klaviyo": lambda: self.klaviyo.list_emails(KL_LIST),
        }[kind]()
        return {n for n in numbers if world.email(n) in emails}

    def refuse(self, world: World, kind: str, n: int) -> None:
        self.fake(kind).refuse(f"u_{world.ns}_{n}" if kind == "braze" else world.email(n))


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with FakeSalesforce() as sf, FakeSendGrid() as sg, FakeBraze() as braze, FakeKlaviyo() as kl:
        sf.add_campaign(CAMPAIGN)
        sg.add_list(SG_LIST)
        kl.add_list(KL_LIST)
        yield Fakes(sf, sg, braze, kl)


@pytest.mark.parametrize("kind", KINDS)
async def test_adds_and_removes_reach_the_platform(
    kind: str, ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 13))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 11)], "entered")
    dest = await world.destination(kind, fakes.setup(kind))
    first = await sync_destination(ctx, dest, audience_id)
    assert (first["status"], first["added"], first["removed"]) == ("succeeded", 10, 0), first
    assert fakes.held(world, kind, key) == set(range(1, 11))

    world.change(audience_id, [world.pid(n) for n in (1, 2, 3)], "exited")
    world.change(audience_id, [world.pid(n) for n in (11, 12)], "entered")
    second = await sync_destination(ctx, dest, audience_id)
    assert (second["status"], second["added"], second["removed"], second["failed"]) == ("succeeded", 2, 3, 0)
    assert fakes.held(world, kind, key) == set(range(4, 13))
    assert await state.confirmed(world.db, Pair(dest, audience_id)) == {world.pid(n) for n in range(4, 13)}


@pytest.mark.parametrize("kind", KINDS)
async def test_one_refused_record_is_dead_lettered_and_the_run_goes_on(
    kind: str, ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    ctx = changed(ctx, sync=replace(FAST, max_batch_members=5))  # three batches of additions
    world.people(range(1, 14))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 13)], "entered")
    dest = await world.destination(kind, fakes.setup(kind))
    fakes.refuse(world, kind, BAD)

    first = await sync_destination(ctx, dest, audience_id)
    assert (first["status"], first["added"], first["failed"]) == ("partial", 11, 1), first
    assert fakes.held(world, kind, key) == set(range(1, 13)) - {BAD}
    letters = await runs.dead_letters(world.db, first["id"])
    assert [(d["profile_id"], d["change"], d["permanent"]) for d in letters] == [
        (world.pid(BAD), "entered", True)
    ]

    world.change(audience_id, [world.pid(1), world.pid(2)], "exited")
    world.change(audience_id, [world.pid(13)], "entered")
    second = await sync_destination(ctx, dest, audience_id)
    assert (second["status"], second["added"], second["removed"], second["failed"]) == ("succeeded", 1, 2, 0)
    assert fakes.held(world, kind, key) == set(range(3, 14)) - {BAD}


@pytest.mark.parametrize("kind", KINDS)
async def test_consent_gates_members_and_withdrawal_removes_them(
    kind: str, ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 5))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 5)], "entered")
    world.consent(1, {"marketing": True})
    world.consent(2, {"marketing": False})
    world.consent(3, {"marketing": True})
    dest = await world.destination(kind, fakes.setup(kind), consent_category="marketing")
    await sync_destination(ctx, dest, audience_id)
    assert fakes.held(world, kind, key) == {1, 3}

    world.consent(1, {"marketing": False})
    result = await sync_destination(ctx, dest, audience_id)
    assert (result["added"], result["removed"]) == (0, 1)
    assert fakes.held(world, kind, key) == {3}


async def test_salesforce_session_expiry_is_refreshed_and_stored(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 4))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    dest = await world.destination("salesforce", fakes.setup("salesforce"))
    fakes.salesforce.inject("auth_expired")
    result = await sync_destination(ctx, dest, audience_id)
    assert result["status"] == "succeeded" and fakes.salesforce.refresh_calls == 1
    stored = await world.store.get(dest)
    assert stored is not None
    token = world.store.credentials(stored)["access_token"]
    assert token != "access-1" and token in fakes.salesforce.tokens
    assert fakes.held(world, "salesforce", key) == {1, 2, 3}


@pytest.mark.parametrize("kind", ["sendgrid", "braze", "klaviyo"])
async def test_rejected_api_key_is_a_permanent_dead_letter(
    kind: str, ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 3))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(1), world.pid(2)], "entered")
    config, _ = fakes.setup(kind)
    dest = await world.destination(kind, (config, {"api_key": "revoked-key"}))
    result = await sync_destination(ctx, dest, audience_id)
    assert (result["status"], result["failed"]) == ("failed", 2)
    letters = await runs.dead_letters(world.db, result["id"])
    assert {d["permanent"] for d in letters} == {True} and "401" in letters[0]["reason"]
    assert len(fakes.fake(kind).requests) == 1  # not retried
