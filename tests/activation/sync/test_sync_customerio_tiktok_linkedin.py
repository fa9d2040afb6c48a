"""The sync engine end to end against the Customer.io, TikTok and LinkedIn fakes: final state equals the
computed membership, one refused record is dead-lettered while the rest is delivered, consent gates
members, throttling is retried after the platform's delay, and LinkedIn's token is refreshed once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from activation.sync import runs, state
from activation.sync.engine import sync_destination
from activation.sync.state import Pair
from tests.activation.sync.conftest import FAST, OAUTH, World, sha256_hex
from tests.fakes.customerio import FakeCustomerIo
from tests.fakes.linkedin import FakeLinkedIn
from tests.fakes.tiktok import FakeTikTok
from tests.services import changed

KINDS = ("customerio", "tiktok", "linkedin")
SEGMENT, ADVERTISER, AUDIENCE, DMP_SEGMENT = "7", "7001234567890", "123456", "5501"
BAD = 3


@dataclass
class Fakes:
    customerio: FakeCustomerIo
    tiktok: FakeTikTok
    linkedin: FakeLinkedIn

    def setup(self, kind: str) -> tuple[dict[str, Any], dict[str, str]]:
        if kind == "customerio":
            creds = {"site_id": FakeCustomerIo.site_id, "api_key": FakeCustomerIo.api_key}
            return {"segment_id": SEGMENT, "base_url": self.customerio.base_url}, creds
        if kind == "tiktok":
            cfg = {"advertiser_id": ADVERTISER, "audience_id": AUDIENCE, "base_url": self.tiktok.base_url}
            return cfg, {"access_token": "access-1"}
        token_url = self.linkedin.base_url + "/oauth/v2/accessToken"
        cfg = {"segment_id": DMP_SEGMENT, "base_url": self.linkedin.base_url, "token_url": token_url}
        return cfg, {"access_token": "access-1", **OAUTH}

    def held(self, world: World, kind: str) -> set[int]:
        """Person numbers the platform holds (emails, or their SHA-256 hashes, mapped back)."""
        if kind == "customerio":
            emails = self.customerio.segment_emails(SEGMENT)
            return {n for n in range(200) if world.email(n) in emails}
        hashes = (
            self.tiktok.members(ADVERTISER, AUDIENCE)
            if kind == "tiktok"
            else self.linkedin.members(DMP_SEGMENT)
        )
        return {n for n in range(200) if sha256_hex(world.email(n)) in hashes}

    def refuse(self, world: World, kind: str, n: int) -> None:
        """Customer.io refuses the person's identify entry (207); TikTok refuses the whole call
        (40002, all or nothing); LinkedIn refuses that element (per-element 400)."""
        if kind == "customerio":
            self.customerio.refuse(world.email(n))
        else:
            (self.tiktok if kind == "tiktok" else self.linkedin).refuse(sha256_hex(world.email(n)))


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with FakeCustomerIo() as cio, FakeTikTok() as tiktok, FakeLinkedIn() as linkedin:
        cio.add_segment(SEGMENT)
        tiktok.add_audience(ADVERTISER, AUDIENCE)
        linkedin.add_segment(DMP_SEGMENT)
        yield Fakes(cio, tiktok, linkedin)


@pytest.mark.parametrize("kind", KINDS)
async def test_membership_reaches_the_platform_and_one_refused_record_is_dead_lettered(
    kind: str, ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    ctx = changed(ctx, sync=replace(FAST, max_batch_members=5))  # three batches of additions
    world.people(range(1, 14))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 13)], "entered")
    destination_id = await world.destination(kind, fakes.setup(kind))
    fakes.refuse(world, kind, BAD)

    first = await sync_destination(ctx, destination_id, audience_id)
    assert (first["status"], first["added"], first["removed"], first["failed"]) == ("partial", 11, 0, 1)
    assert fakes.held(world, kind) == set(range(1, 13)) - {BAD}
    letters = await runs.dead_letters(world.db, first["id"])
    assert [(d["profile_id"], d["change"], d["permanent"]) for d in letters] == [
        (world.pid(BAD), "entered", True)
    ]
    assert letters[0]["reason"]

    world.change(audience_id, [world.pid(1), world.pid(2)], "exited")
    world.change(audience_id, [world.pid(13)], "entered")
    second = await sync_destination(ctx, destination_id, audience_id)
    assert (second["status"], second["added"], second["removed"], second["failed"]) == ("succeeded", 1, 2, 0)
    assert fakes.held(world, kind) == set(range(3, 14)) - {BAD}
    pair = Pair(destination_id, audience_id)
    assert await state.confirmed(world.db, pair) == {world.pid(n) for n in range(4, 14)}
    assert world.pid(BAD) in await state.confirmed(world.db, pair, "dead_add")


@pytest.mark.parametrize("kind", KINDS)
async def test_consent_gates_members_and_withdrawal_removes_them(
    kind: str, ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 5))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 5)], "entered")
    world.consent(1, {"marketing": True})
    world.consent(2, {"marketing": False})
    world.traits({world.pid(3): {"consent": {"marketing": True}}})
    destination_id = await world.destination(kind, fakes.setup(kind), consent_category="marketing")
    await sync_destination(ctx, destination_id, audience_id)
    assert fakes.held(world, kind) == {1, 3}

    world.consent(1, {"marketing": False})
    world.consent(4, {"marketing": True})
    result = await sync_destination(ctx, destination_id, audience_id)
    assert (result["added"], result["removed"]) == (1, 1)
    assert fakes.held(world, kind) == {3, 4}


@pytest.mark.parametrize(("kind", "fault", "delay_s"), [
    ("customerio", {"retry_after_s": 2}, 2.0),   # 429 + Retry-After
    ("tiktok", {"code": 40100}, 10.0),           # HTTP 200, code 40100
    ("linkedin", {"retry_after_s": 3}, 3.0),     # 429 + Retry-After
])  # fmt: skip
async def test_throttling_is_retried_after_the_platforms_delay(
    kind: str,
    fault: dict[str, Any],
    delay_s: float,
    ctx: dict[str, Any],
    world: World,
    fakes: Fakes,
    sleeps: Any,
) -> None:
    world.people(range(1, 4))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    getattr(fakes, kind).inject("throttle", times=1, **fault)
    destination_id = await world.destination(kind, fakes.setup(kind))
    result = await sync_destination(ctx, destination_id, audience_id)
    assert (result["status"], result["added"]) == ("succeeded", 3)
    assert sleeps.delays_s == [delay_s]
    assert fakes.held(world, kind) == {1, 2, 3}


async def test_linkedin_token_is_refreshed_once_and_persisted(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 4))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    destination_id = await world.destination("linkedin", fakes.setup("linkedin"))
    fakes.linkedin.inject("auth_expired")
    result = await sync_destination(ctx, destination_id, audience_id)
    assert result["status"] == "succeeded" and fakes.linkedin.refresh_calls == 1
    stored = await world.store.get(destination_id)
    assert stored is not None
    token = world.store.credentials(stored)["access_token"]
    assert token != "access-1" and token in fakes.linkedin.tokens
    assert fakes.held(world, "linkedin") == {1, 2, 3}


@pytest.mark.parametrize("kind", ["customerio", "tiktok"])
async def test_credentials_without_refresh_fail_the_run_permanently(
    kind: str, ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 3))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(1), world.pid(2)], "entered")
    destination_id = await world.destination(kind, fakes.setup(kind))
    getattr(fakes, kind).inject("auth_expired", times=10)
    result = await sync_destination(ctx, destination_id, audience_id)
    assert (result["status"], result["failed"]) == ("failed", 2)
    letters = await runs.dead_letters(world.db, result["id"])
    assert {d["permanent"] for d in letters} == {True}
    assert "cannot be refreshed" in letters[0]["reason"]
