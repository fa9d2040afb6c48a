"""erase_everywhere: a person synced to all five destination types is removed from every list through
the sync engine's removal path — after they left every membership — and each platform's erasure API
is called where one exists (HubSpot GDPR delete, Mailchimp permanent delete, a signed webhook notice)."""

# ruff: noqa: F811  (the sync fixtures are imported by name and then requested as parameters)
from __future__ import annotations

from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.privacy.outbound import erase_everywhere
from activation.privacy.person import Person
from activation.services import of
from activation.sync import runs, state
from activation.sync.engine import sync_destination
from activation.sync.state import Pair
from tests.activation.sync.conftest import (  # noqa: F401
    MC_LIST,
    Fakes,
    World,
    ctx,
    fakes,
    sleeps,
    world,
)
from tests.activation.sync.test_engine import held
from tests.fakes.mailchimp import md5_lower

KINDS = ("google_ads", "meta", "mailchimp", "hubspot", "webhook")


def person(world: World, n: int) -> Person:
    ids = {Identifier("email", world.email(n)), Identifier("user_id", f"u_{world.ns}_{n}")}
    return Person(frozenset({world.pid(n)}), frozenset(ids))


async def synced_world(ctx: dict[str, Any], world: World, fakes: Fakes) -> tuple[dict[str, str], str, str]:
    world.people(range(1, 4))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    ids = {kind: await world.destination(kind, fakes.setups()[kind]) for kind in KINDS}
    for kind in KINDS:
        assert (await sync_destination(ctx, ids[kind], audience_id))["status"] == "succeeded"
        assert held(fakes, world, kind, key) == {1, 2, 3}, kind
    return ids, audience_id, key


def forget_memberships(ch: Client, world: World, n: int) -> None:
    """What the privacy core does before: the person is in no membership any more."""
    ch.command(
        "DELETE FROM audience_membership_changes WHERE profile_id = {p:String}",
        parameters={"p": world.pid(n)},
        settings={"lightweight_deletes_sync": 2},
    )


async def test_removed_from_every_list_and_erased_where_the_platform_can(
    ctx: dict[str, Any], world: World, fakes: Fakes, ch: Client
) -> None:
    ids, audience_id, key = await synced_world(ctx, world, fakes)
    forget_memberships(ch, world, 1)
    outcomes = await erase_everywhere(of(ctx), person(world, 1))

    mine = {o["type"]: o for o in outcomes if o["destination_id"] in ids.values()}
    statuses = {kind: mine[kind]["status"] for kind in KINDS}
    assert statuses == {
        "google_ads": "removed",
        "meta": "removed",
        "mailchimp": "erased",
        "hubspot": "erased",
        "webhook": "notified",
    }, mine
    for kind in KINDS:
        assert held(fakes, world, kind, key) == {2, 3}, kind
        assert await state.confirmed(world.db, Pair(ids[kind], audience_id), "absent") == {world.pid(1)}
        logged = await runs.list_runs(world.db, {"destination_id": ids[kind]}, None, 10)
        assert (logged[0]["trigger"], logged[0]["removed"]) == ("privacy", 1)
    assert md5_lower(world.email(1)) in fakes.mailchimp.forgotten
    assert fakes.mailchimp.status_of(MC_LIST, world.email(1)) is None
    assert (
        fakes.hubspot.gdpr_deleted == [world.email(1)] and fakes.hubspot.find("email", world.email(1)) is None
    )
    assert fakes.webhook.deletions == [{"email": [world.email(1)], "user_id": [f"u_{world.ns}_1"]}]
    assert fakes.webhook.rejections == []  # the notice and the exit were signed and well-formed


async def test_a_destination_that_never_held_the_person_is_skipped_and_nothing_is_called(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    await synced_world(ctx, world, fakes)
    world.people([9])
    stranger = await world.destination("hubspot", fakes.setups()["hubspot"])
    calls = len(fakes.hubspot.requests)
    outcomes = await erase_everywhere(of(ctx), person(world, 9))
    assert {o["status"] for o in outcomes if o["destination_id"] == stranger} == {"skipped"}
    assert {o["status"] for o in outcomes} == {"skipped"}
    assert len(fakes.hubspot.requests) == calls and fakes.hubspot.gdpr_deleted == []


async def test_throttling_is_retried_and_a_refusing_platform_is_a_failed_outcome_with_its_reason(
    ctx: dict[str, Any], world: World, fakes: Fakes, sleeps: Any
) -> None:
    ids, _, key = await synced_world(ctx, world, fakes)
    fakes.webhook.inject("throttle", times=2, retry_after_s=3)
    fakes.hubspot.inject("error500", times=None, path="gdpr-delete")
    everywhere = await erase_everywhere(of(ctx), person(world, 2))
    outcomes = {o["type"]: o for o in everywhere if o["destination_id"] in ids.values()}
    assert outcomes["webhook"]["status"] == "notified" and sleeps.delays_s.count(3.0) == 2
    assert outcomes["hubspot"]["status"] == "failed"
    assert "erasure call failed: gave up after" in outcomes["hubspot"]["detail"]
    assert held(fakes, world, "hubspot", key) == {1, 3}  # the list removal itself went through
    assert orjson.dumps(outcomes).find(b"access-1") == -1  # no credential in any outcome
