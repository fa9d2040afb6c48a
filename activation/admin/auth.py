"""Admin bearer tokens: hashed at rest, scoped, revocable.

A token is shown once when created; only its SHA-256 is stored. Scopes: `admin` (everything),
`read` (GET on the admin API), `profiles:read` (the Profile API). Each process caches the table:
older than CACHE_S it is refreshed in the background while requests go on with the cached copy (no
request waits on ClickHouse for it), so a revocation reaches every process within a few seconds;
older than STALE_MAX_S (ClickHouse unreachable) requests wait for a reload. A token not in the cache
(created in another process a moment ago, or made up) reloads at most every UNKNOWN_RELOAD_S, and
concurrent reloads share one query, so a flood of invented tokens costs ClickHouse nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request

from activation.admin.errors import ApiError
from activation.db import Database

SCOPES = ("admin", "read", "profiles:read")
CACHE_S = 2.0
STALE_MAX_S = 30.0
UNKNOWN_RELOAD_S = 0.5
log = logging.getLogger(__name__)
_COLUMNS = ["id", "name", "token_hash", "scopes", "revoked", "created_at", "version"]


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    scopes: tuple[str, ...]
    revoked: bool

    def grants(self, scope: str) -> bool:
        if self.revoked:
            return False
        return "admin" in self.scopes or scope in self.scopes or (scope == "read" and "admin" in self.scopes)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "mgp_" + secrets.token_urlsafe(32)


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._by_hash: dict[str, Token] = {}
        self._loaded_at = -STALE_MAX_S  # monotonic time of the last load; never loaded
        self._loading: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None

    async def _load(self) -> None:
        """Reload the table; callers at the same time share one query."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.create_task(self._query())
        await asyncio.shield(self._loading)

    async def _query(self) -> None:
        rows = await self.db.rows("SELECT id, name, token_hash, scopes, revoked FROM tokens FINAL")
        self._by_hash = {str(h): Token(str(i), str(n), tuple(s), bool(r)) for i, n, h, s, r in rows}
        self._loaded_at = time.monotonic()

    def _refresh_in_background(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            await self._load()
        except Exception:  # the cached copy serves on; requests wait only past STALE_MAX_S
            log.warning("refreshing the admin tokens failed", exc_info=True)

    async def authenticate(self, secret: str) -> Token | None:
        digest = hash_token(secret)
        age = time.monotonic() - self._loaded_at
        if age > STALE_MAX_S:
            await self._load()
        elif age > CACHE_S:
            self._refresh_in_background()
        if digest not in self._by_hash and time.monotonic() - self._loaded_at > UNKNOWN_RELOAD_S:
            await self._load()
        for known, token in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return token
        return None

    async def save(self, id_: str, name: str, digest: str, scopes: list[str], revoked: bool = False) -> None:
        now = datetime.now(UTC)
        row = [id_, name, digest, scopes, int(revoked), now, time.time_ns()]
        await self.db.insert("tokens", [row], _COLUMNS)
        self._loaded_at = -STALE_MAX_S  # this process sees its own change at once

    async def create(self, name: str, scopes: list[str]) -> tuple[str, str]:
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise ApiError(
                400, "invalid_scopes", f"scopes must be some of {list(SCOPES)}", {"scopes": "invalid"}
            )
        secret, id_ = new_secret(), "tok_" + uuid.uuid4().hex[:20]
        await self.save(id_, name, hash_token(secret), scopes)
        return id_, secret

    async def bootstrap(self, configured: str) -> str | None:
        """Make sure an admin token exists; return a generated secret to print once, else None."""
        if configured:
            await self._load()
            if hash_token(configured) not in self._by_hash:
                await self.save(
                    "tok_bootstrap", "bootstrap (MAGPIE_ADMIN_TOKEN)", hash_token(configured), ["admin"]
                )
            return None
        count = await self.db.rows("SELECT count() FROM tokens FINAL WHERE revoked = 0")
        if count[0][0]:
            return None
        secret = new_secret()
        await self.save("tok_bootstrap", "bootstrap (generated)", hash_token(secret), ["admin"])
        return secret

    async def revoke(self, token_id: str) -> bool:
        rows = await self.db.rows(
            "SELECT name, token_hash, scopes FROM tokens FINAL WHERE id = {i:String}", {"i": token_id}
        )
        if not rows:
            return False
        name, digest, scopes = rows[0]
        await self.save(token_id, str(name), str(digest), list(scopes), revoked=True)
        return True

    async def list(self) -> list[dict[str, object]]:
        rows = await self.db.dicts(
            "SELECT id, name, scopes, revoked, created_at FROM tokens FINAL ORDER BY id"
        )
        return [{**r, "revoked": bool(r["revoked"])} for r in rows]

    async def require(self, request: Request, scope: str) -> Token:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise ApiError(401, "unauthorized", "a bearer token is required")
        token = await self.authenticate(header[7:].strip())
        if token is None or token.revoked:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        if not token.grants(scope):
            raise ApiError(403, "forbidden", f"this token lacks the {scope!r} scope")
        return token
