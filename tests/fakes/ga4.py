"""Fake GA4 Measurement Protocol: `/mp/collect` and `/debug/mp/collect` (reference §1).

Checks per request: POST JSON object; `measurement_id` (or `firebase_app_id`) and `api_secret` in
the query — an unknown stream or wrong secret is dropped silently with 204, as GA4 does; `client_id`
(or `app_instance_id`) required; 1–25 events; body < 130 kB (413 above: GA4's behaviour there is
unverified). Per event: name `[A-Za-z][A-Za-z0-9_]*` ≤ 40 chars, not reserved, no reserved prefix;
≤ 25 params with valid names; string values ≤ 100 chars (page_title 300, page_referrer 420,
page_location 1000); `timestamp_micros` not older than 72 h. `/mp/collect` answers 204 and silently
drops invalid events (counted in `dropped` by validation code); `/debug/mp/collect` answers 200 with
`validationMessages` and stores nothing. No deduplication (a repeated request counts twice).
Faults: `throttle` (429 + Retry-After), `error500`, `hang`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

from activation.destinations.events.ga4 import RESERVED, RESERVED_PREFIXES
from tests.fakes.base import FakeServer, Fault

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
LONG_VALUES = {"page_title": 300, "page_referrer": 420, "page_location": 1000}
MAX_BYTES = 130_000


class FakeGA4(FakeServer):
    uses_tokens = False
    measurement_id = "G-TEST1234"
    api_secret = "ga4-secret-0123"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[
            dict[str, Any]
        ] = []  # accepted: {client_id, user_id, name, params, timestamp_micros}
        self.dropped: Counter[str] = Counter()
        self.silently_ignored = 0  # requests with a wrong stream or secret

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/mp/collect", self.collect)
        router.add_post("/debug/mp/collect", self.debug)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": str(fault.params.get("retry_after_s", 1))})

    def auth_error_response(self) -> web.StreamResponse:
        return web.Response(status=204)  # GA4 never tells

    def echo_response(self, text: str) -> web.StreamResponse:
        return web.json_response({"error": text}, status=400)

    async def collect(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if len(body) >= MAX_BYTES:
            return web.Response(status=413)
        if (
            request.query.get("measurement_id") != self.measurement_id
            or request.query.get("api_secret") != self.api_secret
        ):
            self.silently_ignored += 1
            return web.Response(status=204)
        payload, messages = parse(body)
        if payload is not None and not any(m["fieldPath"] == "client_id" for m in messages):
            bad = {m["index"] for m in messages if "index" in m}
            for index, event in enumerate(payload.get("events", [])[:25]):
                if index not in bad:
                    self.events.append(
                        {**event, "client_id": payload["client_id"], "user_id": payload.get("user_id")}
                    )
        self.dropped.update(m["validationCode"] for m in messages)
        return web.Response(status=204)

    async def debug(self, request: web.Request) -> web.StreamResponse:
        _, messages = parse(await request.read())
        out = [{k: v for k, v in m.items() if k != "index"} for m in messages]
        return web.json_response({"validationMessages": out})


def parse(body: bytes) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, [message("", "VALUE_INVALID", "body is not JSON")]
    if not isinstance(payload, dict):
        return None, [message("", "VALUE_INVALID", "body must be an object")]
    out = []
    if not isinstance(payload.get("client_id") or payload.get("app_instance_id"), str):
        out.append(message("client_id", "VALUE_REQUIRED", "client_id is required"))
    events = payload.get("events")
    if not isinstance(events, list) or not events:
        return payload, [*out, message("events", "VALUE_REQUIRED", "events are required")]
    if len(events) > 25:
        out.append(message("events", "EXCEEDED_MAX_ENTITIES", "at most 25 events"))
    for index, event in enumerate(events):
        out += [{**m, "index": index} for m in check_event(event)]
    return payload, out


def check_event(event: Any) -> list[dict[str, Any]]:
    if not isinstance(event, dict) or not isinstance(event.get("name"), str):
        return [message("events.name", "VALUE_REQUIRED", "event name required")]
    name = event["name"]
    if not NAME.fullmatch(name):
        return [message("events.name", "NAME_INVALID", f"invalid event name {name!r}")]
    if name in RESERVED or name.startswith(RESERVED_PREFIXES):
        return [message("events.name", "NAME_RESERVED", f"reserved event name {name!r}")]
    params = event.get("params", {})
    if not isinstance(params, dict) or len(params) > 25:
        return [message("events.params", "EXCEEDED_MAX_ENTITIES", "at most 25 params")]
    for key, value in params.items():
        if not NAME.fullmatch(key) or key.startswith(("google_", "ga_", "firebase_")):
            return [message("events.params", "NAME_INVALID", f"invalid param name {key!r}")]
        if isinstance(value, str) and len(value) > LONG_VALUES.get(key, 100):
            return [message("events.params", "VALUE_OUT_OF_BOUNDS", f"param {key} too long")]
    micros = event.get("timestamp_micros")
    if isinstance(micros, int) and micros < (time.time() - 72 * 3600) * 1_000_000:
        return [message("events.timestamp_micros", "VALUE_OUT_OF_BOUNDS", "older than 72 hours")]
    return []


def message(path: str, code: str, description: str) -> dict[str, Any]:
    return {"fieldPath": path, "validationCode": code, "description": description}
