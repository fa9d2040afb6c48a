"""The one typed services object: what routes and jobs use, opened once at start-up by the composition
root (magpie/server.py) and passed down — to routes as an argument, to jobs as `ctx["services"]`.

Jobs stay plain `async def job(ctx, ...)` functions (arq's shape, so another queue could run them);
their first line is `services = of(ctx)`. Tests build a Services with the fakes they need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from clickhouse_connect.driver.client import Client

from activation.db import Database
from activation.net import AllowList, SafeSession, parse_allow_list, safe_session
from activation.sync.settings import SyncSettings

Enqueue = Callable[..., Awaitable[bool]]
"""`await enqueue(job_name, *args, job_id=..., defer_s=...)` → False when that job id is already queued."""
Sleep = Callable[[float], Awaitable[None]]
SessionFactory = Callable[[AllowList, float], SafeSession]


class ProfilesChanged(Protocol):
    """`await profiles_changed(profile_ids, identifiers)`: those profiles (and identifiers, as
    identity.identifiers.Identifier) changed; `everything=True`: every profile may have (a full
    restitch). Refresh what is kept from them. The composition root wires the Profile API's stored
    documents (profiles_api.documents.DocumentWriter); identity, audiences and CRM sources call it
    without importing the layer above them."""

    async def __call__(
        self, profile_ids: Collection[str], identifiers: Collection[Any] = (), everything: bool = False
    ) -> None: ...


class Counters(Protocol):
    def inc(self, name: str, source: str = "", amount: float = 1, **labels: str) -> None: ...


class NoCounters:
    def inc(self, name: str, source: str = "", amount: float = 1, **labels: str) -> None:
        return None


async def _nothing_kept(
    profile_ids: Collection[str], identifiers: Collection[Any] = (), everything: bool = False
) -> None:
    return None


async def _not_wired(name: str, *args: Any, **kwargs: Any) -> bool:
    raise RuntimeError(f"no job queue wired: cannot enqueue {name}")


def utc_now() -> datetime:
    return datetime.now(UTC)


def default_session(allow: AllowList, timeout_s: float) -> SafeSession:
    return safe_session(allow, timeout_s=timeout_s)


@dataclass(frozen=True)
class Services:
    ch: Client  # synchronous clickhouse-connect HTTP client (no session: safe across threads)
    redis: Any  # redis.asyncio.Redis
    secret_key: str = field(default="", repr=False)  # encrypts destination credentials at rest
    allow: AllowList = field(default_factory=lambda: parse_allow_list(""))
    enqueue: Enqueue = _not_wired
    metrics: Counters = field(default_factory=NoCounters)
    tracking_url: str = ""  # where system events (Audience Entered/Exited) are sent
    clock: Callable[[], datetime] = utc_now
    sleep: Sleep = asyncio.sleep
    http: SessionFactory = default_session
    sync: SyncSettings = field(default_factory=SyncSettings)
    profiles_changed: ProfilesChanged = _nothing_kept

    @property
    def db(self) -> Database:
        return Database(self.ch)


def of(ctx: dict[str, Any]) -> Services:
    """The services a job runs with."""
    services = ctx["services"]
    assert isinstance(services, Services), "jobs need ctx['services'] (activation.services.Services)"
    return services
