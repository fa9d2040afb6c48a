"""GA4 Measurement Protocol: `POST {base}/mp/collect?measurement_id=…&api_secret=…` (or
`firebase_app_id=…` for app streams), one `client_id` per request, at most 25 events, under 130 kB.

Rules (reference/event-destinations.md §1): event and param names `[A-Za-z][A-Za-z0-9_]*`, ≤ 40 chars;
reserved event names get a `_event` suffix, reserved prefixes an `x_` prefix; ≤ 25 params per event
(nested values dropped, strings cut to 100 chars, booleans as "true"/"false"); `timestamp_micros` from
the event time, and an event older than 72 h is refused here (GA4 would drop it silently).
track → snake_case event name; page → `page_view`; screen → `screen_view_event` (screen_view is
reserved for the Measurement Protocol); identify, group and alias are skipped (events only).
GA4 has NO idempotency key: a retried request that GA4 had already accepted is counted twice.
`/mp/collect` answers 2xx even for invalid events, so validation errors are invisible here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from activation.destinations.base import Config, Credentials
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.events.base import EventOutcome, OutboundEvent, event_name, scalar_properties
from activation.destinations.http import JSON_HEADERS, call, raise_for_generic
from activation.net import HttpClient

BASE_URL = "https://www.google-analytics.com"
MAX_EVENTS, MAX_BYTES, MAX_PARAMS, MAX_NAME, MAX_VALUE = 25, 130_000, 25, 40, 100
MAX_AGE_S = 72 * 3600
RESERVED = frozenset(
    [
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_impression",
        "ad_query",
        "adunit_exposure",
        "app_clear_data",
        "app_install",
        "app_update",
        "app_remove",
        "error",
        "first_open",
        "first_visit",
        "in_app_purchase",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "os_update",
        "screen_view",
        "session_start",
        "user_engagement",
        "app_store_refund",
        "app_store_subscription_cancel",
        "app_store_subscription_convert",
        "app_store_subscription_renew",
    ]
)
RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
_BAD = re.compile(r"[^A-Za-z0-9_]+")


def ga4_name(raw: str) -> str:
    """A valid, non-reserved GA4 name for `raw` ('Order Completed' → 'order_completed')."""
    name = _BAD.sub("_", raw.strip()).strip("_").lower()
    if not name or not name[0].isalpha():
        name = "e_" + name
    if name.startswith(RESERVED_PREFIXES):
        name = "x_" + name
    if name in RESERVED:
        name += "_event"
    return name[:MAX_NAME]


def params(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"engagement_time_msec": 1}
    for key, value in scalar_properties(event).items():
        if len(out) >= MAX_PARAMS:
            break
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, str):
            out[ga4_name(key)] = value[:MAX_VALUE]
        elif isinstance(value, int | float):
            out[ga4_name(key)] = value
    return out


def client_id(event: dict[str, Any]) -> str:
    return str(event.get("anonymousId") or event.get("userId") or "")


def timestamp_micros(event: dict[str, Any]) -> int:
    text = str(event.get("timestamp") or "")
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1_000_000)
    except ValueError:
        return int(time.time() * 1_000_000)


def ga4_event(event: dict[str, Any]) -> dict[str, Any] | None:
    kind = event.get("type")
    if kind not in ("track", "page", "screen"):
        return None
    name = {"page": "page_view", "screen": "screen_view"}.get(str(kind), event_name(event))
    return {"name": ga4_name(name), "params": params(event)}


def build_body(events: Sequence[OutboundEvent], now_s: float) -> tuple[dict[str, Any], EventOutcome]:
    """The request body for one person's events, and which events were skipped or refused."""
    first = events[0].event
    body: dict[str, Any] = {"client_id": client_id(first), "events": []}
    if first.get("userId"):
        body["user_id"] = str(first["userId"])
    skipped, rejected = [], []
    for index, e in enumerate(events):
        built = ga4_event(e.event)
        if built is None:
            skipped.append((index, f"GA4 takes events only, not {e.event.get('type')}"))
            continue
        micros = timestamp_micros(e.event)
        if micros < (now_s - MAX_AGE_S) * 1_000_000:
            rejected.append((index, "older than GA4's 72 h limit for timestamp_micros"))
            continue
        body["events"].append({**built, "timestamp_micros": micros})
    return body, EventOutcome(tuple(rejected), tuple(skipped))


def read_config(config: Config) -> tuple[dict[str, str], dict[str, str]]:
    r = ConfigReader(config)
    base = r.url("base_url", default=BASE_URL)
    if "firebase_app_id" in config:
        stream = {"firebase_app_id": r.text("firebase_app_id")}
    else:
        stream = {"measurement_id": r.text("measurement_id", pattern=r"G-[A-Z0-9]{4,20}")}
    return {"base_url": base, **stream}, r.errors


class GA4Events:
    type = "ga4"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("api_secret") else {"api_secret": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0]["base_url"]]

    def take(self, events: Sequence[OutboundEvent], config: Config) -> int:
        """The leading run of one person (one client_id per request), ≤ 25 events, < 130 kB."""
        person, total = client_id(events[0].event), 200
        for index, e in enumerate(events[:MAX_EVENTS]):
            total += len(orjson.dumps(e.event.get("properties") or {})) + 100
            if index and (client_id(e.event) != person or total > MAX_BYTES):
                return index
        return min(len(events), MAX_EVENTS)

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
        body, outcome = build_body(events, time.time())
        if not body["events"]:
            return outcome
        query = {k: v for k, v in cfg.items() if k != "base_url"}
        query["api_secret"] = credentials.require("api_secret")
        url = cfg["base_url"] + "/mp/collect"
        response = await call(
            session, "POST", url, headers=JSON_HEADERS, params=query, body=orjson.dumps(body)
        )
        raise_for_generic(response, "ga4")
        return outcome
