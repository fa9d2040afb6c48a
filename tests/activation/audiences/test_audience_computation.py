"""Computing audiences against the real embedded ClickHouse: snapshots, diffs, history, identity."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from activation.audiences import membership, store
from activation.audiences.computation import compute, compute_audience
from activation.audiences.schedule import TICK_S, enqueue_due_audiences
from tests.activation.audiences.audience_rows import (
    add_profile,
    event_row,
    insert_events,
    link,
    person,
    save_audience,
    set_traits,
)
from tests.services import job_ctx

BUYERS = (
    "trait('ns') = '{ns}' and event('Order Completed').where(property('total') > 50).within(30 days)"
    ".count() >= 2 and trait('plan') = 'pro'"
)


def _orders(ch: Client, ns: str, name: str, totals: list[float], **ids: str) -> None:
    ids = ids or {"user_id": f"{ns}-u-{name}"}
    insert_events(ch, [event_row(event="Order Completed", properties={"total": t}, **ids) for t in totals])


def test_compute_snapshots_members_and_a_rerun_changes_nothing(ch: Client, ns: str, now: datetime) -> None:
    a, b, c = (
        person(ch, ns, "a", plan="pro"),
        person(ch, ns, "b", plan="pro"),
        person(ch, ns, "c", plan="free"),
    )
    _orders(ch, ns, "a", [60, 70, 10])
    _orders(ch, ns, "b", [60, 20])
    _orders(ch, ns, "c", [60, 70, 80])
    audience = save_audience(ch, f"{ns}-buyers", BUYERS.format(ns=ns))
    first = compute(ch, audience.id, now)
    assert (first["members"], first["entered"], first["exited"], first["status"]) == (1, 1, 0, "computed")
    assert membership.members(ch, audience.id) == [a]
    again = compute(ch, audience.id, now)  # same data, same clock: nothing enters or exits
    assert (again["members"], again["entered"], again["exited"]) == (1, 0, 0)
    assert again["computed_at"] > first["computed_at"]
    assert [r["entered"] for r in membership.runs(ch, audience.id)] == [0, 1]
    assert b not in membership.members(ch, audience.id) and c not in membership.members(ch, audience.id)


def test_diff_history_and_profile_memberships(ch: Client, ns: str) -> None:
    a, b = person(ch, ns, "a", plan="pro"), person(ch, ns, "b", plan="pro")
    _orders(ch, ns, "a", [60, 70])
    _orders(ch, ns, "b", [60])
    audience = save_audience(ch, f"{ns}-buyers", BUYERS.format(ns=ns))
    t1 = datetime.now(UTC)
    compute(ch, audience.id, t1)
    set_traits(ch, a, version=2, plan="free")  # a leaves
    _orders(ch, ns, "b", [99])  # b joins
    t2 = t1 + timedelta(minutes=5)
    run = compute(ch, audience.id, t2)
    assert (run["members"], run["entered"], run["exited"]) == (1, 1, 1)
    assert membership.diff(ch, audience.id, t2) == [(a, "exited"), (b, "entered")]
    assert membership.diff(ch, audience.id, t1) == [(a, "entered")]
    assert membership.members(ch, audience.id, at=t1 - timedelta(seconds=1)) == []
    assert membership.members(ch, audience.id, at=t1 + timedelta(minutes=1)) == [a]
    assert membership.members(ch, audience.id, at=t2) == [b]
    assert membership.member_count(ch, audience.id, at=t1) == 1
    assert [m["key"] for m in membership.profile_audiences(ch, b)] == [audience.key]
    assert membership.profile_audiences(ch, a) == []
    assert membership.is_member(ch, audience.id, b) and not membership.is_member(ch, audience.id, a)


def test_diff_pages_cover_every_change_once(ch: Client, ns: str, now: datetime) -> None:
    people = [person(ch, ns, f"p{i:02d}") for i in range(25)]
    audience = save_audience(ch, f"{ns}-all", f"trait('ns') = '{ns}'")
    at = datetime.fromisoformat(compute(ch, audience.id, now)["computed_at"])
    seen, after = [], ""
    while page := membership.diff(ch, audience.id, at, after, limit=10):
        seen.extend(page)
        after = page[-1][0]
    assert seen == [(p, "entered") for p in people]
    assert membership.members(ch, audience.id, after=people[9], limit=3) == people[10:13]


def test_events_are_read_through_the_identity_mapping(ch: Client, ns: str, now: datetime) -> None:
    a, b = person(ch, ns, "a"), person(ch, ns, "b")
    anon_only = event_row(event="Clicked", anonymous_id=f"{ns}-a-a")
    unmapped_user = event_row(event="Clicked", user_id=f"{ns}-u-nobody", anonymous_id=f"{ns}-a-a")
    user_wins = event_row(event="Clicked", user_id=f"{ns}-u-b", anonymous_id=f"{ns}-a-a")
    bot = event_row(event="Clicked", user_id=f"{ns}-u-a", is_bot=1)
    stray = event_row(event="Clicked", user_id=f"{ns}-u-stray", anonymous_id=f"{ns}-a-stray")
    insert_events(ch, [anon_only, unmapped_user, user_wins, bot, bot, stray])
    exact = save_audience(ch, f"{ns}-clickers", f"trait('ns') = '{ns}' and event('Clicked').count() = 2")
    compute(ch, exact.id, now)
    assert membership.members(ch, exact.id) == [a]  # anonymous + user_id fallback; bots skipped; b has 1
    link(ch, b, version=2, anonymous_id=f"{ns}-a-a")  # the anonymous id moves to b: its events follow
    many = save_audience(ch, f"{ns}-many", f"trait('ns') = '{ns}' and event('Clicked').count() >= 3")
    compute(ch, many.id, now)
    assert membership.members(ch, many.id) == [b]
    link(ch, b, version=3, deleted=1, anonymous_id=f"{ns}-a-a")
    compute(ch, many.id, now)
    assert membership.members(ch, many.id) == []


def test_versioned_rows_never_double_count(ch: Client, ns: str, now: datetime) -> None:
    a, b = person(ch, ns, "a", plan="pro"), person(ch, ns, "b", plan="pro")
    set_traits(ch, a, version=2, plan="free")
    add_profile(ch, b, version=2, lifetime_revenue=500.0)
    add_profile(ch, b, version=3, lifetime_revenue=50.0)
    gone = person(ch, ns, "gone", plan="pro")
    add_profile(ch, gone, version=2, deleted=1)
    hidden = person(ch, ns, "hidden", plan="pro")
    set_traits(ch, hidden, version=2, deleted=1, plan="pro")
    pro = save_audience(ch, f"{ns}-pro", f"trait('ns') = '{ns}' and trait('plan') = 'pro'")
    rich = save_audience(ch, f"{ns}-rich", f"trait('ns') = '{ns}' and computed('lifetime_revenue') > 100")
    compute(ch, pro.id, now)
    compute(ch, rich.id, now)
    assert membership.members(ch, pro.id) == [b]
    assert membership.members(ch, rich.id) == []


def test_zero_counts_membership_and_deletion(ch: Client, ns: str, now: datetime) -> None:
    a, b = person(ch, ns, "a"), person(ch, ns, "b")
    insert_events(ch, [event_row(event="Churned", user_id=f"{ns}-u-a")])
    churned = save_audience(ch, f"{ns}-churned", f"event('Churned').count() >= 1 and trait('ns') = '{ns}'")
    quiet = save_audience(ch, f"{ns}-quiet", f"trait('ns') = '{ns}' and event('Churned').count() = 0")
    loyal = save_audience(ch, f"{ns}-loyal", f"trait('ns') = '{ns}' and not audience('{ns}-churned')")
    compute(ch, quiet.id, now)
    assert membership.members(ch, quiet.id) == [b]
    compute(ch, loyal.id, now)  # before churned was computed: nobody is in it yet
    assert membership.members(ch, loyal.id) == [a, b]
    compute(ch, churned.id, now)
    compute(ch, loyal.id, now)
    assert membership.members(ch, loyal.id) == [b]
    store.save(ch, replace(churned, deleted=True), now)
    gone = compute(ch, churned.id, now)
    assert (gone["status"], gone["members"], gone["exited"]) == ("deleted", 0, 1)
    assert membership.members(ch, churned.id) == []


def test_operators_on_stored_json(ch: Client, ns: str, now: datetime) -> None:
    numeric = person(ch, ns, "numeric", age="42", tags=["vip", "beta"], score=7.5, active=True)
    other = person(ch, ns, "other", age=17, tags="vip-ish", score="n/a", active=False, email="x@acme.io")
    insert_events(
        ch, [event_row(event="Bought", user_id=f"{ns}-u-other", properties={"item": {"sku": "A-1"}})]
    )
    expectations = {
        "trait('age') > 30": [numeric],
        "trait('age') in (17, 'x')": [other],
        "trait('tags').contains('vip')": [numeric, other],
        "trait('tags') = 'vip-ish'": [other],
        "trait('score') >= 7.5": [numeric],
        "trait('active') = true": [numeric],
        "trait('active') != true": [other],
        "trait('email').exists()": [other],
        "not trait('email').exists()": [numeric],
        "trait('email') != 'y@acme.io'": [other],
        "event('Bought').where(property('item.sku') = 'A-1').count() >= 1": [other],
        "event('Bought').between('2000-01-01', '2001-01-01').count() >= 1": [],
    }
    for i, (condition, expected) in enumerate(expectations.items()):
        audience = save_audience(ch, f"{ns}-op{i}", f"trait('ns') = '{ns}' and ({condition})")
        compute(ch, audience.id, now)
        assert membership.members(ch, audience.id) == expected, condition


async def test_the_job_runs_in_a_thread_with_the_context_client(ch: Client, ns: str) -> None:
    person(ch, ns, "a")
    audience = save_audience(ch, f"{ns}-job", f"trait('ns') = '{ns}'", schedule_every_s=60)
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    result = await compute_audience(job_ctx(ch, clock=lambda: moment), audience.id)
    assert (result["status"], result["members"], result["computed_at"]) == ("computed", 1, moment.isoformat())
    assert await compute_audience(job_ctx(ch), "aud_missing") == {
        "audience_id": "aud_missing",
        "status": "missing",
    }
    assert audience.id not in membership.due(ch, moment + timedelta(seconds=59))
    assert audience.id in membership.due(ch, moment + timedelta(seconds=60))
    assert audience.id not in membership.due(ch, moment + timedelta(seconds=29), tick_s=60)
    assert audience.id in membership.due(ch, moment + timedelta(seconds=31), tick_s=60)


async def test_every_60_s_runs_at_every_scheduler_tick(ch: Client, ns: str) -> None:
    """Runs start a little after the tick that enqueued them; the next tick must still find them due."""
    person(ch, ns, "a")
    audience = save_audience(ch, f"{ns}-cadence", f"trait('ns') = '{ns}'", schedule_every_s=60)
    start = datetime(2031, 1, 1, tzinfo=UTC)
    runs = []
    queued: list[str] = []

    async def enqueue(job: str, audience_id: str, job_id: str) -> None:
        queued.append(audience_id)

    for tick in range(5):
        at = start + timedelta(seconds=TICK_S * tick, milliseconds=30)
        queued.clear()
        await enqueue_due_audiences(job_ctx(ch, enqueue=enqueue, clock=lambda at=at: at))
        if audience.id in queued:
            late = at + timedelta(milliseconds=700)  # the worker picks the job up a moment later
            runs.append(
                (await compute_audience(job_ctx(ch, clock=lambda late=late: late), audience.id))["key"]
            )
    assert len(runs) == 5
