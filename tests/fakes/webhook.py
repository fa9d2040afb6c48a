"""Fake webhook receiver that verifies Standard Webhooks signatures the way a careful consumer does.

Checks: webhook-id / webhook-timestamp / webhook-signature present; timestamp within 5 minutes; at
least one `v1,<base64>` entry equal (constant-time) to HMAC-SHA256(key, "{id}.{ts}.{raw body}") with the
key base64-decoded from `whsec_…`; a JSON body `{"audience", "entered", "exited"}` with member objects.
A repeated webhook-id is acknowledged but not applied again. Keeps membership per audience.
Event forwarding bodies `{"events": [<Segment-shaped events>]}` (connections) are checked too: each
event an object with a string `messageId` and `type`; applied events are kept in arrival order in
`events`, with `event_counts` per messageId (a refused messageId answers 422 for the request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

TOLERANCE_S = 300
PATH = "/hooks/magpie"


class FakeWebhookReceiver(FakeServer):
    uses_tokens = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = secrets.token_bytes(32)
        self.secret = "whsec_" + base64.b64encode(self.key).decode()
        self.members: dict[str, set[str]] = {}
        self.seen_ids: set[str] = set()
        self.duplicates = 0
        self.rejections: list[str] = []
        self.deliveries: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.event_counts: dict[str, int] = {}
        self.deletions: list[dict[str, Any]] = []  # identifiers of each signed deletion notice

    @property
    def url(self) -> str:
        return self.base_url + PATH

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self.receive)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        retry_after = str(fault.params.get("retry_after_s", 7))
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": retry_after})

    def server_error_response(self) -> web.StreamResponse:
        return web.json_response({"error": "receiver failed"}, status=500)

    def echo_response(self, text: str) -> web.StreamResponse:
        return web.json_response({"error": text}, status=422)

    def auth_error_response(self) -> web.StreamResponse:
        return web.json_response({"error": "unauthorised"}, status=401)

    async def custom_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "gone":
            return web.json_response({"error": "endpoint disabled"}, status=410)
        return None

    def _reject(self, reason: str) -> web.Response:
        self.rejections.append(reason)
        return web.json_response({"error": reason}, status=401 if "signature" in reason else 400)

    def verify(self, headers: Any, body: bytes) -> str | None:
        msg_id, stamp, signatures = (
            headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
        )
        if not msg_id or not stamp or not signatures:
            return "missing webhook headers"
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE_S:
            return "timestamp outside tolerance"
        expected = base64.b64encode(
            hmac.new(self.key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        )
        for entry in signatures.split(" "):
            version, _, value = entry.partition(",")
            if version == "v1" and hmac.compare_digest(value.encode(), expected):
                return None
        return "invalid signature"

    async def receive(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        problem = self.verify(request.headers, body)
        if problem is not None:
            return self._reject(problem)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._reject("body is not JSON")
        if isinstance(payload, dict) and payload.get("type") == "deletion":
            return self._deletion(request.headers["webhook-id"], payload)
        if isinstance(payload, dict) and "events" in payload:
            return self._receive_events(request.headers["webhook-id"], payload)
        shape = check_shape(payload)
        if shape is not None:
            return self._reject(shape)
        members = [m["profile_id"] for key in ("entered", "exited") for m in payload[key]]
        if set(members) & self.refused:
            self.rejections.append("refused member")
            return web.json_response({"error": "unprocessable member"}, status=422)
        msg_id = request.headers["webhook-id"]
        if msg_id in self.seen_ids:
            self.duplicates += 1
            return web.Response(status=204)
        self.seen_ids.add(msg_id)
        self.deliveries.append(payload)
        audience = self.members.setdefault(payload["audience"], set())
        audience.update(m["profile_id"] for m in payload["entered"])
        audience.difference_update(m["profile_id"] for m in payload["exited"])
        return web.Response(status=204)

    def _deletion(self, msg_id: str, payload: dict[str, Any]) -> web.StreamResponse:
        """A privacy notice `{"type": "deletion", "identifiers": {type: [string, ...]}}`."""
        identifiers = payload.get("identifiers")
        if not isinstance(identifiers, dict) or not identifiers:
            return self._reject("deletion needs identifiers: {type: [values]}")
        ok = all(
            isinstance(v, list) and v and all(isinstance(x, str) for x in v) for v in identifiers.values()
        )
        if not ok or set(payload) != {"type", "identifiers"}:
            return self._reject("deletion needs identifiers: {type: [values]}")
        if msg_id not in self.seen_ids:
            self.seen_ids.add(msg_id)
            self.deletions.append(identifiers)
        return web.Response(status=204)

    def _receive_events(self, msg_id: str, payload: dict[str, Any]) -> web.StreamResponse:
        problem = check_events_shape(payload)
        if problem is not None:
            return self._reject(problem)
        if {e["messageId"] for e in payload["events"]} & self.refused:
            self.rejections.append("refused event")
            return web.json_response({"error": "unprocessable event"}, status=422)
        if msg_id in self.seen_ids:
            self.duplicates += 1
            return web.Response(status=204)
        self.seen_ids.add(msg_id)
        self.deliveries.append(payload)
        for event in payload["events"]:
            self.events.append(event)
            self.event_counts[event["messageId"]] = self.event_counts.get(event["messageId"], 0) + 1
        return web.Response(status=204)


def check_events_shape(payload: dict[str, Any]) -> str | None:
    events = payload.get("events")
    if set(payload) != {"events"} or not isinstance(events, list) or not events:
        return 'body must be {"events": [...]} with at least one event'
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("messageId"), str):
            return "events[] need a messageId"
        if event.get("type") not in ("track", "page", "screen", "identify", "group", "alias"):
            return "events[] need a Segment type"
    return None


def check_shape(payload: Any) -> str | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("audience"), str):
        return "audience must be a string"
    for key in ("entered", "exited"):
        members = payload.get(key)
        if not isinstance(members, list):
            return f"{key} must be a list"
        for member in members:
            if not isinstance(member, dict) or not isinstance(member.get("profile_id"), str):
                return f"{key}[] needs a profile_id"
            if not isinstance(member.get("identifiers"), dict) or not isinstance(member.get("traits"), dict):
                return f"{key}[] needs identifiers and traits objects"
    return None
