"""Fake SendGrid Marketing Contacts API: contact upsert onto lists, search by emails, list removal,
contact deletion. Rules it enforces are listed in activation/destinations/README.md (SendGrid)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

EMAIL = re.compile(r"^[^@\s']+@[^@\s']+\.[^@\s']+$")
MAX_CONTACTS = 30_000
MAX_BYTES = 6_000_000
MAX_SEARCH = 100
MAX_IDS = 100


def sg_error(status: int, message: str, field: str | None = None, **headers: str) -> web.Response:
    body = {"errors": [{"field": field, "message": message}]}
    return web.json_response(body, status=status, headers=headers)


class FakeSendGrid(FakeServer):
    uses_tokens = False
    api_key = "SG.fake-key.0123456789"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lists: set[str] = set()
        self.contacts: dict[str, dict[str, Any]] = {}  # lower-cased email → contact

    def add_list(self, list_id: str) -> None:
        self.lists.add(list_id)

    def list_emails(self, list_id: str) -> set[str]:
        return {email for email, c in self.contacts.items() if list_id in c["list_ids"]}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_put("/v3/marketing/contacts", self.upsert)
        router.add_delete("/v3/marketing/contacts", self.delete_contacts)
        router.add_post("/v3/marketing/contacts/search/emails", self.search)
        router.add_get("/v3/marketing/lists/{id}", self.get_list)
        router.add_delete("/v3/marketing/lists/{id}/contacts", self.remove_from_list)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        reset = str(int(time.time() + float(fault.params.get("retry_after_s", 3))))
        headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
        return sg_error(429, "too many requests", **headers)

    def server_error_response(self) -> web.StreamResponse:
        return sg_error(500, "internal server error")

    def auth_error_response(self) -> web.StreamResponse:
        return sg_error(401, "authorization required")

    def echo_response(self, text: str) -> web.StreamResponse:
        return sg_error(403, text)

    async def _json(self, request: web.Request) -> tuple[web.Response | None, dict[str, Any]]:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.auth_error_response(), {}  # type: ignore[return-value]
        raw = await request.read()
        if len(raw) > MAX_BYTES:
            return sg_error(413, "request body is larger than 6MB"), {}
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            return sg_error(400, "invalid JSON"), {}
        return (None, body) if isinstance(body, dict) else (sg_error(400, "invalid JSON"), {})

    async def upsert(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._json(request)
        if problem is not None:
            return problem
        contacts, list_ids = body.get("contacts"), body.get("list_ids", [])
        if not isinstance(contacts, list) or not 1 <= len(contacts) <= MAX_CONTACTS:
            return sg_error(400, f"contacts must contain between 1 and {MAX_CONTACTS} items", "contacts")
        missing = [i for i in list_ids if i not in self.lists]
        if missing:  # (unverified status) a missing list is the destination's fault, not a contact's
            return sg_error(404, f"list_ids {missing} do not exist", "list_ids")
        errors = []
        for contact in contacts:
            email = str(contact.get("email", "")) if isinstance(contact, dict) else ""
            if not EMAIL.match(email) or email.lower() in self.refused:
                errors.append({"field": "email", "message": f"email '{email}' is not valid"})
        if errors:  # one bad address refuses the whole request; nothing is applied
            return web.json_response({"errors": errors}, status=400)
        for contact in contacts:
            stored = self.contacts.setdefault(
                contact["email"].lower(), {"id": str(uuid.uuid4()), "list_ids": set()}
            )
            stored.update({k: v for k, v in contact.items() if k != "email"}, email=contact["email"].lower())
            stored["list_ids"].update(list_ids)
        return web.json_response({"job_id": str(uuid.uuid4())}, status=202)

    async def search(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._json(request)
        if problem is not None:
            return problem
        emails = body.get("emails")
        if not isinstance(emails, list) or not 1 <= len(emails) <= MAX_SEARCH:
            return sg_error(400, f"emails must contain between 1 and {MAX_SEARCH} items", "emails")
        if any(not EMAIL.match(str(e)) for e in emails):
            return sg_error(400, "one or more emails are invalid", "emails")
        result: dict[str, Any] = {}
        for email in emails:
            contact = self.contacts.get(str(email).lower())
            if contact is None:
                result[email] = {"error": "contact not found"}
            else:
                result[email] = {"contact": {**contact, "list_ids": sorted(contact["list_ids"])}}
        if all("error" in v for v in result.values()):
            return sg_error(404, "No contacts found")
        return web.json_response({"result": result})

    def _id_list(self, request: web.Request, name: str) -> tuple[web.Response | None, list[str]]:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.auth_error_response(), []  # type: ignore[return-value]
        ids = [i for i in request.query.get(name, "").split(",") if i]
        if not ids or len(ids) > MAX_IDS:
            return sg_error(400, f"{name} must list between 1 and {MAX_IDS} ids", name), []
        return None, ids

    async def remove_from_list(self, request: web.Request) -> web.StreamResponse:
        problem, ids = self._id_list(request, "contact_ids")
        if problem is not None:
            return problem
        if request.match_info["id"] not in self.lists:
            return sg_error(404, "list not found")
        for contact in self.contacts.values():
            if contact["id"] in ids:
                contact["list_ids"].discard(request.match_info["id"])
        return web.json_response({"job_id": str(uuid.uuid4())}, status=202)

    async def delete_contacts(self, request: web.Request) -> web.StreamResponse:
        problem, ids = self._id_list(request, "ids")
        if problem is not None:
            return problem
        self.contacts = {e: c for e, c in self.contacts.items() if c["id"] not in ids}
        return web.json_response({"job_id": str(uuid.uuid4())}, status=202)

    async def get_list(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.auth_error_response()
        if request.match_info["id"] not in self.lists:
            return sg_error(404, "list not found")
        count = len(self.list_emails(request.match_info["id"]))
        return web.json_response({"id": request.match_info["id"], "name": "Fake", "contact_count": count})
