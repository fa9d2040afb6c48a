"""The sync engine against the five fake platforms: final state equals the computed membership."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from activation.sync import runs, state
from activation.sync.engine import sync_destination
from activation.sync.state import Pair
from collector.metrics import Metrics
from tests.activation.sync.conftest import (
    CUSTOMER,
    META_AUDIENCE,
    Fakes,
    World,
    sha256_hex,
)
from tests.services import changed

KINDS = ("google_ads", "meta", "mailchimp", "hubspot", "webhook")


def held(fakes: Fakes, world: World, kind: str, key: str) -> set[int]:
    """Person numbers a fake holds for the audience (reverse-mapped from emails, hashes or ids)."""
    numbers = range(0, 200)
    if kind == "google_ads":
        hashes = fakes.google.members(CUSTOMER, "987654")
        return {n for n in numbers if sha256_hex(world.email(n)) in hashes}
    if kind == "meta":
        hashes = fakes.meta.members(META_AUDIENCE)
        return {n for n in numbers if sha256_hex(world.email(n)) in hashes}
    if kind == "webhook":
        pids = fakes.webhook.members.get(key, set())
        return {n for n in numbers if world.pid(n) in pids}
    emails = fakes.emails(kind, key)
    return {n for n in numbers if world.email(n) in emails}


async def test_adds_and_removes_reach_every_platform(ctx: dict[str, Any], world: World, fakes: Fakes) -> None:
    metrics = Metrics()
    ctx = changed(ctx, metrics=metrics)
    world.people(range(1, 13))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 11)], "entered")
    ids = {kind: await world.destination(kind, fakes.setups()[kind]) for kind in KINDS}
    first = await asyncio.gather(*(sync_destination(ctx, ids[k], audience_id) for k in KINDS))
    assert [r["status"] for r in first] == ["succeeded"] * 5, first
    assert all(r["added"] == 10 and r["removed"] == 0 for r in first)
    for kind in KINDS:
        assert held(fakes, world, kind, key) == set(range(1, 11)), kind

    world.change(audience_id, [world.pid(n) for n in (1, 2, 3)], "exited")
    world.change(audience_id, [world.pid(n) for n in (11, 12)], "entered")
    second = await asyncio.gather(*(sync_destination(ctx, ids[k], audience_id) for k in KINDS))
    assert [(r["added"], r["removed"], r["failed"]) for r in second] == [(2, 3, 0)] * 5, second
    for kind in KINDS:
        assert held(fakes, world, kind, key) == set(range(4, 13)), kind
        pair = Pair(ids[kind], audience_id)
        assert await state.confirmed(world.db, pair) == {world.pid(n) for n in range(4, 13)}

    third = await sync_destination(ctx, ids["webhook"], audience_id)
    assert (third["added"], third["removed"], third["status"]) == (0, 0, "succeeded")
    logged = await runs.list_runs(world.db, {"destination_id": ids["webhook"]}, None, 10)
    assert [r["status"] for r in logged] == ["succeeded"] * 3
    assert [r["added"] for r in logged] == [0, 2, 10]
    assert metrics.value("magpie_destination_records_sent_total", destination_type="hubspot") == 15
    assert (
        metrics.value("magpie_destination_sync_runs_total", destination_type="webhook", status="succeeded")
        == 3
    )


async def test_consent_gates_members_and_withdrawal_removes_them(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 5))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 5)], "entered")
    world.consent(1, {"marketing": True})
    world.consent(2, {"marketing": False, "analytics": True})
    world.traits({world.pid(3): {"consent": {"marketing": True}}})
    dest = await world.destination("webhook", fakes.setups()["webhook"], consent_category="marketing")
    await sync_destination(ctx, dest, audience_id)
    assert held(fakes, world, "webhook", key) == {1, 3}

    world.consent(1, {"marketing": False})
    world.consent(4, {"marketing": True})
    result = await sync_destination(ctx, dest, audience_id)
    assert (result["added"], result["removed"]) == (1, 1)
    assert held(fakes, world, "webhook", key) == {3, 4}


async def test_throttling_is_retried_honouring_retry_after(
    ctx: dict[str, Any], world: World, fakes: Fakes, sleeps: Any
) -> None:
    world.people(range(1, 4))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    fakes.webhook.inject("throttle", times=2, retry_after_s=7)
    fakes.google.inject("throttle", times=1, retry_delay_s=11)
    hook = await world.destination("webhook", fakes.setups()["webhook"])
    google = await world.destination("google_ads", fakes.setups()["google_ads"])
    assert (await sync_destination(ctx, hook, audience_id))["status"] == "succeeded"
    assert (await sync_destination(ctx, google, audience_id))["status"] == "succeeded"
    assert sleeps.delays_s == [7.0, 7.0, 11.0]
    assert held(fakes, world, "webhook", key) == held(fakes, world, "google_ads", key) == {1, 2, 3}


@pytest.mark.parametrize("kind", ["google_ads", "hubspot"])
async def test_expired_token_is_refreshed_once_and_persisted(
    ctx: dict[str, Any], world: World, fakes: Fakes, kind: str
) -> None:
    world.people(range(1, 4))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    dest = await world.destination(kind, fakes.setups()[kind])
    fake = fakes.google if kind == "google_ads" else fakes.hubspot
    fake.inject("auth_expired")
    result = await sync_destination(ctx, dest, audience_id)
    assert result["status"] == "succeeded" and fake.refresh_calls == 1
    stored = await world.store.get(dest)
    assert stored is not None
    token = world.store.credentials(stored)["access_token"]
    assert token != "access-1" and token in fake.tokens
    assert held(fakes, world, kind, key) == {1, 2, 3}


async def test_key_based_auth_failure_is_a_permanent_dead_letter(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 3))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(1), world.pid(2)], "entered")
    dest = await world.destination("mailchimp", fakes.setups()["mailchimp"])
    fakes.mailchimp.inject("auth_expired", times=10)
    result = await sync_destination(ctx, dest, audience_id)
    assert result["status"] == "failed" and result["failed"] == 2
    letters = await runs.dead_letters(world.db, result["id"])
    assert {d["permanent"] for d in letters} == {True}
    assert "cannot be refreshed" in letters[0]["reason"]
