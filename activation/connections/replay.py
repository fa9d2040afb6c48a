"""Replays: re-send the stored events of a time window to an event destination (ClickHouse is the
log). The window is on the event's `timestamp`, `[from, to)`; events come from the sources connected
to the destination, through each connection's filter and mapping, narrowed by the replay's own
filter, with consent and suppression applied as for live events. Each stored messageId is sent once
per replay (duplicates stored by a retrying client are collapsed), in (timestamp, messageId) order,
so a person's events keep their order. Requests carry the replay id in their idempotency tag
(webhook-id); platforms deduplicating on insert ids (Mixpanel, Amplitude, HubSpot) ignore events
they already hold — a replay fills gaps there, it does not double counts.

Rows in `event_replays` are rewritten (higher version) as the replay progresses; a cancel request
sets a Redis flag the job checks between pages.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from activation.connections import letters
from activation.connections.routing import FanOut, Row, destinations, routes_of
from activation.connections.rules import EVENT_COLUMNS, matches, segment_event
from activation.connections.sender import Blocked, Sender
from activation.connections.settings import FORWARD, ForwardSettings
from activation.connections.store import ConnectionStore
from activation.db import Database
from activation.destinations.events import EVENT_REGISTRY, OutboundEvent
from activation.services import Services
from activation.services import of as services_of
from activation.sync.redact import RedactingClient

JOB = "replay_events"
PAGE = 1000
COLUMNS = (
    "id", "destination_id", "from_ts", "to_ts", "filter", "status", "total", "sent", "failed", "skipped",
    "error", "created_at", "updated_at", "version",
)  # fmt: skip
FINISHED = ("succeeded", "failed", "cancelled")
_SELECT = f"SELECT {', '.join(COLUMNS[:-1])} FROM event_replays FINAL WHERE id = {{id:String}}"
_WINDOW = (
    "FROM events WHERE source_id IN {sources:Array(String)}"
    " AND timestamp >= {from_ts:DateTime64(3, 'UTC')} AND timestamp < {to_ts:DateTime64(3, 'UTC')}"
)
_PAGE = f"""
SELECT {EVENT_COLUMNS} {_WINDOW}
  AND (timestamp, source_id, message_id) > ({{t:DateTime64(3, 'UTC')}}, {{s:String}}, {{m:String}})
