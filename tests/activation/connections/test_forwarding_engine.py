"""The forwarding engine with real ClickHouse and Redis: reader → queue → delivery job, faults injected."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from typing import Any

from activation.connections import letters, queue
from activation.connections.delivery import run_delivery
from activation.connections.reader import forward_once, run_reader
from activation.connections.routing import active_routes, routes_changed
from activation.destinations.events.mixpanel import insert_id
from tests.activation.connections.conftest import FAST, Forwarding
from tests.fakes.mixpanel import FakeMixpanel
from tests.fakes.webhook import FakeWebhookReceiver


async def forward(fwd: Forwarding) -> int:
    """One reader pass over this test's connections (other tests' rows share the ClickHouse)."""
    routes = [r for r in await active_routes(fwd.services) if r.source_id == fwd.source]
    return await forward_once(fwd.services, FAST, routes)


async def webhook(fwd: Forwarding, hook: FakeWebhookReceiver, **extra: Any) -> str:
    return await fwd.destination(
        "webhook", {"url": hook.url, "batch_size": 7}, {"secret": hook.secret}, **extra
    )


async def test_webhook_gets_each_event_once_per_message_id_in_person_order(fwd: Forwarding) -> None:
    async with FakeWebhookReceiver() as hook:
        dest = await webhook(fwd, hook)
        connection = await fwd.connect(dest)
        people = [f"user-{fwd.ns}-{i}" for i in range(3)]
        ids = fwd.events([{"user": people[n % 3]} for n in range(30)])
        hook.inject("throttle", times=2, retry_after_s=0.2)
        hook.inject("error500", times=2)
        assert await forward(fwd) == 30
        assert await forward(fwd) == 0  # the overlap re-read forwards nothing twice
        result = await run_delivery(fwd.services, dest, FAST)
        assert result["status"] == "drained" and result["delivered"] == 30
        assert hook.event_counts == {mid: 1 for mid in ids}
        by_person: dict[str, list[str]] = defaultdict(list)
        for event in hook.events:
            by_person[event["userId"]].append(event["messageId"])
        assert all(seq == sorted(seq) for seq in by_person.values()) and len(by_person) == 3
        assert any(d >= 0.2 for d in fwd.sleeps.delays_s)  # Retry-After honoured
        assert hook.events[0]["type"] == "track" and hook.events[0]["properties"] == {"n": 0}
        stats = await queue.stats(fwd.redis, connection, dest)
        assert stats["delivered"] == 30 and stats["failed"] >= 4 and stats["pending"] == 0
        assert stats["lag_ms"] is not None


async def test_filter_mapping_and_first_connection_per_destination(fwd: Forwarding) -> None:
    async with FakeWebhookReceiver() as hook:
        dest = await webhook(fwd, hook)
        await fwd.connect(dest, filter={"events": ["Signed Up"]}, mapping={"events": {"Signed Up": "signup"},
                          "properties": {"plan": "tier"}})  # fmt: skip
        await fwd.connect(dest, filter={"types": ["track"]})
        fwd.events([{"event": "Signed Up", "props": {"plan": "pro"}}, {"event": "Viewed"}, {"type": "page"}])
        assert await forward(fwd) == 2
        await run_delivery(fwd.services, dest, FAST)
        assert [(e["event"], e["properties"]) for e in hook.events] == [
            ("signup", {"tier": "pro"}), ("Viewed", {"n": 1})
        ]  # fmt: skip


async def test_consent_category_uses_the_newest_signal_of_the_person(fwd: Forwarding) -> None:
    async with FakeWebhookReceiver() as hook:
        dest = await webhook(fwd, hook, consent_category="marketing")
        connection = await fwd.connect(dest)
        yes, no, silent = (f"{k}-{fwd.ns}" for k in ("yes", "no", "silent"))
        fwd.events([{"user": yes, "consent": '{"marketing": true}', "id": f"c1-{fwd.ns}"}])
        await asyncio.sleep(0.01)
        fwd.events([
            {"user": yes, "id": f"y-{fwd.ns}"}, {"user": no, "consent": '{"marketing": false}'},
            {"user": silent}, {"user": yes, "consent": '{"marketing": false}', "id": f"c2-{fwd.ns}"},
        ])  # fmt: skip
        await forward(fwd)
        await run_delivery(fwd.services, dest, FAST)
        assert sorted(hook.event_counts) == sorted([f"c1-{fwd.ns}", f"y-{fwd.ns}"])
        assert (await queue.stats(fwd.redis, connection, dest))["filtered"] == 3


async def test_partial_failures_are_dead_lettered_with_reasons_and_replayable(fwd: Forwarding) -> None:
    async with FakeMixpanel() as mp:
        config = {"base_url": mp.base_url, "project_id": mp.project_id}
        dest = await fwd.destination("mixpanel", config, {"project_token": mp.token})
        connection = await fwd.connect(dest)
        ids = fwd.events([{"user": f"u-{fwd.ns}"}, {"user": "undefined"}, {"user": f"u-{fwd.ns}"}])
        await forward(fwd)
        await run_delivery(fwd.services, dest, FAST)
        wanted = sorted([insert_id(ids[0]), insert_id(ids[2])])  # "_" is not allowed: a hash is sent
        assert sorted(e["properties"]["$insert_id"] for e in mp.events) == wanted
        open_letters = await letters.page(fwd.db, dest, "open", "", 10)
        assert [r["message_id"] for r in open_letters] == [ids[1]]
        assert "distinct_id" in open_letters[0]["reason"]
        stats = await queue.stats(fwd.redis, connection, dest)
        assert (stats["delivered"], stats["dead_lettered"]) == (2, 1)


async def test_a_slow_destination_does_not_delay_another(fwd: Forwarding) -> None:
    async with FakeWebhookReceiver(latency_s=1.5) as slow, FakeWebhookReceiver() as fast:
        slow_dest, fast_dest = await webhook(fwd, slow), await webhook(fwd, fast)
        await fwd.connect(slow_dest)
        await fwd.connect(fast_dest)
        ids = fwd.events([{"user": f"u-{fwd.ns}"} for _ in range(10)])
        await forward(fwd)
        slow_job = asyncio.create_task(run_delivery(fwd.services, slow_dest, FAST))
        await asyncio.wait_for(run_delivery(fwd.services, fast_dest, FAST), 1.2)
        assert set(fast.event_counts) == set(ids) and not slow.events and not slow_job.done()
        await slow_job
        assert set(slow.event_counts) == set(ids)


async def test_a_long_retry_after_pauses_the_destination_and_keeps_the_events(fwd: Forwarding) -> None:
    async with FakeWebhookReceiver() as hook:
        dest = await webhook(fwd, hook)
        await fwd.connect(dest)
        fwd.events([{"user": f"u-{fwd.ns}"} for _ in range(3)])
        await forward(fwd)
        hook.inject("throttle", times=1, retry_after_s=120)
        result = await run_delivery(fwd.services, dest, FAST)
        assert result["status"] == "paused" and not hook.events
        assert await queue.length(fwd.redis, dest) == 3 and await queue.paused_for_s(fwd.redis, dest) > 100
        assert not await letters.page(fwd.db, dest, "", "", 10)
        deferred = [kw for name, _, kw in fwd.queued.jobs if name == "deliver_events"]
        assert deferred and deferred[-1]["defer_s"] >= 120
        assert (await run_delivery(fwd.services, dest, FAST))["status"] == "paused"  # still waiting


async def test_a_connection_created_while_the_reader_runs_gets_the_events_stored_after_it(
    fwd: Forwarding,
) -> None:
    """Before, the reader routed with its cached route list (routes_ttl_s) and moved the watermark past
    events stored right after a new connection: that connection never got them."""
    async with FakeWebhookReceiver() as hook:
        dest = await webhook(fwd, hook)
        ids: list[str] = []

        async def sleep(delay_s: float) -> None:
            if not ids:  # between the reader's first and second pass: connect, then events arrive
                await fwd.connect(dest)
                await routes_changed(fwd.services)
                ids.extend(fwd.events([{"user": f"late-{fwd.ns}"} for _ in range(3)]))
            await asyncio.sleep(0.01)

        # long enough for a second pass on a loaded machine (at 0.3 s a slow first pass ended the run
        # before its first sleep: a fresh-clone CI run saw no connection made at all)
        settings = replace(FAST, reader_run_s=3.0, routes_ttl_s=60.0)
        result = await run_reader(replace(fwd.services, sleep=sleep), settings)
        assert result["status"] == "ok" and len(ids) == 3
        assert await queue.length(fwd.redis, dest) == 3
