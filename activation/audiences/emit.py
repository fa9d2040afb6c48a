"""`Audience Entered` / `Audience Exited` into the event stream, for audiences with `emit_events`.

The events go through the public tracking API (`POST /v1/batch`) like any SDK's, with the write
key of a system source, so they are durable, enriched-free and deduplicated like every other
event: their messageIds are deterministic, so re-emitting a run stores nothing twice.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import aiohttp

from activation.admin.sources import SourceStore
from activation.audiences import store
from activation.audiences.computation import compute_audience
from activation.audiences.signals import run_events
from activation.db import Database
from activation.services import of as services_of

SYSTEM_SOURCE = "Magpie audiences"
PAGE = 500


async def run_audience(ctx: dict[str, Any], audience_id: str) -> dict[str, Any]:
    """Job: compute the audience, then emit its membership events when it asks for them."""
    result = await compute_audience(ctx, audience_id)
    if result.get("status") == "computed":
        result["emitted"] = await emit_audience_events(ctx, audience_id, result["computed_at"])
    return result


async def emit_audience_events(ctx: dict[str, Any], audience_id: str, computed_at: str) -> int:
    services = services_of(ctx)
    audience = await asyncio.to_thread(store.get, services.ch, audience_id)
    if audience is None or not audience.emit_events:
        return 0
    db: Database = services.db
    write_key = str((await SourceStore(db).ensure_named(SYSTEM_SOURCE))["write_key"])
    at, sent = datetime.fromisoformat(computed_at), 0
    after: str | None = ""
    auth = aiohttp.BasicAuth(write_key, "")
    async with aiohttp.ClientSession(services.tracking_url, auth=auth, raise_for_status=True) as session:
        while after is not None:
            events, after = await asyncio.to_thread(run_events, services.ch, audience, at, after or "", PAGE)
            if events:
                async with session.post("/v1/batch", json={"batch": events}) as response:
                    await response.read()
                sent += len(events)
    return sent
