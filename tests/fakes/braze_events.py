"""Fake Braze `/users/track` for event forwarding (reference §4).

Checks: `Authorization: Bearer <REST key>` (401 "Invalid API Key"); at least one of `attributes`,
`events`, `purchases` (400 otherwise); at most `max_objects` objects across the arrays (default 75,
the stricter combined reading; 400 "Max Input Length Exceeded"). Each object needs one identifier
(`external_id`, `user_alias {alias_name, alias_label}`, `braze_id`, `email`, `phone`); an alias-only
object needs `_update_existing_only: false`. Events need `name` and an ISO 8601 `time`; property names
non-empty, ≤ 255 chars, no leading `$`; string values ≤ 255 chars. Invalid objects are listed in a
2xx `success` answer's `errors` ({type, input_array, index}); the rest are processed (partial success).
No deduplication (Braze counts each event). Faults: `throttle` (429 with X-RateLimit-* headers and
X-RateLimit-Reset in epoch seconds), `error500`, `hang`, `auth_expired` (401).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

IDENTIFIERS = ("external_id", "user_alias", "braze_id", "email", "phone")


class FakeBrazeEvents(FakeServer):
    uses_tokens = False
    api_key = "braze-rest-key-0123"

    def __init__(self, *, max_objects: int = 75, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_objects = max_objects
        self.events: list[dict[str, Any]] = []
        self.attributes: dict[str, dict[str, Any]] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/users/track", self.track)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        reset = str(int(time.time()) + int(fault.params.get("retry_after_s", 1)))
        headers = {"X-RateLimit-Limit": "3000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
        return web.json_response({"message": "Rate limit exceeded"}, status=429, headers=headers)

    def auth_error_response(self) -> web.StreamResponse:
        return web.json_response({"message": "Invalid API Key"}, status=401)

    def echo_response(self, text: str) -> web.StreamResponse:
        return web.json_response({"message": text}, status=400)

    async def track(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.auth_error_response()
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.echo_response("Invalid JSON")
        arrays = (
            {k: body.get(k) for k in ("attributes", "events", "purchases")} if isinstance(body, dict) else {}
        )
        present = {k: v for k, v in arrays.items() if isinstance(v, list) and v}
        if not present:
            return self.echo_response(
                "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
            )
        if sum(len(v) for v in present.values()) > self.max_objects:
            return self.echo_response("Max Input Length Exceeded")
        errors, processed = [], {"attributes_processed": 0, "events_processed": 0}
        for array, objects in present.items():
            for index, obj in enumerate(objects):
                problem = check(array, obj)
                if problem:
                    errors.append({"type": problem, "input_array": array, "index": index})
                    continue
                self._apply(array, obj)
                processed[f"{array}_processed"] = processed.get(f"{array}_processed", 0) + 1
        out: dict[str, Any] = {"message": "success", **processed}
        if errors:
            out["errors"] = errors
        return web.json_response(out, status=201)

    def _apply(self, array: str, obj: dict[str, Any]) -> None:
        if array == "events":
            self.events.append(obj)
        elif array == "attributes":
            who = str(obj.get("external_id") or orjson.dumps(obj.get("user_alias")).decode())
            self.attributes.setdefault(who, {}).update(
                {k: v for k, v in obj.items() if k not in IDENTIFIERS and k != "_update_existing_only"}
            )


def check(array: str, obj: Any) -> str | None:
    if not isinstance(obj, dict) or not any(obj.get(k) for k in IDENTIFIERS):
        return "must include an identifier (external_id, user_alias, braze_id, email or phone)"
    alias = obj.get("user_alias")
    if alias is not None:
        if not isinstance(alias, dict) or not alias.get("alias_name") or not alias.get("alias_label"):
            return "'user_alias' needs alias_name and alias_label"
        if not obj.get("external_id") and obj.get("_update_existing_only") is not False:
            return "alias-only profiles need _update_existing_only: false"
    if array != "events":
        return None
    if not isinstance(obj.get("name"), str) or not obj["name"]:
        return "'name' is required"
    try:
        datetime.fromisoformat(str(obj.get("time")).replace("Z", "+00:00"))
    except ValueError:
        return "'time' must be an ISO 8601 string"
    for key, value in (obj.get("properties") or {}).items():
        if not key or key.startswith("$") or len(key) > 255:
            return f"invalid property name {key!r}"
        if isinstance(value, str) and len(value) > 255:
            return f"property {key!r} is longer than 255 characters"
    return None
