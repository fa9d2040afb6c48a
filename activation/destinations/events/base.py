"""The event destination plug-in point: an outbound event, the outcome of one request, the protocol.

The forwarding engine (activation/connections) hands a client events in queue order and asks two
things: `take(events, config)` — how many leading events fit in ONE platform request (count, bytes,
and for GA4 one person per request) — and `send_events(...)` for exactly those. One call is one
request, so a retry re-sends exactly one request and a platform's idempotency key makes it harmless.
Errors are the audience vocabulary (activation/destinations/base.py): `RetryableError` (retry after
`retry_after_s`), `RejectedError` (the request's content was refused: the engine bisects to find the
event), `PermanentError`/`AuthExpiredError` (the destination is unusable: the events are dead-lettered).
Per-event refusals inside a 2xx (Mixpanel `failed_records`, Braze `errors`) are `EventOutcome.rejected`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from activation.destinations.base import Config, Credentials, RejectedError
from activation.net import HttpClient

Event = dict[str, Any]


@dataclass(frozen=True)
class OutboundEvent:
    """One Segment-shaped event bound for one destination (after the connection's mapping)."""

    message_id: str
    person: str  # "u:<userId>" or "a:<anonymousId>": the unit of ordering
    event: Event = field(default_factory=dict)
    connection_id: str = ""
    inserted_at_ms: int = 0  # when ClickHouse stored it (for lag)


@dataclass(frozen=True)
class EventOutcome:
    """What one request did: indexes (into the events sent) refused for good or skipped, with reasons."""

    rejected: tuple[tuple[int, str], ...] = ()
    skipped: tuple[tuple[int, str], ...] = ()


class RecordsRefused(RejectedError):
    """The platform refused the whole request because of some events and ingested none (Amplitude's
    400 index maps): those indexes are refused for good; the engine re-sends the others."""

    def __init__(self, reason: str, refused: tuple[tuple[int, str], ...]) -> None:
        super().__init__(reason)
        self.refused = refused


class EventDestination(Protocol):
    @property
    def type(self) -> str: ...

    def validate_config(self, config: Config) -> dict[str, str]: ...

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]: ...

    def endpoint_urls(self, config: Config) -> list[str]: ...

    def take(self, events: Sequence[OutboundEvent], config: Config) -> int:
        """How many leading events one request carries (≥ 1 when events is not empty)."""
        ...

    async def send_events(
        self,
        session: HttpClient,
        events: Sequence[OutboundEvent],
        credentials: Credentials,
        config: Config,
        key: str,
    ) -> EventOutcome:
        """One request. `key` is stable for these exact events (webhook-id and similar)."""
        ...


def request_key(events: Sequence[OutboundEvent], tag: str = "") -> str:
    """Stable id of one request: the same events (and tag, e.g. a replay id) give the same key."""
    digest = hashlib.sha256(tag.encode())
    for e in events:
        digest.update(b"\0" + e.message_id.encode())
    return "msg_" + digest.hexdigest()[:32]


def leading(events: Sequence[OutboundEvent], max_count: int, max_bytes: int, size: Any) -> int:
    """The longest prefix within `max_count` events and `max_bytes` (by `size(event)`); at least 1."""
    total = 0
    for index, e in enumerate(events[:max_count]):
        total += int(size(e))
        if total > max_bytes and index > 0:
            return index
    return max(1, min(len(events), max_count))


def event_name(event: Event) -> str:
    """The event's name as a platform sees it: track → event; page/screen → 'Page Viewed'-style."""
    kind = event.get("type")
    if kind == "track":
        return str(event.get("event") or "")
    if kind in ("page", "screen"):
        name = event.get("name")
        return f"Viewed {name} {kind.title()}" if name else f"{kind.title()} Viewed"
    return str(kind or "")


def scalar_properties(event: Event) -> dict[str, Any]:
    """Top-level properties (track/page/screen) or traits (identify/group) as a dict."""
    source = event.get("properties") if "properties" in event else event.get("traits")
    return dict(source) if isinstance(source, dict) else {}
