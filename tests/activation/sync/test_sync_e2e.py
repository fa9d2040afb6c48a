"""End to end, in process: events → stitched profiles → an audience (event count + trait) → the
scheduler → synced to all five fake platforms, consent respected.

The server process does not run identity and audience jobs yet, so this drives the same functions
directly on the shared embedded ClickHouse: rows in `events` as the collector writes them, the
identity stitch job, the audience computation, `schedule_syncs`, then each queued sync job.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.audiences import store as audience_store
from activation.audiences.computation import compute
from activation.audiences.parser import parse
from activation.audiences.store import Audience
from activation.identity.jobs import stitch_tick
from activation.sync.engine import JOB_NAME, sync_destination
from activation.sync.schedule import schedule_syncs
from tests.activation.audiences.audience_rows import event_row, insert_events
from tests.activation.sync.conftest import Api, Fakes, World
from tests.activation.sync.test_engine import KINDS, held
from tests.services import job_ctx

# person number → (plan, orders, consents to marketing)
PEOPLE = {
    1: ("pro", 2, True),
    2: ("pro", 3, True),
    3: ("pro", 1, True),
    4: ("free", 5, True),
    5: ("pro", 2, False),
}


def person_events(world: World, n: int, now: datetime) -> list[dict[str, Any]]:
    plan, orders, consents = PEOPLE[n]
    anon, user = f"anon-{world.ns}-{n}", f"user-{world.ns}-{n}"
    context = {"consent": {"categoryPreferences": {"marketing": consents}}}
    identify = event_row(
        type="identify",
        anonymous_id=anon,
        user_id=user,
        traits={"email": world.email(n), "plan": plan, "ns": world.ns, "first_name": f"P{n}"},
        consent=f'{{"marketing": {str(consents).lower()}}}',
        context=orjson.dumps(context).decode(),
        timestamp=now - timedelta(minutes=10),
    )
    orders_rows = [
        event_row(event="Order Completed", anonymous_id=anon, timestamp=now - timedelta(days=1, minutes=i))
        for i in range(orders)
    ]
    return [identify, *orders_rows]


def profile_ids(ch: Client, emails: list[str]) -> set[str]:
    sql = "SELECT profile_id FROM identity_current WHERE identifier_type = 'email' AND has({e:Array(String)}, identifier_value)"
    return {row[0] for row in ch.query(sql, parameters={"e": emails}).result_rows}


async def test_events_to_audience_to_five_platforms(
    ctx: dict[str, Any], world: World, fakes: Fakes, api: Api, ch: Client
) -> None:
    now = datetime.now(UTC)
    insert_events(ch, [row for n in PEOPLE for row in person_events(world, n, now)])
    await stitch_tick(job_ctx(ch, ctx["services"].redis))

    ids = []
    for kind in KINDS:
        config, credentials = fakes.setups()[kind]
        body = {"type": kind, "name": kind, "config": config, "credentials": credentials}
        created = await api.call(
            "POST", "/admin/v1/destinations", json={**body, "consent_category": "marketing"}
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    query = f"event('Order Completed').within(30 days).count() >= 2 and trait('plan') = 'pro' and trait('ns') = '{world.ns}'"
    key = f"e2e-{world.ns}"
    audience = Audience(
        id=f"aud_{uuid.uuid4().hex[:12]}", key=key, name=key, definition=parse(query), destinations=tuple(ids)
    )
    audience_store.save(ch, audience, now)
    computed = compute(ch, audience.id, now)
    assert (computed["members"], computed["entered"]) == (3, 3)

    queued: list[tuple[str, tuple[Any, ...], str]] = []

    async def enqueue(name: str, *args: Any, job_id: str) -> bool:
        queued.append((name, args, job_id))
        return True

    await schedule_syncs(job_ctx(ch, enqueue=enqueue))
    mine = [args for name, args, _ in queued if name == JOB_NAME and args[0] in ids]
    assert sorted(mine) == sorted((d, audience.id) for d in ids)
    for args in mine:
        result = await sync_destination(ctx, *args)
        assert (result["status"], result["added"]) == ("succeeded", 2), result
    for kind in KINDS[:-1]:
        assert held(fakes, world, kind, key) == {1, 2}, kind
    assert fakes.webhook.members[key] == profile_ids(ch, [world.email(1), world.email(2)])

    queued.clear()
    await schedule_syncs(job_ctx(ch, enqueue=enqueue))
    assert [args for _, args, _ in queued if args[0] in ids] == []