ORDER BY timestamp, source_id, message_id LIMIT 1 BY source_id, message_id LIMIT {{n:UInt32}}
"""


def cancel_key(replay_id: str) -> str:
    return f"magpie:fwd:replay:cancel:{replay_id}"


@dataclass(frozen=True)
class Replay:
    id: str
    destination_id: str
    from_ts: datetime
    to_ts: datetime
    filter: dict[str, Any]
    status: str = "queued"
    total: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    error: str = ""
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    updated_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def public(self) -> dict[str, Any]:
        doc = {k: getattr(self, k) for k in COLUMNS[:-1]}
        for key in ("from_ts", "to_ts", "created_at", "updated_at"):
            doc[key] = _utc(doc[key]).isoformat()
        doc["from"], doc["to"] = doc.pop("from_ts"), doc.pop("to_ts")
        doc["done"] = self.sent + self.failed + self.skipped
        doc["error"] = self.error or None
        return doc


def new_id() -> str:
    return f"rpl_{time.time_ns():016x}{secrets.token_hex(4)}"


async def save(db: Database, replay: Replay) -> Replay:
    saved = replace(replay, updated_at=datetime.now(UTC))
    row = [getattr(saved, c) for c in COLUMNS[:-1]]
    row[COLUMNS.index("filter")] = orjson.dumps(saved.filter).decode()
    await db.insert("event_replays", [[*row, time.time_ns()]], COLUMNS)
    return saved


async def get(db: Database, replay_id: str) -> Replay | None:
    rows = await db.dicts(_SELECT, {"id": replay_id})
    if not rows:
        return None
    row = rows[0]
    return Replay(**{**row, "filter": orjson.loads(row["filter"] or "{}")})


async def count_window(db: Database, sources: list[str], from_ts: datetime, to_ts: datetime) -> int:
    sql = f"SELECT uniqExact(source_id, message_id) {_WINDOW}"
    rows = await db.rows(sql, {"sources": sources, "from_ts": from_ts, "to_ts": to_ts})
    return int(rows[0][0])


async def replay_events(ctx: dict[str, Any], replay_id: str) -> dict[str, Any]:
    """Job: run one replay to its end (or its cancel)."""
    return await run_replay(services_of(ctx), replay_id, FORWARD)


async def run_replay(services: Services, replay_id: str, settings: ForwardSettings) -> dict[str, Any]:
    replay = await get(services.db, replay_id)
    if replay is None or replay.status in FINISHED:
        return {"replay_id": replay_id, "status": "skipped"}
    replay = await save(services.db, replace(replay, status="running"))
    try:
        replay = await _walk(services, replay, settings)
    except Blocked as exc:
        replay = replace(replay, status="failed", error=f"destination kept refusing: {exc.reason}"[:500])
    return (await save(services.db, replay)).public()


async def _walk(services: Services, replay: Replay, settings: ForwardSettings) -> Replay:
    store = destinations(services)
    record = await store.get(replay.destination_id)
    if record is None or record.type not in EVENT_REGISTRY:
        return replace(replay, status="failed", error="destination no longer exists")
    routes = await routes_of(services, await ConnectionStore(services.db).of_destination(record.id))
    credentials = store.credentials(record)
    client = EVENT_REGISTRY[record.type]
    key: tuple[Any, str, str] = (replay.from_ts, "", "")
    async with services.http(services.allow, services.sync.request_timeout_s) as session:
        sender = Sender(
            client, RedactingClient(session, credentials.values), credentials, record.config,
            services.sync.retry, settings, services.sleep, tag=replay.id,
        )  # fmt: skip
        while True:
            if await services.redis.exists(cancel_key(replay.id)):
                return replace(replay, status="cancelled")
            rows = await _page(services, replay, sorted({r.source_id for r in routes}), key)
            if not rows:
                return replace(replay, status="succeeded")
            key = (rows[-1]["timestamp"], rows[-1]["source_id"], rows[-1]["message_id"])
            events = await _outbound(services, routes, replay, rows)
            replay = replace(replay, skipped=replay.skipped + len(rows) - len(events))
            replay = await _send(services, sender, client, record.id, record.config, events, replay)
            replay = await save(services.db, replay)


async def _page(
    services: Services, replay: Replay, sources: list[str], key: tuple[Any, str, str]
) -> list[Row]:
    params = {"sources": sources, "from_ts": replay.from_ts, "to_ts": replay.to_ts, "n": PAGE}
    return await services.db.dicts(_PAGE, {**params, "t": key[0], "s": key[1], "m": key[2]})


async def _outbound(services: Services, routes: Any, replay: Replay, rows: list[Row]) -> list[OutboundEvent]:
    wanted = [r for r in rows if matches(replay.filter, segment_event(r))]
    fan = FanOut(routes, live=False)
    await fan.add(services, wanted)
    return fan.out.get(replay.destination_id, [])


async def _send(
    services: Services, sender: Sender, client: Any, destination_id: str, config: Any,
    events: list[OutboundEvent], replay: Replay,
) -> Replay:  # fmt: skip
    while events:
        batch = events[: client.take(events, config)]
        tally = await sender.send(batch)
        await letters.add(services.db, destination_id, tally.refused)
        replay = replace(
            replay,
            sent=replay.sent + len(tally.delivered),
            failed=replay.failed + len(tally.refused),
            skipped=replay.skipped + len(tally.skipped),
        )
        events = events[len(batch) :]
    return replay


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
