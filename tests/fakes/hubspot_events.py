"""Fake HubSpot custom behavioural events `/events/v3/send/batch` (reference §6).

Checks: current Bearer token (401 EXPIRED_AUTHENTICATION); `{"inputs": [...]}` with 1–`max_batch`
occurrences (default 500; HubSpot's cap is unverified). Each occurrence: `eventName` = `pe{portal}_…`
(and, when `definitions` is set, a defined event); one of `email`, `objectId`, `utk`; `occurredAt` ISO
8601 or epoch ms when present; property names `[a-z][a-z0-9_]*` ≤ 50 chars, at most 50 properties,
string values ≤ 50 chars (≤ 200 for url/referrer names). Any violation fails the whole request with
400 VALIDATION_ERROR naming the input (as the 2021 limits changelog says). `uuid` deduplicates per event
name: a repeated uuid is accepted and ignored. Success is 204 with no body.
Faults: `throttle` (429 RATE_LIMIT, policy TEN_SECONDLY_ROLLING, Retry-After), `error500`, `hang`,
`auth_expired` (tokens revoked).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

PROPERTY = re.compile(r"[a-z][a-z0-9_]{0,49}")


class FakeHubSpotEvents(FakeServer):
    portal_id = "1234567"

    def __init__(self, *, max_batch: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_batch = max_batch
        self.definitions: set[str] | None = None
        self.occurrences: list[dict[str, Any]] = []
        self.uuids: set[tuple[str, str]] = set()
        self.duplicates = 0

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/events/v3/send/batch", self.send_batch)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}  # fmt: skip
        headers = {"Retry-After": str(fault.params.get("retry_after_s", 1))}
        return web.json_response(body, status=429, headers=headers)

    def auth_error_response(self) -> web.StreamResponse:
        body = {"status": "error", "message": "The OAuth token used to make this call expired.",
                "category": "EXPIRED_AUTHENTICATION"}  # fmt: skip
        return web.json_response(body, status=401)

    def echo_response(self, text: str) -> web.StreamResponse:
        return web.json_response(
            {"status": "error", "message": text, "category": "VALIDATION_ERROR"}, status=400
        )

    async def send_batch(self, request: web.Request) -> web.StreamResponse:
        if not self.bearer_ok(request):
            return self.auth_error_response()
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.echo_response("Invalid input JSON")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= self.max_batch:
            return self.echo_response(f"inputs must hold 1 to {self.max_batch} occurrences")
        for index, occurrence in enumerate(inputs):
            problem = self.check(occurrence)
            if problem:
                return self.echo_response(f"inputs[{index}]: {problem}")
        for occurrence in inputs:
            key = (occurrence["eventName"], str(occurrence.get("uuid", "")))
            if occurrence.get("uuid") and key in self.uuids:
                self.duplicates += 1
                continue
            self.uuids.add(key)
            self.occurrences.append(occurrence)
        return web.Response(status=204)

    def check(self, occurrence: Any) -> str | None:
        if not isinstance(occurrence, dict):
            return "must be an object"
        name = occurrence.get("eventName")
        if not isinstance(name, str) or not name.startswith(f"pe{self.portal_id}_"):
            return f"eventName must be pe{self.portal_id}_<name>"
        if self.definitions is not None and name not in self.definitions:
            return f"event {name} is not defined"
        if not any(occurrence.get(k) for k in ("email", "objectId", "utk")):
            return "one of email, objectId or utk is required"
        when = occurrence.get("occurredAt")
        if isinstance(when, str):
            try:
                datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError:
                return "occurredAt must be ISO 8601 or epoch milliseconds"
        return check_properties(occurrence.get("properties") or {})


def check_properties(properties: Any) -> str | None:
    if not isinstance(properties, dict) or len(properties) > 50:
        return "at most 50 properties"
    for name, value in properties.items():
        if not PROPERTY.fullmatch(name):
            return f"property name {name!r} must match [a-z][a-z0-9_]* (≤ 50)"
        limit = 200 if "url" in name or "referrer" in name else 50
        if isinstance(value, str) and len(value) > limit:
            return f"property {name} is longer than {limit} characters"
    return None
