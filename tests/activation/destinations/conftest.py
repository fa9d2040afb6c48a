"""Fixtures for destination tests: a SafeSession that may reach 127.0.0.1 only, and the fake platforms."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from activation.net import AllowList, SafeSession, parse_allow_list
from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.meta import FakeMeta
from tests.fakes.webhook import FakeWebhookReceiver


@pytest.fixture
def allow() -> AllowList:
    return parse_allow_list("127.0.0.1")


@pytest.fixture
async def session(allow: AllowList) -> AsyncIterator[SafeSession]:
    async with SafeSession(allow, timeout_s=2.0) as client:
        yield client


@pytest.fixture
async def google() -> AsyncIterator[FakeGoogleAds]:
    async with FakeGoogleAds() as fake:
        fake.add_user_list("1234567890", "987654")
        yield fake


@pytest.fixture
async def meta() -> AsyncIterator[FakeMeta]:
    async with FakeMeta() as fake:
        fake.add_audience("23850000000001")
        yield fake


@pytest.fixture
async def mailchimp() -> AsyncIterator[FakeMailchimp]:
    async with FakeMailchimp() as fake:
        fake.add_list("a1b2c3")
        yield fake


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot() as fake:
        fake.add_list("42")
        yield fake


@pytest.fixture
async def receiver() -> AsyncIterator[FakeWebhookReceiver]:
    async with FakeWebhookReceiver() as fake:
        yield fake
