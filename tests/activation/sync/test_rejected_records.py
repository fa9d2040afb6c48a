"""One refused record never stops a run: for every destination type the platform's refusal of one
member is dead-lettered and the rest of the batch, and of the run, is delivered (status `partial`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from activation.sync import runs, state
from activation.sync.engine import sync_destination
from activation.sync.state import Pair
from tests.activation.sync.conftest import FAST, Fakes, World, sha256_hex
from tests.activation.sync.test_engine import KINDS, held
from tests.services import changed

BAD = 3


def refuse(fakes: Fakes, world: World, kind: str, n: int) -> None:
    """Tell the platform to refuse person `n`, in the form that platform sees it."""
    fake = {
        "google_ads": fakes.google,
        "meta": fakes.meta,
        "mailchimp": fakes.mailchimp,
        "hubspot": fakes.hubspot,
        "webhook": fakes.webhook,
    }[kind]
    email = world.email(n)
    fake.refuse(
        {"google_ads": sha256_hex(email), "meta": sha256_hex(email), "webhook": world.pid(n)}.get(kind, email)
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_one_refused_record_is_dead_lettered_and_the_run_goes_on(
    kind: str, ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    ctx = changed(ctx, sync=replace(FAST, max_batch_members=5))  # three batches of additions
    world.people(range(1, 14))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 13)], "entered")
    destination_id = await world.destination(kind, fakes.setups()[kind])
    refuse(fakes, world, kind, BAD)

    first = await sync_destination(ctx, destination_id, audience_id)
    assert (first["status"], first["added"], first["removed"], first["failed"]) == ("partial", 11, 0, 1)
    assert held(fakes, world, kind, key) == set(range(1, 13)) - {BAD}
    letters = await runs.dead_letters(world.db, first["id"])
    assert [(d["profile_id"], d["change"], d["permanent"]) for d in letters] == [
        (world.pid(BAD), "entered", True)
    ]
    assert letters[0]["reason"]
    run = await runs.get_run(world.db, first["id"])
    assert run is not None and run["errors"] and run["status"] == "partial"

    world.change(audience_id, [world.pid(1), world.pid(2)], "exited")
    world.change(audience_id, [world.pid(13)], "entered")
    second = await sync_destination(ctx, destination_id, audience_id)
    assert (second["status"], second["added"], second["removed"], second["failed"]) == ("succeeded", 1, 2, 0)
    assert held(fakes, world, kind, key) == set(range(3, 14)) - {BAD}
    assert world.pid(BAD) in await state.confirmed(world.db, Pair(destination_id, audience_id), "dead_add")


async def test_splitting_is_bounded_and_unisolated_members_stay_retryable(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    settings = replace(FAST, max_batch_members=8, split_sends_per_run=2)
    ctx = changed(ctx, sync=settings)
    world.people(range(1, 17))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 17)], "entered")
    destination_id = await world.destination("webhook", fakes.setups()["webhook"])
    fakes.webhook.refuse(world.pid(2), world.pid(10))

    result = await sync_destination(ctx, destination_id, audience_id)
    # batch 1 (1-8) splits once: 5-8 go through, 1-4 is refused again with no budget left;
    # batch 2 (9-16) is refused whole, no budget left. The run still reaches batch 2.
    assert (result["status"], result["added"], result["failed"]) == ("partial", 4, 12)
    assert held(fakes, world, "webhook", key) == {5, 6, 7, 8}
    letters = await runs.dead_letters(world.db, result["id"])
    assert len(letters) == 12 and not any(d["permanent"] for d in letters)
    assert all(d["reason"].startswith("not isolated") for d in letters)

    fakes.webhook.refused.clear()
    again = await sync_destination(ctx, destination_id, audience_id)
    assert (again["status"], again["added"]) == ("succeeded", 12)
    assert held(fakes, world, "webhook", key) == set(range(1, 17))


async def test_a_destination_wide_refusal_still_fails_the_run_without_splitting(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 9))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 9)], "entered")
    fakes.hubspot.lists["42"]["processingType"] = "DYNAMIC"  # membership edits refused: not a record's fault
    destination_id = await world.destination("hubspot", fakes.setups()["hubspot"])

    result = await sync_destination(ctx, destination_id, audience_id)
    assert (result["status"], result["added"], result["failed"]) == ("failed", 0, 8)
    assert len(fakes.hubspot.requests_to("/memberships/")) == 1
