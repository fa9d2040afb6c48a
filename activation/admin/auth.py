"""Admin bearer tokens: hashed at rest, scoped, revocable.

A token is shown once when created; only its SHA-256 is stored. Scopes: `admin` (everything),
`read` (GET on the admin API), `profiles:read` (the Profile API). A cache of the table is
refreshed every few seconds, so a revocation reaches every process quickly.
"""

from __future__ import annotations

import hashlib
import hmac
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
        self._loaded_at = 0.0

    async def _load(self) -> None:
        rows = await self.db.rows("SELECT id, name, token_hash, scopes, revoked FROM tokens FINAL")
        self._by_hash = {str(h): Token(str(i), str(n), tuple(s), bool(r)) for i, n, h, s, r in rows}
        self._loaded_at = time.monotonic()

    async def authenticate(self, secret: str) -> Token | None:
        digest = hash_token(secret)
        if time.monotonic() - self._loaded_at > CACHE_S or digest not in self._by_hash:
            await self._load()
        for known, token in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return token
        return None

    async def save(self, id_: str, name: str, digest: str, scopes: list[str], revoked: bool = False) -> None:
        now = datetime.now(UTC)
        row = [id_, name, digest, scopes, int(revoked), now, time.time_ns()]
        await self.db.insert("tokens", [row], _COLUMNS)
        self._loaded_at = 0.0

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
