"""ClickHouse HTTP sessions (`session_id`): each owns one engine handle, so `SET`, `USE` and
temporary tables persist between its requests; one request at a time, expiring after
`session_timeout` seconds of idleness.

A request finds its session busy when the previous one is still finishing (its last bytes can reach
the client before the server has given the session back), so it waits up to SESSION_WAIT_S before
answering SESSION_IS_LOCKED.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from clickhouse.server_engine import Handle
from clickhouse.server_errors import error

MAX_SESSIONS = 1000
SESSION_WAIT_S = 5.0


@dataclass
class Session:
    handle: Handle | None  # None until the request that started it has opened one
    timeout_s: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expires_at: float = 0.0


class Sessions:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def claim(self, session_id: str, timeout_s: float, check: bool) -> Session:
        """The session, held by the caller; a new one has no handle yet (the caller opens it)."""
        session = self._sessions.get(session_id)
        if session is None:
            if check:
                raise error("SESSION_NOT_FOUND", f"Session {session_id} not found")
            if len(self._sessions) >= MAX_SESSIONS:
                raise error("BAD_ARGUMENTS", f"Too many open sessions ({MAX_SESSIONS})")
            session = self._sessions[session_id] = Session(None, timeout_s)
        try:
            await asyncio.wait_for(session.lock.acquire(), SESSION_WAIT_S)
        except TimeoutError:
            raise error(
                "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client"
            ) from None
        session.timeout_s = timeout_s
        return session

    def abandon(self, session_id: str) -> None:
        """Forget a session whose handle could not be opened."""
        session = self._sessions.pop(session_id, None)
        if session is not None and session.lock.locked():
            session.lock.release()

    def give_back(self, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.expires_at = time.monotonic() + session.timeout_s
            session.lock.release()

    def expired(self, now: float | None = None) -> list[Handle]:
        """Remove and return the handles of idle sessions past their timeout."""
        now = time.monotonic() if now is None else now
        gone = [sid for sid, s in self._sessions.items() if not s.lock.locked() and s.expires_at <= now]
        handles = [self._sessions.pop(sid).handle for sid in gone]
        return [h for h in handles if h is not None]

    def drain(self) -> list[Handle]:
        handles = [s.handle for s in self._sessions.values() if s.handle is not None]
        self._sessions.clear()
        return handles
