"""Audience Entered / Exited events for a run, in Segment's track shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from activation.audiences.computation import compute
from activation.audiences.signals import run_events
from tests.activation.audiences.audience_rows import add_profile, person, save_audience, set_traits


def test_run_events_name_profiles_and_are_deterministic(ch: Client, ns: str) -> None:
    a, b = person(ch, ns, "a", plan="pro"), person(ch, ns, "b", plan="pro")
    lone = f"{ns}-lone"
    add_profile(ch, lone)
    set_traits(ch, lone, ns=ns, plan="pro")
    audience = save_audience(
        ch, f"{ns}-pro", f"trait('ns') = '{ns}' and trait('plan') = 'pro'", emit_events=True
    )
    t1 = datetime.fromisoformat(compute(ch, audience.id, datetime.now(UTC))["computed_at"])
    events, cursor = run_events(ch, audience, t1)
    assert cursor is None
    assert [(e["event"], e["properties"]["profile_id"]) for e in events] == [
        ("Audience Entered", a),
        ("Audience Entered", b),
        ("Audience Entered", lone),
    ]
    first = events[0]
    assert first["type"] == "track" and first["userId"] == f"{ns}-u-a" and first["anonymousId"] == f"{ns}-a-a"
    assert first["properties"]["audience_key"] == audience.key
    assert first["timestamp"] == t1.isoformat()
    assert events[2]["anonymousId"] == lone and "userId" not in events[2]
    assert run_events(ch, audience, t1)[0] == events  # same messageIds when emitted again
    page, cursor = run_events(ch, audience, t1, limit=2)
    assert len(page) == 2 and cursor == b
    set_traits(ch, a, version=2, plan="free")
    t2 = datetime.fromisoformat(compute(ch, audience.id, t1 + timedelta(minutes=1))["computed_at"])
    exited, _ = run_events(ch, audience, t2)
    assert [(e["event"], e["userId"]) for e in exited] == [("Audience Exited", f"{ns}-u-a")]
    assert exited[0]["messageId"] != events[0]["messageId"]
