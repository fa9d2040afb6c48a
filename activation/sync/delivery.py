"""Sending one batch to a destination: retries with exponential backoff and jitter that honour
`retry_after_s`, a bounded total time, a timeout around each send, and one token refresh per run.

`Delivery.send` returns the destination's `SendResult`, or raises `PermanentError` (dead-letter the
batch, skip it until replayed) or `RetriesExhausted` (dead-letter it; the next run tries again).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from activation.destinations import (
    AuthExpiredError,
    Credentials,
    Destination,
    PermanentError,
    RetryableError,
    SendResult,
    SupportsTokenRefresh,
    SyncBatch,
)
from activation.destinations.base import Config
from activation.net import HttpClient
from activation.sync.redact import RedactingClient, Redactor

Sleep = Callable[[float], Awaitable[None]]
OnRefresh = Callable[[Credentials], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_total_s: float = 300.0
    send_timeout_s: float = 600.0

    def delay_s(self, attempt: int, retry_after_s: float | None, rand: float) -> float:
        """Equal-jitter exponential backoff for `attempt` (1-based), never shorter than Retry-After."""
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return max(retry_after_s or 0.0, float(backoff) * (0.5 + rand / 2))


class RetriesExhausted(Exception):
    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempts: {reason}")
        self.reason = f"gave up after {attempts} attempts: {reason}"


class Delivery:
    """Sends batches of one destination for one run; holds the (possibly refreshed) credentials."""

    def __init__(
        self,
        destination: Destination,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        *,
        policy: RetryPolicy,
        on_refresh: OnRefresh,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.destination, self.config = destination, config
        self.credentials = credentials
        self.session = RedactingClient(session, lambda: self.credentials.values())
        self.policy, self.on_refresh, self.sleep, self.rand = policy, on_refresh, sleep, rand
        self.refreshes = 0
        self._refresh_due = False
        self.delays_s: list[float] = []

    @property
    def redactor(self) -> Redactor:
        """Masks the current credentials (refreshed ones included) and their derived forms."""
        return self.session.redactor()

    async def send(self, batch: SyncBatch) -> SendResult:
        return await self.attempt(lambda: self._send_once(batch))

    async def attempt(self, once: Callable[[], Awaitable[T]]) -> T:
        """`once()` under the retry rules of `send` (privacy erasure calls use it too)."""
        started, attempt = time.monotonic(), 0
        while True:
            attempt += 1
            try:
                if self._refresh_due:
                    await self._refresh()
                return await once()
            except AuthExpiredError as exc:
                self._expect_refresh(exc)
                attempt -= 1
            except RetryableError as exc:
                delay = self.policy.delay_s(attempt, exc.retry_after_s, self.rand())
                spent = time.monotonic() - started
                if attempt >= self.policy.max_attempts or spent + delay > self.policy.max_total_s:
                    raise RetriesExhausted(exc.reason, attempt) from None
                self.delays_s.append(delay)
                await self.sleep(delay)

    async def _send_once(self, batch: SyncBatch) -> SendResult:
        try:
            async with asyncio.timeout(self.policy.send_timeout_s):
                return await self.destination.send(self.session, batch, self.credentials, self.config)
        except TimeoutError:
            raise RetryableError(f"send took longer than {self.policy.send_timeout_s:g}s") from None

    def _expect_refresh(self, exc: AuthExpiredError) -> None:
        """Exactly one refresh per run; a second expiry (or no refresh support) is permanent."""
        if not isinstance(self.destination, SupportsTokenRefresh):
            raise PermanentError(f"{exc.reason}; credentials rejected and cannot be refreshed") from None
        if self.refreshes:
            raise PermanentError(f"{exc.reason}; still rejected after a token refresh") from None
        self._refresh_due = True

    async def _refresh(self) -> None:
        assert isinstance(self.destination, SupportsTokenRefresh)
        self.credentials = await self.destination.refresh_token(self.session, self.credentials, self.config)
        self.refreshes += 1
        self._refresh_due = False
        await self.on_refresh(self.credentials)
