"""Fake Mixpanel `/import` (reference §2).

Auth: Basic `service_account_user:secret` with a matching `project_id` query parameter, or Basic
`project_token:`; 401 otherwise. Body: a JSON array (or NDJSON) of 1–2,000 events, at most
`max_bytes` uncompressed (default 2 MB, the stricter documented limit; 413 above). Per event:
`event` non-empty; `properties.time` a number (s or ms) after 1971-01-01 and at most 1 h ahead;
`properties.distinct_id` a string that is not a placeholder; `properties.$insert_id` ≤ 36 chars of
`[A-Za-z0-9-]`, not a placeholder. With `strict=1` bad events come back as a 400 PARTIAL success
(`failed_records` with index, insert_id, field, message; the rest imported); without it they are
dropped silently. Deduplication: identical (event, time, distinct_id, $insert_id) is kept once.
Faults: `throttle` (429 rate-limit body, no Retry-After), `error500`, `hang`, `auth_expired` (401).
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

PLACEHOLDERS = frozenset(
    ["00000000-0000-0000-0000-000000000000", "anon", "anonymous", "nil", "none", "null", "n/a", "na",
     "undefined", "unknown", "<nil>", "0", "-1", "true", "false", "[]", "{}"]
)  # fmt: skip
INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")


class FakeMixpanel(FakeServer):
    uses_tokens = False
    project_id = "3141592"
    token = "mp-project-token-0123"
    service_account = ("magpie.sa", "sa-secret-0123")

    def __init__(self, *, max_bytes: int = 2 * 1024 * 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes
        self.stored: dict[tuple[Any, ...], dict[str, Any]] = {}  # dedupe key → event
        self.duplicates = 0
        self.auth_failures_left = 0

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.stored.values())

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/import", self.import_events)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        body = {"code": 429, "error": "Project exceeded rate limits. Please retry the request with exponential"
                " backoff.", "status": "Too Many Requests"}  # fmt: skip
        return web.json_response(body, status=429)

    def auth_error_response(self) -> web.StreamResponse:
        return web.json_response(
            {"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}, status=401
        )

    def echo_response(self, text: str) -> web.StreamResponse:
        return web.json_response({"code": 400, "error": text, "status": "Bad Request"}, status=400)

    def authorised(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        user, _, secret = base64.b64decode(value).decode().partition(":")
        if (user, secret) == self.service_account:
            return request.query.get("project_id") == self.project_id
        return user == self.token and secret == ""

    async def import_events(self, request: web.Request) -> web.StreamResponse:
        if not self.authorised(request):
            return self.auth_error_response()
        body = await request.read()
        if len(body) > self.max_bytes:
            error = f"request exceeds max limit of {self.max_bytes} bytes"
            return web.json_response({"code": 413, "error": error, "status": "Payload Too Large"}, status=413)
        events = parse(body)
        if events is None or not 1 <= len(events) <= 2000:
            return self.echo_response("body must be a JSON array of 1 to 2000 events")
        failed = []
        for index, event in enumerate(events):
            problem = check(event)
            if problem is not None:
                insert_id = event.get("properties", {}).get("$insert_id") if isinstance(event, dict) else None
                failed.append(
                    {"index": index, "insert_id": insert_id, "field": problem[0], "message": problem[1]}
                )
            else:
                self._store(event)
        imported = len(events) - len(failed)
        if failed and request.query.get("strict") == "1":
            body_out = {"code": 400, "error": "some data points in the request failed validation",
                        "status": "Bad Request", "num_records_imported": imported, "failed_records": failed}  # fmt: skip
            return web.json_response(body_out, status=400)
        return web.json_response({"code": 200, "num_records_imported": imported, "status": "OK"})

    def _store(self, event: dict[str, Any]) -> None:
        p = event["properties"]
        key = (event["event"], p["time"], p["distinct_id"], p["$insert_id"])
        if key in self.stored:
            self.duplicates += 1
        else:
            self.stored[key] = event


def parse(body: bytes) -> list[Any] | None:
    try:
        if body.lstrip().startswith(b"["):
            value = orjson.loads(body)
            return value if isinstance(value, list) else None
        return [orjson.loads(line) for line in body.splitlines() if line.strip()]
    except orjson.JSONDecodeError:
        return None


def check(event: Any) -> tuple[str, str] | None:
    if not isinstance(event, dict) or not isinstance(event.get("event"), str) or not event["event"]:
        return "event", "'event' must be a non-empty string"
    p = event.get("properties")
    if not isinstance(p, dict):
        return "properties", "'properties' must be an object"
    stamp = p.get("time")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return "properties.time", "'properties.time' is required"
    seconds = stamp / 1000 if stamp > 1e11 else stamp
    if seconds < 31_536_000 or seconds > time.time() + 3600:
        return "properties.time", "'properties.time' is before 1971 or more than 1 hour in the future"
    distinct = p.get("distinct_id")
    if not isinstance(distinct, str) or distinct.lower() in PLACEHOLDERS:
        return "properties.distinct_id", "'properties.distinct_id' is missing or a placeholder"
    insert_id = p.get("$insert_id")
    if (
        not isinstance(insert_id, str)
        or not INSERT_ID.fullmatch(insert_id)
        or insert_id.lower() in PLACEHOLDERS
    ):
        return "properties.$insert_id", "'$insert_id' must be ≤ 36 chars of [A-Za-z0-9-]"
    return None
