"""Backoff arithmetic and the retry / refresh loop, with a scripted destination (no network)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from activation.destinations import (
    AuthExpiredError,
    Credentials,
    PermanentError,
    RetryableError,
    SendResult,
    SyncBatch,
)
from activation.destinations.base import Config
from activation.net import HttpClient
from activation.sync.delivery import Delivery, RetriesExhausted, RetryPolicy


class Scripted:
    """Raises the scripted errors in order, then succeeds; optionally refreshes tokens."""

    type = "scripted"

    def __init__(self, script: Sequence[Exception]) -> None:
        self.script = list(script)
        self.tokens_seen: list[str] = []

    def validate_config(self, config: Config) -> dict[str, str]:
        return {}

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {}

    def endpoint_urls(self, config: Config) -> list[str]:
        return []

    def batch_limit(self, config: Config) -> int:
        return 10

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        self.tokens_seen.append(credentials["token"])
        if self.script:
            raise self.script.pop(0)
        return SendResult(added=len(batch.entered))


class Refreshing(Scripted):
    async def refresh_token(
        self, session: HttpClient, credentials: Credentials, config: Config
    ) -> Credentials:
        return credentials.updated({"token": "fresh"})


async def _deliver(destination: Scripted, policy: RetryPolicy | None = None) -> tuple[Delivery, list[Any]]:
    saved: list[Any] = []

    async def persist(credentials: Credentials) -> None:
        saved.append(dict(credentials))

    async def no_sleep(delay_s: float) -> None:
        return None

    delivery = Delivery(
        destination, None, Credentials({"token": "old"}), {},  # type: ignore[arg-type]
        policy=policy or RetryPolicy(), on_refresh=persist, sleep=no_sleep, rand=lambda: 1.0,
    )  # fmt: skip
    return delivery, saved


def test_backoff_doubles_with_jitter_caps_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    assert [policy.delay_s(n, None, 1.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay_s(3, None, 0.0) == 2.0
    assert policy.delay_s(1, 30.0, 0.5) == 30.0


async def test_retryable_errors_back_off_then_succeed() -> None:
    destination = Scripted([RetryableError("429", 5.0), RetryableError("500")])
    delivery, _ = await _deliver(destination)
    result = await delivery.send(SyncBatch("a", entered=()))
    assert result == SendResult() and delivery.delays_s == [5.0, 2.0]


async def test_retries_are_bounded_by_attempts_and_total_time() -> None:
    delivery, _ = await _deliver(Scripted([RetryableError("500")] * 10), RetryPolicy(max_attempts=3))
    with pytest.raises(RetriesExhausted, match="gave up after 3 attempts: 500"):
        await delivery.send(SyncBatch("a"))
    delivery, _ = await _deliver(Scripted([RetryableError("429", 3600.0)]), RetryPolicy(max_total_s=60))
    with pytest.raises(RetriesExhausted, match="after 1 attempts"):
        await delivery.send(SyncBatch("a"))


async def test_auth_expiry_refreshes_exactly_once_and_persists() -> None:
    destination = Refreshing([AuthExpiredError("401")])
    delivery, saved = await _deliver(destination)
    await delivery.send(SyncBatch("a"))
    assert destination.tokens_seen == ["old", "fresh"] and saved == [{"token": "fresh"}]
    destination.script = [AuthExpiredError("401 again")]
    with pytest.raises(PermanentError, match="still rejected after a token refresh"):
        await delivery.send(SyncBatch("a"))


async def test_auth_expiry_without_refresh_support_is_permanent() -> None:
    delivery, saved = await _deliver(Scripted([AuthExpiredError("401")]))
    with pytest.raises(PermanentError, match="cannot be refreshed"):
        await delivery.send(SyncBatch("a"))
    assert saved == []
