"""Braze as an event destination (type `braze_events`): `POST {base}/users/track`, Bearer REST key.

Rules (reference/event-destinations.md §4): at most `max_objects` objects per request across the
`events` and `attributes` arrays (default 75; set 50 for MAU-contract workspaces — the sources
disagree, the stricter combined count is used). Identifier: `external_id` = userId, else a
`user_alias {alias_name: anonymousId, alias_label: "anonymous_id"}` with `_update_existing_only: false`.
track/page/screen → `events[]` (name, ISO `time`, properties); identify → `attributes[]` (traits);
group and alias are skipped. Property names starting with `$`, empty or > 255 chars are dropped,
strings cut to 255 chars, nested values over 50 KB dropped.
Braze has NO idempotency key: a retry after a lost response can count an event twice.
Responses: 2xx `message: success` (or 202 `queued`), with `errors[{input_array, index}]` naming the
objects refused (the rest processed); other 2xx/400 messages refuse the request (bisected); 401, 403,
404 permanent; 429 retryable until `X-RateLimit-Reset` (epoch seconds); 5xx retryable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from activation.destinations.base import Config, Credentials, RejectedError, RetryableError
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.events.base import (
    EventOutcome,
    OutboundEvent,
    event_name,
    leading,
    scalar_properties,
)
from activation.destinations.http import JSON_HEADERS, as_dict, as_list, call, raise_for_generic
from activation.net import HttpClient, HttpResponse

MAX_OBJECTS, MAX_STRING, MAX_NESTED_BYTES, MAX_REQUEST_BYTES = 75, 255, 50_000, 4_000_000


def clean_properties(props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in props.items():
        if not name or name.startswith("$") or len(name) > MAX_STRING:
            continue
        if isinstance(value, str):
            out[name] = value[:MAX_STRING]
        elif isinstance(value, dict | list):
            if len(orjson.dumps(value)) <= MAX_NESTED_BYTES:
                out[name] = value
        else:
            out[name] = value
    return out


def identifier(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("userId"):
        return {"external_id": str(event["userId"])}
    alias = {"alias_name": str(event.get("anonymousId") or ""), "alias_label": "anonymous_id"}
    return {"user_alias": alias, "_update_existing_only": False}


def braze_object(event: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(array name, object) for one event, None when Braze has no place for it."""
    kind = event.get("type")
    if kind == "identify":
        return "attributes", {**clean_properties(scalar_properties(event)), **identifier(event)}
    if kind not in ("track", "page", "screen"):
        return None
    body = {"name": event_name(event), "time": str(event.get("timestamp") or "")}
    return "events", {**identifier(event), **body, "properties": clean_properties(scalar_properties(event))}


def retry_after(response: HttpResponse, now_s: float) -> float | None:
    reset = response.headers.get("x-ratelimit-reset")
    return max(0.0, float(reset) - now_s) if reset and reset.isdigit() else None


def read_response(response: HttpResponse, where: dict[tuple[str, int], int]) -> tuple[tuple[int, str], ...]:
    if response.status == 429:
        raise RetryableError("braze: HTTP 429", retry_after(response, time.time()))
    body = as_dict(orjson.loads(response.body)) if response.body.startswith(b"{") else {}
    message = str(body.get("message", ""))
    if 200 <= response.status < 300 and message in ("success", "queued"):
        out = []
        for error in as_list(body.get("errors")):
            item = as_dict(error)
            position = item.get("index")
            index = where.get((str(item.get("input_array")), position if isinstance(position, int) else -1))
            if index is not None:
                out.append((index, f"braze refused: {str(item.get('type', ''))[:200]}"))
        return tuple(out)
    if response.status < 300 or response.status == 400:
        raise RejectedError(f"braze: HTTP {response.status} {message[:200]}")
    raise_for_generic(response, "braze")
    return ()


class BrazeEvents:
    type = "braze_events"

    def validate_config(self, config: Config) -> dict[str, str]:
        r = ConfigReader(config)
        r.url("base_url")
        r.integer("max_objects", default=MAX_OBJECTS, low=1, high=MAX_OBJECTS)
        return r.errors

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("api_key") else {"api_key": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [ConfigReader(config).url("base_url")]

    def take(self, events: Sequence[OutboundEvent], config: Config) -> int:
        limit = ConfigReader(config).integer("max_objects", default=MAX_OBJECTS, low=1, high=MAX_OBJECTS)
        return leading(events, limit, MAX_REQUEST_BYTES, lambda e: len(orjson.dumps(e.event)))

    async def send_events(
        self,
        session: HttpClient,
        events: Sequence[OutboundEvent],
        credentials: Credentials,
        config: Config,
        key: str,
    ) -> EventOutcome:
        r = ConfigReader(config)
        base = r.url("base_url")
        require_valid(r.errors)
        arrays: dict[str, list[dict[str, Any]]] = {"attributes": [], "events": []}
        where: dict[tuple[str, int], int] = {}
        skipped = []
        for index, e in enumerate(events):
            built = braze_object(e.event)
            if built is None:
                skipped.append((index, f"braze takes events and identifies, not {e.event.get('type')}"))
                continue
            where[(built[0], len(arrays[built[0]]))] = index
            arrays[built[0]].append(built[1])
        if not where:
            return EventOutcome(skipped=tuple(skipped))
        body = orjson.dumps({k: v for k, v in arrays.items() if v})
        headers = {**JSON_HEADERS, "authorization": "Bearer " + credentials.require("api_key")}
        response = await call(session, "POST", base + "/users/track", headers=headers, body=body)
        return EventOutcome(read_response(response, where), tuple(skipped))
