"""Sending one platform request's worth of events: retries with exponential backoff and jitter that
honour `retry_after_s`, bisection of a refused request to find the refused events, per-event
refusals and skips. Used by live delivery and by replays.

`send(events)` returns a Tally, or raises `Blocked` when the platform asks for a longer wait than a
job should sleep (or the attempts ran out): the caller keeps the events queued and comes back later,
so nothing is dead-lettered for being throttled.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from activation.connections.settings import ForwardSettings
from activation.destinations.base import (
    AuthExpiredError,
    Config,
    Credentials,
    PermanentError,
    RejectedError,
    RetryableError,
)
from activation.destinations.events import EventDestination, EventOutcome, OutboundEvent, RecordsRefused
from activation.destinations.events.base import request_key
from activation.net import HttpClient
from activation.sync.delivery import RetryPolicy, Sleep


@dataclass
class Tally:
    delivered: list[OutboundEvent] = field(default_factory=list)
    refused: list[tuple[OutboundEvent, str]] = field(default_factory=list)
    skipped: list[OutboundEvent] = field(default_factory=list)
    failed: list[OutboundEvent] = field(default_factory=list)  # events of attempts that failed
    delays_s: list[float] = field(default_factory=list)


class Blocked(Exception):
    def __init__(self, reason: str, wait_s: float) -> None:
        super().__init__(reason)
        self.reason, self.wait_s = reason, wait_s


@dataclass
class Sender:
    client: EventDestination
    session: HttpClient
    credentials: Credentials
    config: Config
    policy: RetryPolicy
    settings: ForwardSettings
    sleep: Sleep = asyncio.sleep
    tag: str = ""  # distinguishes a replay's requests from live ones (webhook-id)
    rand: Callable[[], float] = random.random

    async def send(self, events: Sequence[OutboundEvent]) -> Tally:
        tally = Tally()
        self._splits = self.settings.split_sends
        await self._send(list(events), tally)
        return tally

    async def _send(self, events: list[OutboundEvent], tally: Tally) -> None:
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                outcome = await self._once(events)
            except RecordsRefused as exc:
                refused = dict(exc.refused)
                tally.refused += [(events[i], reason) for i, reason in exc.refused]
                rest = [e for i, e in enumerate(events) if i not in refused]
                if rest and len(rest) < len(events):
                    await self._send(rest, tally)
                return
            except RejectedError as exc:
                await self._bisect(events, exc.reason, tally)
                return
            except RetryableError as exc:
                tally.failed += events
                await self._wait(attempt, started, exc, tally)
            except (PermanentError, AuthExpiredError) as exc:
                tally.refused += [(e, exc.reason) for e in events]
                return
            else:
                _apply(events, outcome, tally)
                return

    async def _once(self, events: list[OutboundEvent]) -> EventOutcome:
        key = request_key(events, self.tag)
        try:
            async with asyncio.timeout(self.policy.send_timeout_s):
                return await self.client.send_events(self.session, events, self.credentials, self.config, key)
        except TimeoutError:
            raise RetryableError(f"request took longer than {self.policy.send_timeout_s:g}s") from None

    async def _bisect(self, events: list[OutboundEvent], reason: str, tally: Tally) -> None:
        if len(events) == 1 or self._splits <= 0:
            tally.refused += [(e, reason) for e in events]
            return
        self._splits -= 1
        half = len(events) // 2
        await self._send(events[:half], tally)
        await self._send(events[half:], tally)

    async def _wait(self, attempt: int, started: float, exc: RetryableError, tally: Tally) -> None:
        delay = self.policy.delay_s(attempt, exc.retry_after_s, self.rand())
        spent = time.monotonic() - started
        too_long = delay > self.settings.in_job_retry_s or spent + delay > self.policy.max_total_s
        if attempt >= self.policy.max_attempts or too_long:
            raise Blocked(f"{exc.reason} (attempt {attempt})", delay)
        tally.delays_s.append(delay)
        await self.sleep(delay)


def _apply(events: list[OutboundEvent], outcome: EventOutcome, tally: Tally) -> None:
    refused = dict(outcome.rejected)
    skipped = {i for i, _ in outcome.skipped}
    tally.refused += [(events[i], reason) for i, reason in outcome.rejected if 0 <= i < len(events)]
    tally.skipped += [e for i, e in enumerate(events) if i in skipped and i not in refused]
    tally.delivered += [e for i, e in enumerate(events) if i not in refused and i not in skipped]
