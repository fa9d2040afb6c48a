"""One HTTP edge for CRM pulls: bearer auth with one token refresh per run, throttling and retries.

Each platform says what a response means (`Classify`): fine, throttled (wait this long), over its
daily allowance (stop the run; the next scheduled pull resumes from the saved cursor), auth expired,
retryable or permanent. Waits honour what the platform signals and are bounded; responses ≥ 400 are
read through `RedactingClient`, so nothing a platform echoes can carry a credential into a message.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from activation.destinations.base import (
    AuthExpiredError,
    Credentials,
    DestinationError,
    PermanentError,
    RetryableError,
)
from activation.destinations.http import call
from activation.net import HttpClient, HttpResponse
from activation.sync.redact import RedactingClient, Redactor

Sleep = Callable[[float], Awaitable[None]]
Refresh = Callable[[HttpClient, Credentials], Awaitable[Credentials]]
OnRefresh = Callable[[Credentials], Awaitable[None]]


class Throttled(DestinationError):
    """Too many requests for now: wait `wait_s` and try again."""

    def __init__(self, reason: str, wait_s: float) -> None:
        super().__init__(reason)
        self.wait_s = wait_s


class LimitReached(DestinationError):
    """The platform's daily (or configured share of its) API allowance is spent: stop this run."""


Classify = Callable[[HttpResponse], None]
"""Raises Throttled, LimitReached, AuthExpiredError, RetryableError or PermanentError for a response
that is not a success; returns for one that is."""


@dataclass(frozen=True)
class Backoff:
    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0

    def delay_s(self, attempt: int, floor_s: float | None) -> float:
        backoff = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1)) * (
            0.5 + random.random() / 2
        )
        return float(min(self.max_delay_s, max(floor_s or 0.0, backoff)))


class CrmClient:
    """Holds the run's credentials (refreshed at most once) and sends requests through `classify`."""

    def __init__(
        self,
        session: HttpClient,
        credentials: Credentials,
        classify: Classify,
        refresh: Refresh,
        on_refresh: OnRefresh,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.credentials = credentials
        self.session = RedactingClient(session, lambda: self.credentials.values())
        self.classify, self.refresh, self.on_refresh = classify, refresh, on_refresh
        self.sleep, self.backoff = sleep, backoff
        self.refreshes = 0
        self.waited_s: list[float] = []
        self._next_at = 0.0

    @property
    def redactor(self) -> Redactor:
        return self.session.redactor()

    async def ensure_token(self) -> None:
        if not self.credentials.get("access_token"):
            await self._refresh()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        min_interval_s: float = 0.0,
    ) -> HttpResponse:
        attempt = 0
        while True:
            attempt += 1
            await self._pace(min_interval_s)
            try:
                return await self._once(method, url, params, body, headers)
            except AuthExpiredError as exc:
                if self.refreshes:
                    raise PermanentError(f"{exc.reason}; still rejected after a token refresh") from None
                await self._refresh()
                attempt -= 1
            except (Throttled, RetryableError) as exc:
                if attempt >= self.backoff.max_attempts:
                    raise RetryableError(f"gave up after {attempt} attempts: {exc.reason}") from None
                floor = exc.wait_s if isinstance(exc, Throttled) else exc.retry_after_s
                delay = self.backoff.delay_s(attempt, floor)
                self.waited_s.append(delay)
                await self.sleep(delay)

    async def _pace(self, min_interval_s: float) -> None:
        """Client-side spacing for calls a platform limits per second without telling (HubSpot search)."""
        if min_interval_s <= 0:
            return
        wait = self._next_at - time.monotonic()
        if wait > 0:
            await self.sleep(wait)
        self._next_at = time.monotonic() + min_interval_s

    async def _once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> HttpResponse:
        token = self.credentials.require("access_token")
        sent = {"authorization": f"Bearer {token}", "accept": "application/json", **(headers or {})}
        if body is not None and "content-type" not in sent:
            sent["content-type"] = "application/json"
        response = await call(self.session, method, url, headers=sent, params=params, body=body)
        self.classify(response)
        return response

    async def _refresh(self) -> None:
        self.credentials = await self.refresh(self.session, self.credentials)
        self.refreshes += 1
        await self.on_refresh(self.credentials)
