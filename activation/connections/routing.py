"""From stored event rows to outbound events per destination: the enabled connections (routes),
their filters and mappings, consent and suppression. One event reaches a destination at most once
even when several connections of the same source lead there (the first matching connection wins)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from activation.connections.gates import ConsentState, earlier_consent, suppressed
from activation.connections.rules import Route, mapped, matches, person, segment_event
from activation.connections.store import ConnectionRecord, ConnectionStore
from activation.destinations.events import EVENT_REGISTRY, OutboundEvent
from activation.services import Services
from activation.sync.crypto import CredentialCipher
from activation.sync.store import DestinationStore

Row = dict[str, Any]


def destinations(services: Services) -> DestinationStore:
    return DestinationStore(services.db, CredentialCipher(services.secret_key))


async def routes_of(services: Services, connections: Sequence[ConnectionRecord]) -> list[Route]:
    store, out = destinations(services), []
    records = {d: await store.get(d) for d in sorted({c.destination_id for c in connections})}
    for c in connections:
        record = records.get(c.destination_id)
        if record is None or not record.enabled or record.type not in EVENT_REGISTRY:
            continue
        route = Route(
            c.id, c.source_id, c.destination_id, record.type, c.filter, c.mapping,
            record.consent_category, c.created_at, max(c.updated_at, record.updated_at),
        )  # fmt: skip
        out.append(route)
    return out


# Bumped by every connection create/update/delete; the reader reloads its routes when it moves, so
# events stored right after a connection is created are not routed with a route list from before it
# (the route cache's TTL alone left a window of up to routes_ttl_s in which they were missed).
ROUTES_VERSION_KEY = "magpie:fwd:routes_version"


async def routes_changed(services: Services) -> None:
    await services.redis.incr(ROUTES_VERSION_KEY)


async def routes_version(services: Services) -> bytes | None:
    value: bytes | None = await services.redis.get(ROUTES_VERSION_KEY)
    return value


async def active_routes(services: Services) -> list[Route]:
    return await routes_of(services, await ConnectionStore(services.db).active())


def inserted_ms(row: Row) -> int:
    moment: datetime = row["inserted_at"]
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class FanOut:
    """Outbound events per destination for rows in stored order, and filtered counts per connection."""

    def __init__(
        self, routes: Sequence[Route], *, live: bool, takes: Callable[[Route, datetime], bool] | None = None
    ) -> None:
        self.by_source: dict[str, list[Route]] = defaultdict(list)
        for route in routes:
            self.by_source[route.source_id].append(route)
        self.live = live
        # whether a route takes a row stored at this instant (live: at or after its `since`)
        self.takes = takes or (lambda route, at: not live or at >= route.since)
        self.needs_consent = any(r.consent_category for r in routes)
        self.out: dict[str, list[OutboundEvent]] = defaultdict(list)
        self.filtered: Counter[str] = Counter()

    async def add(self, services: Services, rows: Sequence[Row]) -> None:
        state = ConsentState(await earlier_consent(services.db, rows) if self.needs_consent else {})
        dropped = await suppressed(services, rows)
        for row in rows:
            state.see(row)
            self._route(row, state, row["message_id"] in dropped)

    def _route(self, row: Row, state: ConsentState, suppressed_row: bool) -> None:
        event: dict[str, Any] | None = None
        reached: set[str] = set()
        for route in self.by_source.get(row["source_id"], ()):
            if route.destination_id in reached or not self.takes(route, _utc(row["inserted_at"])):
                continue
            event = event or segment_event(row)
            if not matches(route.filter, event):
                continue
            reached.add(route.destination_id)
            if suppressed_row or (route.consent_category and not state.granted(row, route.consent_category)):
                self.filtered[route.connection_id] += 1
                continue
            outbound = mapped(route.mapping, event)
            self.out[route.destination_id].append(
                OutboundEvent(
                    row["message_id"], person(event), outbound, route.connection_id, inserted_ms(row)
                )
            )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
