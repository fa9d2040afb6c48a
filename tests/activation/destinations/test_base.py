"""The destination contract: registry conformance, config errors, secrets kept out of messages."""

from __future__ import annotations

import pytest

from activation.destinations import (
    REGISTRY,
    Credentials,
    Member,
    PermanentError,
    SupportsConnectionTest,
    SupportsDeletion,
    SupportsTokenRefresh,
    SyncBatch,
)
from activation.destinations.bounded import run_bounded
from activation.destinations.events import EVENT_ONLY
from activation.net import EMPTY, SafeSession

CANARY = "canary-SECRET-0xdeadbeef"


def test_registry_names_match_types() -> None:
    assert set(REGISTRY) == {
        *("google_ads", "meta", "mailchimp", "hubspot", "webhook"),
        *("customerio", "tiktok", "linkedin"),
        *("salesforce", "sendgrid", "braze", "klaviyo"),
        *EVENT_ONLY,  # ga4, mixpanel, amplitude, braze_events, hubspot_events (tests/activation/connections)
    }
    assert all(dest.type == name for name, dest in REGISTRY.items())


def test_capabilities() -> None:
    refreshable = {n for n, d in REGISTRY.items() if isinstance(d, SupportsTokenRefresh)}
    deletable = {n for n, d in REGISTRY.items() if isinstance(d, SupportsDeletion)}
    assert refreshable == {"google_ads", "hubspot", "linkedin", "salesforce"}
    assert deletable == {"mailchimp", "hubspot"}
    assert all(isinstance(d, SupportsConnectionTest) for n, d in REGISTRY.items() if n not in EVENT_ONLY)


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - set(EVENT_ONLY)))
def test_empty_config_reports_required_fields(name: str) -> None:
    errors = REGISTRY[name].validate_config({})
    assert errors and all(isinstance(v, str) for v in errors.values())


def test_credentials_repr_hides_values() -> None:
    creds = Credentials({"access_token": CANARY})
    assert CANARY not in repr(creds) and CANARY not in str(creds) and CANARY not in f"{creds!r}"
    assert "access_token" in repr(creds)


@pytest.mark.parametrize(
    ("name", "config", "creds"),
    [
        (
            "google_ads",
            {"customer_id": "1234567890", "user_list_id": "1", "base_url": "http://10.0.0.1"},
            {"developer_token": CANARY, "access_token": CANARY},
        ),
        ("meta", {"audience_id": "1", "base_url": "http://10.0.0.1"}, {"access_token": CANARY}),
        ("mailchimp", {"list_id": "x", "base_url": "http://10.0.0.1"}, {"api_key": CANARY + "-us1"}),
        ("hubspot", {"list_id": "1", "base_url": "http://10.0.0.1"}, {"access_token": CANARY}),
        ("webhook", {"url": "http://10.0.0.1/h"}, {"secret": "whsec_" + CANARY}),
        (
            "customerio",
            {"segment_id": "1", "base_url": "http://10.0.0.1"},
            {"site_id": CANARY, "api_key": CANARY},
        ),
        (
            "tiktok",
            {"advertiser_id": "1", "audience_id": "2", "base_url": "http://10.0.0.1"},
            {"access_token": CANARY},
        ),
        ("linkedin", {"segment_id": "1", "base_url": "http://10.0.0.1"}, {"access_token": CANARY}),
    ],
)
async def test_failures_never_carry_credentials(
    name: str, config: dict[str, object], creds: dict[str, str]
) -> None:
    batch = SyncBatch("a", entered=[Member("p", {"email": ["a@b.com"], "user_id": ["u"]})])
    async with SafeSession(EMPTY) as client:
        with pytest.raises(PermanentError) as info:
            await REGISTRY[name].send(client, batch, Credentials(creds), config)
    assert CANARY not in str(info.value) and CANARY not in repr(info.value)
    assert info.value.__cause__ is None
    assert CANARY not in str(info.value.__context__)


async def test_run_bounded_keeps_order_and_stops_after_first_error() -> None:
    started: list[int] = []

    async def action(i: int) -> int:
        started.append(i)
        if i == 3:
            raise ValueError("boom")
        return i * 2

    assert await run_bounded([1, 2, 4], action, 2) == [2, 4, 8]
    started.clear()
    with pytest.raises(ValueError, match="boom"):
        await run_bounded(list(range(100)), action, 2)
    assert len(started) < 10
