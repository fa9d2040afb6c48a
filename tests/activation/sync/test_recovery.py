"""Faults: hangs time out without slowing other destinations, a crashed run resumes without resending
confirmed members, permanent record failures are dead-lettered and replayed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from activation.sync import runs, state
from activation.sync.engine import JOB_NAME, sync_destination
from activation.sync.state import Pair
from tests.activation.sync.conftest import Api, Fakes, World
from tests.activation.sync.test_engine import held


async def _timed(coro: Any) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    result = await coro
    return result, time.monotonic() - started


async def test_a_hanging_destination_times_out_and_never_delays_another(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 4))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    stuck = await world.destination("meta", fakes.setups()["meta"])
    healthy = await world.destination("webhook", fakes.setups()["webhook"])
    fakes.meta.inject("hang", times=None)
    (failed, failed_s), (ok, ok_s) = await asyncio.gather(
        _timed(sync_destination(ctx, stuck, audience_id)), _timed(sync_destination(ctx, healthy, audience_id))
    )
    assert ok["status"] == "succeeded" and ok_s < 1.0 < failed_s
    assert failed["status"] == "failed" and failed["failed"] == 3
    letters = await runs.dead_letters(world.db, failed["id"])
    assert len(letters) == 3 and not any(d["permanent"] for d in letters)
    assert "gave up after 4 attempts" in letters[0]["reason"] and "timeout" in letters[0]["reason"]

    fakes.meta.faults.clear()
    healed = await sync_destination(ctx, stuck, audience_id)
    assert (healed["status"], healed["added"]) == ("succeeded", 3)
    assert held(fakes, world, "meta", key) == {1, 2, 3}


async def test_one_hang_is_retried_after_the_request_timeout(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    world.people(range(1, 3))
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(1), world.pid(2)], "entered")
    dest = await world.destination("hubspot", fakes.setups()["hubspot"])
    fakes.hubspot.inject("hang", times=1)
    result = await sync_destination(ctx, dest, audience_id)
    assert result["status"] == "succeeded"
    assert held(fakes, world, "hubspot", key) == {1, 2}


def _entered_counts(fakes: Fakes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in fakes.webhook.requests:
        for member in orjson.loads(request.body)["entered"]:
            counts[member["profile_id"]] = counts.get(member["profile_id"], 0) + 1
    return counts


async def test_a_crash_mid_sync_resumes_without_resending_confirmed_members(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    pids = world.people(range(1, 9))
    audience_id, key = world.audience()
    world.change(audience_id, pids, "entered")
    setup = fakes.setups()["webhook"]
    dest = await world.destination("webhook", ({**setup[0], "batch_size": 2}, setup[1]))
    pair = Pair(dest, audience_id)
    fakes.webhook.latency_s = 0.2
    task = asyncio.create_task(sync_destination(ctx, dest, audience_id))
    while not await state.confirmed(world.db, pair):
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    confirmed = await state.confirmed(world.db, pair)
    assert 2 <= len(confirmed) < 8
    [crashed] = await runs.list_runs(world.db, {"destination_id": dest}, None, 10)
    assert crashed["status"] == "interrupted"

    fakes.webhook.latency_s = 0.0
    resumed = await sync_destination(ctx, dest, audience_id)
    assert resumed["status"] == "succeeded" and resumed["added"] <= 8 - len(confirmed)
    assert held(fakes, world, "webhook", key) == set(range(1, 9))
    counts = _entered_counts(fakes)
    assert all(counts[pid] == 1 for pid in confirmed), counts
    assert await state.confirmed(world.db, pair) == set(pids)


async def test_permanent_record_failure_is_dead_lettered_skipped_and_replayed(
    ctx: dict[str, Any], world: World, fakes: Fakes, api: Api
) -> None:
    world.people(range(1, 4))
    lonely = world.pid(9)
    world.traits({lonely: {"first_name": "Nomail"}})
    audience_id, key = world.audience()
    world.change(audience_id, [*(world.pid(n) for n in range(1, 4)), lonely], "entered")
    dest = await world.destination("mailchimp", fakes.setups()["mailchimp"])
    first = await sync_destination(ctx, dest, audience_id)
    assert (first["status"], first["added"], first["failed"]) == ("partial", 3, 1)
    run = (await api.call("GET", f"/admin/v1/syncs/{first['id']}")).json()
    assert run["errors"] == [f"{lonely}: no_valid_email"]
    [letter] = run["dead_letters"]
    assert (letter["profile_id"], letter["change"], letter["permanent"]) == (lonely, "entered", True)

    requests_before = len(fakes.mailchimp.requests)
    again = await sync_destination(ctx, dest, audience_id)
    assert (again["added"], again["failed"], len(fakes.mailchimp.requests)) == (0, 0, requests_before)

    world.ch.insert(
        "identity_map",
        [["email", world.email(9), lonely, 2, 0]],
        column_names=["identifier_type", "identifier_value", "profile_id", "version", "deleted"],
    )
    replay = await api.call("POST", f"/admin/v1/syncs/{first['id']}/replay")
    assert replay.status_code == 202 and replay.json()["replayed"] == 1
    [(name, args, job_id)] = api.queued
    assert (name, args) == (JOB_NAME, (dest, audience_id, "replay")) and job_id.startswith("sync:")
    replayed = await sync_destination(ctx, *args)
    assert (replayed["added"], replayed["failed"]) == (1, 0)
    assert held(fakes, world, "mailchimp", key) == {1, 2, 3, 9}
    letters = (await api.call("GET", f"/admin/v1/syncs/{first['id']}")).json()["dead_letters"]
    assert [d["status"] for d in letters] == ["replayed"]
