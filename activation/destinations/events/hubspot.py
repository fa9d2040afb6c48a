"""HubSpot custom behavioural events (type `hubspot_events`): `POST {base}/events/v3/send/batch`
`{"inputs": [...]}` with a Bearer private-app token (Enterprise hubs only).

Rules (reference/event-destinations.md §6): `eventName` = `pe{portal_id}_{name}` (name lower-cased,
other characters → `_`; a mapped name already carrying the prefix is kept); one identifier —
`email` (context.traits, traits or properties) or `utk` (context.hubspotutk); events with neither are
skipped; `occurredAt` ISO 8601; `uuid` = UUID5 of the messageId: HubSpot keeps the first occurrence
of a uuid per event type for a year, so a retry is not a duplicate. Properties: names `[a-z][a-z0-9_]*`
≤ 50 chars, at most 50, values ≤ 50 chars (≤ 200 for url/referrer names), nested values dropped.
The batch cap is unverified: `batch_size` defaults to 100 (at most 500).
Responses: 2xx ok (no body); 400 refuses the request (bisected); 401 expired token (private-app
tokens are not refreshed: permanent), 403 permanent; 429 retryable after `Retry-After` (else 10 s,
HubSpot's ten-second window); 5xx retryable.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from activation.destinations.base import Config, Credentials, RetryableError
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.events.base import (
    EventOutcome,
    OutboundEvent,
    event_name,
    leading,
    scalar_properties,
)
from activation.destinations.http import JSON_HEADERS, as_dict, call, parse_retry_after, raise_for_generic
from activation.net import HttpClient

BASE_URL = "https://api.hubapi.com"
MAX_PROPERTIES, MAX_NAME, MAX_VALUE, MAX_URL_VALUE = 50, 50, 50, 200
_BAD = re.compile(r"[^a-z0-9_]+")


def hubspot_name(raw: str) -> str:
    name = _BAD.sub("_", raw.strip().lower()).strip("_")
    return name if name[:1].isalpha() else "e_" + name


def properties(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in scalar_properties(event).items():
        name = hubspot_name(str(key))[:MAX_NAME]
        if len(out) >= MAX_PROPERTIES or name in out or isinstance(value, dict | list) or value is None:
            continue
        limit = MAX_URL_VALUE if "url" in name or "referrer" in name else MAX_VALUE
        out[name] = value[:limit] if isinstance(value, str) else value
    return out


def identifier(event: dict[str, Any]) -> dict[str, str]:
    context = as_dict(event.get("context"))
    for source in (
        as_dict(context.get("traits")),
        as_dict(event.get("traits")),
        as_dict(event.get("properties")),
    ):
        email = source.get("email")
        if isinstance(email, str) and "@" in email:
            return {"email": email.strip()}
    utk = context.get("hubspotutk")
    return {"utk": utk} if isinstance(utk, str) and utk else {}


def hubspot_input(e: OutboundEvent, portal_id: str) -> dict[str, Any] | str:
    event = e.event
    if event.get("type") not in ("track", "page", "screen"):
        return f"hubspot custom events take events only, not {event.get('type')}"
    who = identifier(event)
    if not who:
        return "no email or utk: HubSpot needs one to attach the event to a contact"
    prefix = f"pe{portal_id}_"
    raw = event_name(event)
    name = raw if raw.startswith(prefix) else prefix + hubspot_name(raw)
    occurrence = {"eventName": name, "occurredAt": str(event.get("timestamp") or "")}
    occurrence["uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "magpie:" + e.message_id))
    return {**occurrence, **who, "properties": properties(event)}


def read_config(config: Config) -> tuple[dict[str, Any], dict[str, str]]:
    r = ConfigReader(config)
    parsed = {
        "base_url": r.url("base_url", default=BASE_URL),
        "portal_id": r.text("portal_id", pattern=r"[0-9]{1,20}"),
        "batch_size": r.integer("batch_size", default=100, low=1, high=500),
    }
    return parsed, r.errors


class HubSpotEvents:
    type = "hubspot_events"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("access_token") else {"access_token": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0]["base_url"]]

    def take(self, events: Sequence[OutboundEvent], config: Config) -> int:
        size = read_config(config)[0]["batch_size"]
        return leading(events, size, 4_000_000, lambda e: len(orjson.dumps(e.event)))

    async def send_events(
        self,
        session: HttpClient,
        events: Sequence[OutboundEvent],
        credentials: Credentials,
        config: Config,
        key: str,
    ) -> EventOutcome:
        cfg, errors = read_config(config)
        require_valid(errors)
        inputs, skipped = [], []
        for index, e in enumerate(events):
            built = hubspot_input(e, cfg["portal_id"])
            if isinstance(built, str):
                skipped.append((index, built))
            else:
                inputs.append(built)
        if inputs:
            headers = {**JSON_HEADERS, "authorization": "Bearer " + credentials.require("access_token")}
            url = cfg["base_url"] + "/events/v3/send/batch"
            response = await call(
                session, "POST", url, headers=headers, body=orjson.dumps({"inputs": inputs})
            )
            if response.status == 429:
                delay = parse_retry_after(response.headers.get("retry-after"))
                raise RetryableError("hubspot: HTTP 429", 10.0 if delay is None else delay)
            raise_for_generic(response, "hubspot")
        return EventOutcome(skipped=tuple(skipped))
