"""Signed webhook as an event destination: POST `{"events": [<Segment-shaped events>]}`.

The same `webhook` destination type serves audiences (activation/destinations/webhook.py, body
`{"audience", "entered", "exited"}`) and connections (this body). Standard Webhooks headers as there;
`webhook-id` is derived from the message ids in the request (and a replay's id), so a retried request
carries the same id and a receiver deduplicating on it applies it once. Receivers should also
deduplicate each event on its `messageId` (after a worker crash a request may be recomposed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson

from activation.destinations.base import Config, Credentials
from activation.destinations.events.base import EventOutcome, OutboundEvent, leading
from activation.destinations.http import call
from activation.destinations.signing import signature_headers
from activation.destinations.webhook import WebhookDestination, _key, check_response, load_config
from activation.net import HttpClient

MAX_BODY_BYTES = 1_000_000


def build_body(events: Sequence[OutboundEvent]) -> bytes:
    return orjson.dumps({"events": [e.event for e in events]})


class WebhookEvents:
    type = "webhook"

    def __init__(self) -> None:
        self._audience = WebhookDestination()

    def validate_config(self, config: Config) -> dict[str, str]:
        return self._audience.validate_config(config)

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return self._audience.validate_credentials(credentials)

    def endpoint_urls(self, config: Config) -> list[str]:
        return self._audience.endpoint_urls(config)

    def take(self, events: Sequence[OutboundEvent], config: Config) -> int:
        size = self._audience.batch_limit(config)
        return leading(events, size, MAX_BODY_BYTES, lambda e: len(orjson.dumps(e.event)) + 1)

    async def send_events(
        self,
        session: HttpClient,
        events: Sequence[OutboundEvent],
        credentials: Credentials,
        config: Config,
        key: str,
    ) -> EventOutcome:
        cfg = load_config(config)
        body = build_body(events)
        signed = signature_headers(_key(credentials), key, int(time.time()), body)
        headers = {"content-type": "application/json", **signed}
        check_response(await call(session, "POST", cfg.url, headers=headers, body=body))
        return EventOutcome()
