"""Catch-up of connections the reader did not route with before (activation/connections/catchup.py),
with real ClickHouse and Redis: a pass that loaded its routes before a connection existed reads the
events stored after it, routes them without it and moves the watermark past them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from clickhouse_connect.driver.client import Client

from activation.connections import queue
from activation.connections.catchup import MEMORY_KEY, held_key, mark_key
from activation.connections.delivery import run_delivery
from activation.connections.reader import forward_once, run_reader
from activation.connections.routing import active_routes, routes_changed
from activation.connections.rules import Route
from activation.connections.settings import ForwardSettings
from activation.connections.store import ConnectionStore
from tests.activation.connections.conftest import FAST, Forwarding
from tests.fakes.webhook import FakeWebhookReceiver

# short settle, small pages, one catch-up page per pass: a catch-up of 5 events takes several passes
SLOW_CATCHUP = replace(FAST, overlap_s=0.2, page_events=2, catchup_pages=1)


class HeldRead:
    """The ClickHouse client of a reader whose first read of new events waits for `during` (run on
    the event loop): the pass has loaded its routes and not yet read or routed."""

    def __init__(self, ch: Client, during: Callable[[], Awaitable[None]]) -> None:
        self.ch, self.during, self.loop = ch, during, asyncio.get_running_loop()

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        if "inserted_at > {since:" in sql and self.during is not None:
            during, self.during = self.during, None
            asyncio.run_coroutine_threadsafe(during(), self.loop).result(timeout=10)
        return self.ch.query(sql, parameters=parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ch, name)


async def routes(fwd: Forwarding) -> list[Route]:
    return [r for r in await active_routes(fwd.services) if r.source_id == fwd.source]


async def deliver(fwd: Forwarding, *destinations: str) -> None:
    for destination_id in destinations:
        assert (await run_delivery(fwd.services, destination_id, FAST))["status"] == "drained"


async def webhook(fwd: Forwarding, hook: FakeWebhookReceiver) -> str:
    return await fwd.destination("webhook", {"url": hook.url, "batch_size": 3}, {"secret": hook.secret})


async def settle(fwd: Forwarding, settings: ForwardSettings, connection_id: str, passes: int = 40) -> None:
    """Reader passes over this test's routes until the connection's catch-up is done."""
    for _ in range(passes):
        await forward_once(fwd.services, settings, await routes(fwd))
        if not await fwd.redis.exists(mark_key(connection_id)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the catch-up did not finish")


async def test_a_connection_created_while_a_pass_is_in_flight_gets_every_event_after_it_once(
    fwd: Forwarding,
) -> None:
    """Before, the pass that loaded its routes before the connection read the late events, routed them
    to the old connection only and moved the watermark past them: the new connection never got them."""
    async with FakeWebhookReceiver() as old_hook, FakeWebhookReceiver() as new_hook:
        old_dest, new_dest = await webhook(fwd, old_hook), await webhook(fwd, new_hook)
        await fwd.connect(old_dest)
        before = fwd.events([{"user": f"b-{fwd.ns}"} for _ in range(3)])
        late: list[str] = []
        after: list[str] = []
        created: list[str] = []

        async def connect_then_store() -> None:  # the pass holds its route list, without the connection
            await asyncio.sleep(0.01)
            created.append(await fwd.connect(new_dest, created_at=datetime.now(UTC)))
            await routes_changed(fwd.services)
            await asyncio.sleep(0.01)
            late.extend(fwd.events([{"user": f"l-{fwd.ns}-{n % 2}"} for n in range(5)]))

        async def sleep(delay_s: float) -> None:
            if not after:  # after the in-flight pass: events the live read routes to both
                after.extend(fwd.events([{"user": f"a-{fwd.ns}"} for _ in range(2)]))
            await asyncio.sleep(0.01)

        services = replace(fwd.services, ch=cast(Client, HeldRead(fwd.ch, connect_then_store)), sleep=sleep)
        result = await run_reader(services, replace(SLOW_CATCHUP, reader_run_s=2.0, routes_ttl_s=60.0))
        assert result["status"] == "ok" and len(late) == 5 and len(after) == 2
        assert not await fwd.redis.exists(mark_key(created[0]))  # done: the mark is gone
        await deliver(fwd, old_dest, new_dest)
        assert new_hook.event_counts == {m: 1 for m in late + after}
        assert old_hook.event_counts == {m: 1 for m in before + late + after}  # no duplicates
        assert (await queue.stats(fwd.redis, created[0], new_dest))["delivered"] == 7


async def test_a_catch_up_goes_by_pages_resumes_and_ends_when_the_connection_is_deleted(
    fwd: Forwarding,
) -> None:
    async with FakeWebhookReceiver() as old_hook, FakeWebhookReceiver() as new_hook:
        old_dest, new_dest = await webhook(fwd, old_hook), await webhook(fwd, new_hook)
        await fwd.connect(old_dest)
        assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 0  # routes remembered
        in_flight = await routes(fwd)
        connection = await fwd.connect(new_dest, created_at=datetime.now(UTC))
        await asyncio.sleep(0.01)
        late = fwd.events([{"user": f"l-{fwd.ns}"} for _ in range(6)])
        assert await forward_once(fwd.services, SLOW_CATCHUP, in_flight) == 6  # to the old connection only
        await asyncio.sleep(0.25)  # older than overlap_s: the catch-up reads them
        for pages in (1, 2):  # one page of 2 per pass; the mark carries it to the next pass
            assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 2
            assert await queue.length(fwd.redis, new_dest) == 2 * pages
            assert await fwd.redis.exists(mark_key(connection))
        record = await ConnectionStore(fwd.db).get(connection)
        assert record is not None
        await ConnectionStore(fwd.db).save(replace(record, deleted=True, enabled=False))
        assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 0
        assert not await fwd.redis.exists(mark_key(connection))
        assert not await fwd.redis.hexists(MEMORY_KEY, connection)  # a deleted connection is forgotten
        await deliver(fwd, old_dest, new_dest)
        assert new_hook.event_counts == {m: 1 for m in late[:4]}
        assert old_hook.event_counts == {m: 1 for m in late}


async def test_a_re_enabled_connection_is_caught_up_from_its_re_enabling_only(fwd: Forwarding) -> None:
    async with FakeWebhookReceiver() as old_hook, FakeWebhookReceiver() as hook:
        old_dest, dest = await webhook(fwd, old_hook), await webhook(fwd, hook)
        await fwd.connect(old_dest)
        connection = await fwd.connect(dest)
        store = ConnectionStore(fwd.db)
        first = fwd.events([{"user": f"f-{fwd.ns}"} for _ in range(2)])
        assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 4
        record = await store.get(connection)
        assert record is not None
        record = await store.save(replace(record, enabled=False))
        assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 0  # it left the routes
        while_disabled = fwd.events([{"user": f"d-{fwd.ns}"} for _ in range(2)])
        assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 2
        in_flight = await routes(fwd)
        await asyncio.sleep(0.01)
        await store.save(replace(record, enabled=True))
        await asyncio.sleep(0.01)
        re_enabled = fwd.events([{"user": f"r-{fwd.ns}"} for _ in range(3)])
        assert await forward_once(fwd.services, SLOW_CATCHUP, in_flight) == 3
        await settle(fwd, SLOW_CATCHUP, connection)
        await deliver(fwd, old_dest, dest)
        assert hook.event_counts == {m: 1 for m in first + re_enabled}
        assert old_hook.event_counts == {m: 1 for m in first + while_disabled + re_enabled}


async def test_a_catch_up_does_not_resend_what_another_connection_gave_the_same_destination(
    fwd: Forwarding,
) -> None:
    async with FakeWebhookReceiver() as hook:
        dest = await webhook(fwd, hook)
        await fwd.connect(dest, filter={"events": ["Signed Up"]})
        assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 0  # routes remembered
        in_flight = await routes(fwd)
        connection = await fwd.connect(dest, created_at=datetime.now(UTC))  # everything, same destination
        await asyncio.sleep(0.01)
        late = fwd.events([{"event": "Signed Up"}, {"event": "Viewed"}, {"event": "Signed Up"}])
        assert await forward_once(fwd.services, SLOW_CATCHUP, in_flight) == 2
        await settle(fwd, SLOW_CATCHUP, connection)
        await deliver(fwd, dest)
        assert hook.event_counts == {m: 1 for m in late}  # the catch-up added only the one it missed
        assert (await queue.stats(fwd.redis, connection, dest))["delivered"] == 1


async def test_two_connections_catching_up_to_one_destination_send_each_event_once(fwd: Forwarding) -> None:
    """Each catch-up deferred only to the other's live floor, below which both ranges lie: the events
    both filters let through were sent twice. Now the lower connection id takes what both would."""
    async with FakeWebhookReceiver() as hook:
        dest = await webhook(fwd, hook)
        await fwd.connect(dest, filter={"events": ["Never Sent"]})
        assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 0  # routes remembered
        in_flight = await routes(fwd)
        everything = await fwd.connect(dest, created_at=datetime.now(UTC))
        signups = await fwd.connect(dest, filter={"events": ["Signed Up"]}, created_at=datetime.now(UTC))
        await asyncio.sleep(0.01)
        late = fwd.events([{"event": "Signed Up"}, {"event": "Viewed"}, {"event": "Signed Up"}])
        assert await forward_once(fwd.services, SLOW_CATCHUP, in_flight) == 0  # neither is routed live
        for _ in range(40):
            await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd))
            if not await fwd.redis.exists(mark_key(everything), mark_key(signups)):
                break
            await asyncio.sleep(0.05)
        await deliver(fwd, dest)
        assert hook.event_counts == {m: 1 for m in late}
        first, second = sorted([everything, signups])
        sent = {c: (await queue.stats(fwd.redis, c, dest))["delivered"] for c in (first, second)}
        assert sent == ({first: 3, second: 0} if first == everything else {first: 2, second: 1})


async def test_a_catching_up_connection_gets_its_events_in_stored_order(fwd: Forwarding) -> None:
    """Before, the live pass queued the connection's newest events at once, ahead of the older ones its
    catch-up was still waiting to read (overlap_s): a person's events arrived out of order."""
    async with FakeWebhookReceiver() as hook, FakeWebhookReceiver() as other_hook:
        other = await webhook(fwd, other_hook)
        await fwd.connect(other)
        assert await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd)) == 0  # routes remembered
        in_flight = await routes(fwd)
        dest = await webhook(fwd, hook)
        connection = await fwd.connect(dest, created_at=datetime.now(UTC))
        await asyncio.sleep(0.01)
        person = f"p-{fwd.ns}"
        late = fwd.events([{"user": person, "event": f"Late {n}"} for n in range(3)])
        assert await forward_once(fwd.services, SLOW_CATCHUP, in_flight) == 3  # to the other one only
        live = fwd.events([{"user": person, "event": f"Live {n}"} for n in range(2)])
        await forward_once(fwd.services, SLOW_CATCHUP, await routes(fwd))  # the catch-up starts
        assert await fwd.redis.exists(mark_key(connection))
        assert await queue.length(fwd.redis, dest) == 0  # the live ones wait for the older ones
        await settle(fwd, SLOW_CATCHUP, connection)
        await deliver(fwd, dest, other)
        assert [e["messageId"] for e in hook.events] == late + live
        assert other_hook.event_counts == {m: 1 for m in late + live}
        assert not await fwd.redis.exists(held_key(connection))
        assert (await queue.stats(fwd.redis, connection, dest))["delivered"] == 5
