# ruff: noqa: F811  (the sync fixtures are imported by name and then requested as parameters)
"""Consent: default-deny and default-allow destinations, the profile's latest preferences (what the
Profile API shows under "consent"), and the checks on consent settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from activation.admin.errors import ApiError
from activation.admin.sources import validate
from activation.destinations import Credentials
from activation.privacy.consent import consent_default, latest_consent
from activation.profiles_api.reads import profile_document
from activation.sync.engine import sync_destination
from activation.sync.validation import check_type_rules
from tests.activation.sync.conftest import (  # noqa: F401
    Fakes,
    World,
    ctx,
    fakes,
    sleeps,
    world,
)
from tests.activation.sync.test_engine import held


def members(world: World, numbers: range) -> tuple[str, str]:
    world.people(numbers)
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(n) for n in numbers], "entered")
    return audience_id, key


async def test_default_deny_without_a_category_sends_only_people_with_consent_recorded(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    audience_id, key = members(world, range(1, 4))
    world.consent(1, {"analytics": True})
    config, credentials = fakes.setups()["webhook"]
    deny = await world.destination("webhook", ({**config, "consent_default": "deny"}, credentials))
    await sync_destination(ctx, deny, audience_id)
    assert held(fakes, world, "webhook", key) == {1}


async def test_default_allow_with_a_category_sends_all_but_explicit_refusals(
    ctx: dict[str, Any], world: World, fakes: Fakes
) -> None:
    audience_id, key = members(world, range(1, 5))
    world.consent(1, {"marketing": True})
    world.consent(2, {"marketing": False})
    world.consent(3, {"analytics": False})  # says nothing about marketing
    config, credentials = fakes.setups()["webhook"]
    allow = await world.destination(
        "webhook", ({**config, "consent_default": "allow"}, credentials), consent_category="marketing"
    )
    await sync_destination(ctx, allow, audience_id)
    assert held(fakes, world, "webhook", key) == {1, 3, 4}
    world.consent(4, {"marketing": False})  # withdrawal: removed at the next sync
    result = await sync_destination(ctx, allow, audience_id)
    assert (result["added"], result["removed"]) == (0, 1)
    assert held(fakes, world, "webhook", key) == {1, 3}


def test_the_profile_keeps_its_latest_preferences(ch: Client, world: World) -> None:
    world.people([1])
    pid = world.pid(1)
    assert latest_consent(ch, pid) is None
    world.consent(1, {"marketing": True, "analytics": True})
    world.consent(1, {"marketing": False, "analytics": True})
    latest = latest_consent(ch, pid)
    assert latest is not None and latest["categoryPreferences"] == {"marketing": False, "analytics": True}
    world.traits({pid: {"consent": {"marketing": True}}})  # a newer signal from a trait
    now = datetime.now(UTC)  # the profile complete, as the Profile API serves only complete profiles
    ch.insert("profiles", [[pid, now, now, 3, 1, 0.0, 0, 1, 0]],
              column_names=["profile_id", "first_seen", "last_seen", "event_count", "session_count",
                            "lifetime_revenue", "is_bot", "version", "deleted"])  # fmt: skip
    assert profile_document(ch, pid)["consent"]["categoryPreferences"] == {"marketing": True}


def test_consent_settings_are_checked() -> None:
    assert consent_default({}, "") == "allow" and consent_default({}, "marketing") == "deny"
    assert consent_default({"consent_default": "allow"}, "marketing") == "allow"
    with pytest.raises(ApiError) as bad:
        check_type_rules("webhook", {"url": "https://h.example/x", "consent_default": "maybe"}, Credentials())
    assert "config.consent_default" in bad.value.fields
    assert validate({"required_consent_category": "analytics"}, creating=False)
    with pytest.raises(ApiError) as bad_source:
        validate({"required_consent_category": "no spaces please"}, creating=False)
    assert "required_consent_category" in bad_source.value.fields
