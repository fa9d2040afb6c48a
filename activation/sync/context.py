"""What the destinations and syncs API needs, passed in explicitly by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from activation.admin.auth import TokenStore
from activation.db import Database
from activation.net import AllowList, Resolve, system_resolve
from activation.services import SessionFactory, default_session
from activation.sync.crypto import CredentialCipher
from activation.sync.store import DestinationStore

Enqueue = Callable[..., Awaitable[bool]]
"""`await enqueue(job_name, *args, job_id=...)` → False when a job with that id is already queued."""


@dataclass
class SyncContext:
    db: Database
    tokens: TokenStore
    secret_key: str = field(repr=False)
    allow: AllowList
    enqueue: Enqueue
    resolve: Resolve = system_resolve
    http: SessionFactory = default_session
    request_timeout_s: float = 15.0
    redis: Any = None  # redis.asyncio.Redis: destinations' freshness (sync/freshness.py)

    def store(self) -> DestinationStore:
        return DestinationStore(self.db, CredentialCipher(self.secret_key))
