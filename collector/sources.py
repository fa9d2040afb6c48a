"""Sources as the collector sees them: a cache of the `sources` table keyed by write key.

The whole table is re-read every REFRESH_S seconds (it is small), so disabled or rotated keys
stop working within that time on every collector; an unknown key triggers a direct lookup
(negatively cached briefly) so a source created a moment ago works at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from collector.store import EventStore, StoreUnavailable

log = logging.getLogger("magpie.sources")
REFRESH_S = 2.0
NEGATIVE_TTL_S = 2.0
_COLUMNS = "id, write_key, allowed_origins, ip_policy, rate_limit_per_s, retention_days, enabled"
_LATEST = f"SELECT {_COLUMNS} FROM (SELECT * FROM sources FINAL) WHERE deleted = 0"


@dataclass(frozen=True)
class Source:
    id: str
    write_key: str
    allowed_origins: tuple[str, ...] = ()
    ip_policy: str = "keep"
    rate_limit_per_s: int = 0
    retention_days: int = 0
    enabled: bool = True

    def allows_origin(self, origin: str) -> bool:
        return not self.allowed_origins or "*" in self.allowed_origins or origin in self.allowed_origins


def _source(row: tuple[object, ...]) -> Source:
    id_, key, origins, policy, rate, retention, enabled = row
    return Source(str(id_), str(key), tuple(origins), str(policy), int(rate), int(retention), bool(enabled))  # type: ignore[arg-type, call-overload]


class SourceCache:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.by_key: dict[str, Source] = {}
        self._missing: dict[str, float] = {}

    async def refresh(self) -> None:
        rows = await self.store.query(_LATEST)
        self.by_key = {s.write_key: s for s in map(_source, rows)}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except StoreUnavailable as exc:  # keep serving the last known sources
                log.warning("source refresh failed: %s", exc)

    async def lookup(self, write_key: str) -> Source | None:
        source = self.by_key.get(write_key)
        if source is not None:
            return source if source.enabled else None
        if not write_key:
            return None
        missed = self._missing.get(write_key)
        if missed is not None and time.monotonic() - missed < NEGATIVE_TTL_S:
            return None
        # StoreUnavailable propagates: an unknown key while ClickHouse is down is a 503, never a 401.
        rows = await self.store.query(_LATEST + " AND write_key = {k:String}", {"k": write_key})
        if not rows:
            if len(self._missing) > 10_000:
                self._missing.clear()
            self._missing[write_key] = time.monotonic()
            return None
        source = _source(rows[0])
        self.by_key[write_key] = source
        return source if source.enabled else None
