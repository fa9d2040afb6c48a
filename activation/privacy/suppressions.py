"""Suppressed identifiers: the owner of the `suppressions` table and its Redis mirror.

An identifier is never stored in the clear: it is kept as a keyed hash, hex HMAC-SHA256 over
`"type:normalised value"` with a key derived from `MAGPIE_SECRET_KEY`, so the table and the Redis set
hold no plain personal data (the forget mark below). The collector computes the same hash for each
identifier an event carries (collector/suppressions.py mirrors `identifier_hash`; a test keeps the
two in agreement) and drops the event when any is in its in-memory set.

Writes go to ClickHouse first (the truth), then to the Redis set SET_KEY, then a notice on
CHANGES_CHANNEL (`+<hash>` / `-<hash>`) so every collector process applies the change at once; a
collector that missed notices re-reads the set on (re)subscribe and periodically.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from activation.identity.identifiers import Identifier, normalise
from activation.services import Services

TABLE = "suppressions"
SET_KEY = "magpie:suppressions"
CHANGES_CHANNEL = "magpie:suppressions:changed"
KEY_LABEL = b"magpie suppression hash v1"
HOLDS_NO_PERSONAL_DATA = {TABLE: "identifiers kept only as keyed hashes (HMAC-SHA256), never in the clear"}
_COLUMNS = ("hash", "identifier_type", "request_id", "deleted", "created_at", "version")
_CURRENT = (
    "SELECT hash, identifier_type, created_at FROM suppressions FINAL WHERE deleted = 0"
    " AND hash > {after:String} ORDER BY hash LIMIT {n:UInt32}"
)
_PRESENT = "SELECT hash FROM suppressions FINAL WHERE deleted = 0 AND hash IN {hashes:Array(String)}"


def hash_key(secret_key: str) -> bytes:
    """The HMAC key of suppression hashes, derived from (never equal to) the secret key."""
    return hmac.digest(secret_key.encode("utf-8"), KEY_LABEL, "sha256")


def identifier_hash(secret_key: str, identifier: Identifier) -> str:
    """Hex HMAC-SHA256 of `type:normalised value` (the value as the identity graph stores it)."""
    value = normalise(identifier.type, identifier.value) or identifier.value.strip()
    message = f"{identifier.type}:{value}".encode()
    return hmac.digest(hash_key(secret_key), message, "sha256").hex()


def _hashes(services: Services, identifiers: Iterable[Identifier]) -> dict[str, str]:
    """hash → identifier type, for every usable identifier."""
    out: dict[str, str] = {}
    for identifier in identifiers:
        if identifier.value.strip():
            out[identifier_hash(services.secret_key, identifier)] = identifier.type
    return out


async def _present(services: Services, hashes: Iterable[str]) -> set[str]:
    rows = await services.db.rows(_PRESENT, {"hashes": sorted(hashes)})
    return {str(r[0]) for r in rows}


async def suppress(services: Services, identifiers: Iterable[Identifier], request_id: str = "") -> int:
    """Suppress each identifier (idempotent); returns how many were not suppressed before."""
    hashes = _hashes(services, identifiers)
    if not hashes:
        return 0
    fresh = {h: t for h, t in hashes.items() if h not in await _present(services, hashes)}
    if fresh:
        now, version = services.clock(), time.time_ns()
        rows = [[h, t, request_id, 0, now, version] for h, t in sorted(fresh.items())]
        await services.db.insert(TABLE, rows, _COLUMNS)
    await services.redis.sadd(SET_KEY, *hashes)
    await services.redis.publish(CHANGES_CHANNEL, " ".join("+" + h for h in hashes))
    return len(fresh)


async def unsuppress(services: Services, identifier: Identifier) -> bool:
    """Lift the suppression of one identifier; False when it was not suppressed."""
    digest = identifier_hash(services.secret_key, identifier)
    was = bool(await _present(services, [digest]))
    if was:
        row = [digest, identifier.type, "", 1, services.clock(), time.time_ns()]
        await services.db.insert(TABLE, [row], _COLUMNS)
    await services.redis.srem(SET_KEY, digest)
    await services.redis.publish(CHANGES_CHANNEL, "-" + digest)
    return was


async def is_suppressed(services: Services, identifier: Identifier) -> bool:
    return bool(await _present(services, [identifier_hash(services.secret_key, identifier)]))


async def list_suppressions(services: Services, after: str = "", limit: int = 100) -> list[dict[str, Any]]:
    """Current suppressions ordered by hash: {hash, type, created_at} (no plain values exist)."""
    rows = await services.db.rows(_CURRENT, {"after": after, "n": limit})
    return [{"hash": str(h), "type": str(t), "created_at": _iso(at)} for h, t, at in rows]


async def mirror(services: Services) -> int:
    """Rebuild the Redis set from ClickHouse (after a Redis loss); returns its size."""
    hashes: list[str] = []
    after = ""
    while page := await list_suppressions(services, after, 10_000):
        hashes += [p["hash"] for p in page]
        after = hashes[-1]
    await services.redis.delete(SET_KEY)
    if hashes:
        await services.redis.sadd(SET_KEY, *hashes)
    await services.redis.publish(CHANGES_CHANNEL, "*")
    return len(hashes)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)
