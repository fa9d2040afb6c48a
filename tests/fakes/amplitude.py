"""Fake Amplitude HTTP V2 `/2/httpapi` (reference §3).

Checks: JSON body with `api_key` (missing → 400 `missing_field`; unknown → 400 `Invalid API key`);
1 to 1,999 events and < 1 MB (413 above). Per event: `event_type` (not reserved), a `user_id` or
`device_id` of at least `options.min_id_length` chars (default 5; shorter ids are removed) and not an
invalid placeholder, `time` an integer (ms) when present. Any invalid event → 400 "Invalid field values
on some events" with `events_with_invalid_fields` / `events_with_missing_fields` (field → indexes)
and NOTHING ingested. Deduplication: an `insert_id` repeated for the same device (or user) is ignored.
Faults: `throttle` (429 with `throttled_users`/`throttled_devices`), `error500`, `hang`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

INVALID_IDS = frozenset(
    ["anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown", "",
     "00000000-0000-0000-0000-000000000000", "{}", "lmy47d", "0", "-1"]
)  # fmt: skip
RESERVED = frozenset(
    ["[Amplitude] Start Session", "[Amplitude] End Session", "[Amplitude] Revenue",
     "[Amplitude] Revenue (Verified)", "[Amplitude] Revenue (Unverified)", "[Amplitude] Merged User"]
)  # fmt: skip


class FakeAmplitude(FakeServer):
    uses_tokens = False
    api_key = "amp-api-key-0123"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[dict[str, Any]] = []
        self.insert_ids: set[tuple[str, str]] = set()
        self.duplicates = 0

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/2/httpapi", self.httpapi)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        body = {"code": 429, "error": "Too many requests for some devices and users", "eps_threshold": 30,
                "throttled_devices": {}, "throttled_users": {}, "throttled_events": []}  # fmt: skip
        return web.json_response(body, status=429)

    def auth_error_response(self) -> web.StreamResponse:
        return web.json_response({"code": 400, "error": "Invalid API key"}, status=400)

    def echo_response(self, text: str) -> web.StreamResponse:
        return web.json_response({"code": 400, "error": text}, status=400)

    async def httpapi(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if len(raw) >= 1_000_000:
            return web.json_response({"code": 413, "error": "Payload too large"}, status=413)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.echo_response("Invalid JSON request body")
        if not isinstance(body, dict) or not body.get("api_key"):
            return web.json_response(
                {"code": 400, "error": "Request missing required field", "missing_field": "api_key"},
                status=400,
            )
        if body["api_key"] != self.api_key:
            return self.auth_error_response()
        events = body.get("events")
        if not isinstance(events, list) or not events:
            return web.json_response(
                {"code": 400, "error": "Request missing required field", "missing_field": "events"},
                status=400,
            )
        if len(events) >= 2000:
            return web.json_response({"code": 413, "error": "Payload too large"}, status=413)
        min_id = int((body.get("options") or {}).get("min_id_length", 5))
        invalid, missing = check(events, min_id)
        if invalid or missing:
            out = {"code": 400, "error": "Invalid field values on some events",
                   "events_with_invalid_fields": invalid, "events_with_missing_fields": missing}  # fmt: skip
            return web.json_response(out, status=400)
        for event in events:
            self._ingest(event)
        return web.json_response({"code": 200, "events_ingested": len(events), "payload_size_bytes": len(raw),
                                  "server_upload_time": 1})  # fmt: skip

    def _ingest(self, event: dict[str, Any]) -> None:
        who = str(event.get("device_id") or event.get("user_id"))
        insert_id = event.get("insert_id")
        if insert_id is not None and (who, insert_id) in self.insert_ids:
            self.duplicates += 1
            return
        if insert_id is not None:
            self.insert_ids.add((who, insert_id))
        self.events.append(event)


def check(events: list[Any], min_id: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    invalid: dict[str, list[int]] = defaultdict(list)
    missing: dict[str, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            invalid["event"].append(index)
            continue
        if not isinstance(event.get("event_type"), str) or not event["event_type"]:
            missing["event_type"].append(index)
        elif event["event_type"] in RESERVED:
            invalid["event_type"].append(index)
        ids = [str(event.get(k, "")) for k in ("user_id", "device_id")]
        if not any(len(v) >= min_id and v.lower() not in INVALID_IDS for v in ids):
            missing["user_id"].append(index)
        if "time" in event and (isinstance(event["time"], bool) or not isinstance(event["time"], int)):
            invalid["time"].append(index)
    return dict(invalid), dict(missing)
