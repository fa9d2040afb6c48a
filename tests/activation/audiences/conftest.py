"""Fixtures for the audience tests: the shared embedded ClickHouse with the tables audiences need."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from tests.activation.audiences.audience_rows import namespace


@pytest.fixture(scope="session")
def db(ch: Client) -> Client:
    """`ch`: the migrated database (0001 events, 0002 identity, 0003 audiences)."""
    return ch


@pytest.fixture
def ns() -> str:
    return namespace()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)
