"""Each event client against its fake: what lands, batch and size limits, partial failures, throttling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from activation.destinations.base import (
    AuthExpiredError,
    Credentials,
    PermanentError,
    RejectedError,
    RetryableError,
)
from activation.destinations.events import EVENT_REGISTRY, OutboundEvent, RecordsRefused
from activation.destinations.events.ga4 import ga4_name
from activation.net import SafeSession, parse_allow_list, safe_session
from tests.fakes.amplitude import FakeAmplitude
from tests.fakes.braze_events import FakeBrazeEvents
from tests.fakes.ga4 import FakeGA4
from tests.fakes.hubspot_events import FakeHubSpotEvents
from tests.fakes.mixpanel import FakeMixpanel

REFUSED = (
    PermanentError,
    AuthExpiredError,
)  # both dead-letter: keys and private-app tokens are not refreshed
NOW = datetime.now(UTC)


def event(n: int, **fields: Any) -> OutboundEvent:
    body = {"type": "track", "event": "Order Completed", "userId": f"user-{n % 2}", "anonymousId": f"anon-{n % 2}",
            "messageId": f"msg-{n}", "timestamp": (NOW - timedelta(minutes=n)).isoformat(),
            "properties": {"total": n}, "context": {"traits": {"email": f"user{n % 2}@example.com"}}, **fields}  # fmt: skip
    return OutboundEvent(body["messageId"], f"u:{body['userId']}", body)


@pytest.fixture
async def session() -> AsyncIterator[SafeSession]:
    async with safe_session(parse_allow_list("127.0.0.1"), timeout_s=5) as s:
        yield s


async def send(kind: str, session: SafeSession, events: list[OutboundEvent], config: dict[str, Any],
               credentials: dict[str, str]) -> Any:  # fmt: skip
    return await EVENT_REGISTRY[kind].send_events(session, events, Credentials(credentials), config, "key-1")


async def test_ga4_one_client_per_request_names_and_old_events(session: SafeSession) -> None:
    client = EVENT_REGISTRY["ga4"]
    events = [event(0), event(2), event(1), event(3, type="identify")]
    assert client.take(events, {}) == 2  # the third event is another person
    assert client.take([event(2 * i) for i in range(40)], {}) == 25
    assert (
        ga4_name("Order Completed") == "order_completed"
        and ga4_name("session_start") == "session_start_event"
    )
    assert ga4_name("ga_thing") == "x_ga_thing" and ga4_name("9 lives") == "e_9_lives"
    async with FakeGA4() as fake:
        config = {"base_url": fake.base_url, "measurement_id": fake.measurement_id}
        old = event(4, timestamp=(NOW - timedelta(hours=80)).isoformat())
        outcome = await send("ga4", session, [event(0), old, event(6, type="identify")], config,
                             {"api_secret": fake.api_secret})  # fmt: skip
        assert [i for i, _ in outcome.rejected] == [1] and [i for i, _ in outcome.skipped] == [2]
        assert [(e["name"], e["client_id"], e["params"]["total"]) for e in fake.events] == [
            ("order_completed", "anon-0", 0)
        ]
        assert not fake.dropped
        await send("ga4", session, [event(0)], config, {"api_secret": "wrong"})
        assert fake.silently_ignored == 1 and len(fake.events) == 1  # GA4 never reports bad secrets


async def test_mixpanel_partial_400_dedupe_and_limits(session: SafeSession) -> None:
    client = EVENT_REGISTRY["mixpanel"]
    assert client.take([event(i) for i in range(2500)], {}) == 2000
    big = [event(i, properties={"blob": "x" * 5000}) for i in range(10)]
    assert client.take(big, {"max_request_bytes": 20_000}) == 3
    async with FakeMixpanel() as fake:
        config = {"base_url": fake.base_url, "project_id": fake.project_id}
        creds = {"project_token": fake.token}
        outcome = await send(
            "mixpanel", session, [event(0), event(1, userId="null", anonymousId="")], config, creds
        )
        assert outcome.rejected and outcome.rejected[0][0] == 1 and "distinct_id" in outcome.rejected[0][1]
        await send("mixpanel", session, [event(0)], config, creds)  # a retry: deduplicated by $insert_id
        assert len(fake.events) == 1 and fake.duplicates == 1
        with pytest.raises(REFUSED):
            await send("mixpanel", session, [event(0)], config, {"project_token": "nope"})
        fake.inject("throttle")
        with pytest.raises(RetryableError):
            await send("mixpanel", session, [event(0)], config, creds)


async def test_amplitude_refuses_named_events_and_dedupes_insert_ids(session: SafeSession) -> None:
    async with FakeAmplitude() as fake:
        config, creds = {"base_url": fake.base_url}, {"api_key": fake.api_key}
        short = event(1, userId="ab", anonymousId="cd")
        outcome = await send("amplitude", session, [event(0), short], config, creds)
        assert [i for i, _ in outcome.rejected] == [1] and len(fake.events) == 1  # refused before sending
        with pytest.raises(RecordsRefused) as refused:
            await send("amplitude", session, [event(2), event(3, event="[Amplitude] Revenue")], config, creds)
        assert [i for i, _ in refused.value.refused] == [1] and len(fake.events) == 1  # nothing ingested
        await send("amplitude", session, [event(0), event(2)], config, creds)
        assert len(fake.events) == 2 and fake.duplicates == 1
        with pytest.raises(PermanentError, match="Invalid API key"):
            await send("amplitude", session, [event(0)], config, {"api_key": "nope"})
        fake.inject("throttle")
        with pytest.raises(RetryableError):
            await send("amplitude", session, [event(0)], config, creds)


async def test_braze_partial_errors_alias_limits_and_rate_limit_reset(session: SafeSession) -> None:
    client = EVENT_REGISTRY["braze_events"]
    assert client.take([event(i) for i in range(100)], {"base_url": "https://x"}) == 75
    assert client.take([event(i) for i in range(100)], {"base_url": "https://x", "max_objects": 50}) == 50
    async with FakeBrazeEvents(max_objects=3) as fake:
        config, creds = {"base_url": fake.base_url}, {"api_key": fake.api_key}
        anonymous = event(1, userId=None, properties={"$secret": 1, "ok": "y" * 300})
        outcome = await send(
            "braze_events", session, [event(0), anonymous, event(2, timestamp="nope")], config, creds
        )
        assert [i for i, _ in outcome.rejected] == [2]
        assert fake.events[1]["user_alias"] == {"alias_name": "anon-1", "alias_label": "anonymous_id"}
        assert fake.events[1]["properties"] == {"ok": "y" * 255}
        with pytest.raises(RejectedError, match="Max Input"):
            await send("braze_events", session, [event(i) for i in range(4)], config, creds)
        fake.inject("throttle", retry_after_s=3)
        with pytest.raises(RetryableError) as throttled:
            await send("braze_events", session, [event(0)], config, creds)
        assert throttled.value.retry_after_s is not None and 1 <= throttled.value.retry_after_s <= 4
        with pytest.raises(REFUSED):
            await send("braze_events", session, [event(0)], config, {"api_key": "nope"})


async def test_hubspot_names_uuid_dedupe_validation_and_429(session: SafeSession) -> None:
    async with FakeHubSpotEvents() as fake:
        config, creds = {"base_url": fake.base_url, "portal_id": fake.portal_id}, {"access_token": "access-1"}
        nameless = event(1, context={})
        outcome = await send("hubspot_events", session, [event(0), nameless], config, creds)
        assert [i for i, _ in outcome.skipped] == [1]
        assert fake.occurrences[0]["eventName"] == f"pe{fake.portal_id}_order_completed"
        await send("hubspot_events", session, [event(0)], config, creds)
        assert len(fake.occurrences) == 1 and fake.duplicates == 1
        long_value = event(2, properties={"Note Text": "z" * 80, "page_url": "u" * 150})
        await send("hubspot_events", session, [long_value], config, creds)
        assert fake.occurrences[1]["properties"] == {"note_text": "z" * 50, "page_url": "u" * 150}
        fake.inject("throttle", retry_after_s=2)
        with pytest.raises(RetryableError) as throttled:
            await send("hubspot_events", session, [event(0)], config, creds)
        assert throttled.value.retry_after_s == 2
        fake.inject("auth_expired")
        with pytest.raises(REFUSED):
            await send("hubspot_events", session, [event(0)], config, creds)


def test_event_only_types_validate_like_destinations_and_refuse_audience_syncs() -> None:
    from activation.destinations import REGISTRY

    assert set(EVENT_REGISTRY) - {"webhook"} == {
        "ga4",
        "mixpanel",
        "amplitude",
        "braze_events",
        "hubspot_events",
    }
    required = {k: set(REGISTRY[k].validate_config({})) for k in ("ga4", "braze_events", "hubspot_events")}
    assert required == {
        "ga4": {"measurement_id"},
        "braze_events": {"base_url"},
        "hubspot_events": {"portal_id"},
    }
    assert REGISTRY["mixpanel"].validate_config({}) == {} and REGISTRY["amplitude"].validate_config({}) == {}
    assert REGISTRY["mixpanel"].validate_config({"project_id": "x1"}) == {
        "project_id": "must match [0-9]{1,20}"
    }
    assert REGISTRY["amplitude"].validate_credentials(Credentials({})) == {"api_key": "is required"}
    assert REGISTRY["ga4"].endpoint_urls({"measurement_id": "G-ABCD1234"}) == [
        "https://www.google-analytics.com"
    ]


async def test_an_audience_sync_to_an_event_only_type_fails_with_the_reason(session: SafeSession) -> None:
    from activation.destinations import REGISTRY, SyncBatch

    with pytest.raises(PermanentError, match="event destination"):
        await REGISTRY["ga4"].send(session, SyncBatch("vip"), Credentials({}), {})
