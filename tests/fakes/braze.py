"""Fake Braze REST API: /users/track (attributes) and /users/delete. Rules it enforces are listed in
activation/destinations/README.md (Braze)."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
IDENTIFIERS = ("external_id", "user_alias", "braze_id", "email", "phone")
DELETE_KEYS = ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")
MAX_OBJECTS = 75
MAX_DELETE = 50
MAX_KEY = 255


def message(status: int, text: str, **headers: str) -> web.Response:
    return web.json_response({"message": text}, status=status, headers=headers)


class FakeBraze(FakeServer):
    uses_tokens = False
    api_key = "braze-rest-key-0123"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.users: dict[tuple[str, str], dict[str, Any]] = {}  # (identifier kind, value) → attributes
        self.deleted: list[tuple[str, str]] = []

    def holding(self, attribute: str, kind: str = "external_id") -> set[str]:
        return {
            value for (k, value), attrs in self.users.items() if k == kind and attrs.get(attribute) is True
        }

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/users/track", self.track)
        router.add_post("/users/delete", self.delete)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        reset = str(int(time.time() + float(fault.params.get("retry_after_s", 3))))
        return message(
            429,
            "Rate limit exceeded",
            **{"X-RateLimit-Limit": "3000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
        )

    def server_error_response(self) -> web.StreamResponse:
        return message(500, "Internal Server Error")

    def auth_error_response(self) -> web.StreamResponse:
        return message(401, "Invalid API key")

    def echo_response(self, text: str) -> web.StreamResponse:
        return message(403, text)

    async def _json(self, request: web.Request) -> tuple[web.Response | None, dict[str, Any]]:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.auth_error_response(), {}  # type: ignore[return-value]
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return message(400, "Invalid JSON"), {}
        return (None, body) if isinstance(body, dict) else (message(400, "Invalid JSON"), {})

    async def track(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._json(request)
        if problem is not None:
            return problem
        arrays = [body.get(k, []) for k in ("attributes", "events", "purchases")]
        if not all(isinstance(a, list) for a in arrays) or not any(arrays):
            return message(400, "attributes, events or purchases must be a non-empty array")
        if sum(map(len, arrays)) > MAX_OBJECTS:
            return message(400, f"A maximum of {MAX_OBJECTS} objects combined may be sent per request")
        errors = []
        for index, obj in enumerate(arrays[0]):
            problem_type = self._attribute_problem(obj)
            if problem_type is None:
                self._apply(obj)
            else:
                errors.append({"type": problem_type, "input_array": "attributes", "index": index})
        answer: dict[str, Any] = {"message": "success", "attributes_processed": len(arrays[0]) - len(errors)}
        return web.json_response({**answer, "errors": errors} if errors else answer, status=201)

    def _attribute_problem(self, obj: Any) -> str | None:
        if not isinstance(obj, dict):
            return "attributes must be objects"
        present = [k for k in IDENTIFIERS if k in obj]
        if len(present) != 1:
            return "exactly one of 'external_id', 'user_alias', 'braze_id', 'email' or 'phone' is required"
        value = obj[present[0]]
        if not isinstance(value, str) or not value or (present[0] == "email" and not EMAIL.match(value)):
            return f"'{present[0]}' is invalid"
        if value.lower() in self.refused or value in self.refused:
            return f"'{present[0]}' {value} is blocklisted"
        bad_keys = [k for k in obj if k.startswith("$") or len(k) > MAX_KEY]
        return f"invalid attribute name {bad_keys[0][:40]}" if bad_keys else None

    def _apply(self, obj: dict[str, Any]) -> None:
        kind = next(k for k in IDENTIFIERS if k in obj)
        key = (kind, obj[kind].lower() if kind == "email" else obj[kind])
        update_only = obj.get("_update_existing_only", kind == "user_alias")  # (unverified default)
        if update_only and key not in self.users:
            return
        attrs = self.users.setdefault(key, {})
        attrs.update({k: v for k, v in obj.items() if k not in IDENTIFIERS and not k.startswith("_")})

    async def delete(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._json(request)
        if problem is not None:
            return problem
        present = [k for k in DELETE_KEYS if k in body]
        if len(present) != 1:
            return message(400, "exactly one of " + ", ".join(DELETE_KEYS) + " may be given")
        values = body[present[0]]
        if not isinstance(values, list) or not 1 <= len(values) <= MAX_DELETE:
            return message(400, f"{present[0]} must hold between 1 and {MAX_DELETE} values")
        kind = {"external_ids": "external_id", "email_addresses": "email"}.get(present[0], present[0])
        deleted = 0
        for value in values:
            key = (kind, str(value).lower() if kind == "email" else str(value))
            if self.users.pop(key, None) is not None:
                deleted += 1
            self.deleted.append(key)
        return web.json_response({"deleted": deleted, "message": "success"}, status=201)
