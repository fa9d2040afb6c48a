"""Fake Mailchimp Marketing API v3 (members by subscriber hash, tags, archive, permanent delete).

Enforces: HTTP Basic with the API key as password (or a Bearer token); the path's subscriber hash must
equal md5(lower(email_address)); a valid email; `status_if_new` (or `status`) for new members; no
resubscribing an unsubscribed/cleaned member via `status` ("Member In Compliance State"); no re-adding
a permanently deleted address ("Forgotten Email Not Subscribed"); at most 10 simultaneous connections.
Errors are application/problem+json.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATUSES = {"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}
PROBLEM_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"


def problem(status: int, title: str, detail: str) -> web.Response:
    body = {
        "type": PROBLEM_TYPE,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/problem+json")


def md5_lower(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


class FakeMailchimp(FakeServer):
    uses_tokens = False
    api_key = "0123456789abcdef0123456789abcdef-us6"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_connections", 10)
        super().__init__(**kwargs)
        self.lists: dict[str, dict[str, dict[str, Any]]] = {}
        self.forgotten: set[str] = set()

    def add_list(self, list_id: str) -> None:
        self.lists[list_id] = {}

    def add_member(self, list_id: str, email: str, status: str, tags: set[str] | None = None) -> None:
        member = {"email_address": email, "status": status, "merge_fields": {}, "tags": set(tags or ())}
        self.lists[list_id][md5_lower(email)] = member

    def tagged(self, list_id: str, tag: str) -> set[str]:
        return {m["email_address"].lower() for m in self.lists[list_id].values() if tag in m["tags"]}

    def status_of(self, list_id: str, email: str) -> str | None:
        member = self.lists[list_id].get(md5_lower(email))
        return member["status"] if member else None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        member = "/3.0/lists/{list_id}/members/{hash}"
        router.add_get("/3.0/ping", self.ping)
        router.add_get("/3.0/lists/{list_id}", self.get_list)
        router.add_put(member, self.put_member)
        router.add_patch(member, self.patch_member)
        router.add_delete(member, self.archive_member)
        router.add_post(member + "/tags", self.post_tags)
        router.add_post(member + "/actions/delete-permanent", self.delete_permanent)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        detail = "You have exceeded the limit of 10 simultaneous connections."
        return problem(429, "Too Many Requests", detail)

    def server_error_response(self) -> web.StreamResponse:
        return problem(500, "Internal Server Error", "An unexpected internal error has occurred.")

    def echo_response(self, text: str) -> web.StreamResponse:
        return problem(400, "Invalid Resource", text)

    def auth_error_response(self) -> web.StreamResponse:
        return problem(
            401,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
        )

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                _, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return password == self.api_key
        return self.bearer_ok(request)

    def _prelude(self, request: web.Request, *, member: bool) -> web.Response | dict[str, dict[str, Any]]:
        if not self._authorised(request):
            return self.auth_error_response()  # type: ignore[return-value]
        members = self.lists.get(request.match_info["list_id"])
        if members is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        if member and request.match_info["hash"] not in members and request.method != "PUT":
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        return members

    async def ping(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self.auth_error_response()
        return web.json_response({"health_status": "Everything's Chimpy!"})

    async def get_list(self, request: web.Request) -> web.StreamResponse:
        members = self._prelude(request, member=False)
        if isinstance(members, web.Response):
            return members
        return web.json_response(
            {
                "id": request.match_info["list_id"],
                "name": "Fake list",
                "stats": {"member_count": len(members)},
            }
        )

    async def put_member(self, request: web.Request) -> web.StreamResponse:
        members = self._prelude(request, member=True)
        if isinstance(members, web.Response):
            return members
        body = orjson.loads(await request.read() or b"{}")
        email = str(body.get("email_address", ""))
        if not EMAIL.match(email.strip()):
            return problem(400, "Invalid Resource", "Please provide a valid email address.")
        if email.strip().lower() in self.refused:
            detail = f"{email} looks fake or invalid, please enter a real email address."
            return problem(400, "Invalid Resource", detail)
        if md5_lower(email) != request.match_info["hash"]:
            return problem(
                400, "Invalid Resource", "The subscriber hash in the URL does not match email_address."
            )
        if md5_lower(email) in self.forgotten:
            return problem(
                400,
                "Forgotten Email Not Subscribed",
                f"{email} was permanently deleted and cannot be re-imported.",
            )
        existing = members.get(request.match_info["hash"])
        outcome = self._upsert(existing, body, email)
        if isinstance(outcome, web.Response):
            return outcome
        members[request.match_info["hash"]] = outcome
        return web.json_response(member_json(request.match_info["hash"], outcome))

    def _upsert(
        self, existing: dict[str, Any] | None, body: dict[str, Any], email: str
    ) -> web.Response | dict[str, Any]:
        status = body.get("status") or (None if existing else body.get("status_if_new"))
        if existing is None and status is None:
            return problem(
                400,
                "Invalid Resource",
                "The resource submitted could not be validated: status_if_new is required.",
            )
        if status is not None and status not in STATUSES:
            return problem(400, "Invalid Resource", f"Invalid status {status!r}.")
        if existing and status == "subscribed" and existing["status"] in ("unsubscribed", "cleaned"):
            return problem(
                400,
                "Member In Compliance State",
                f"{email} is in a compliance state; use pending to resubscribe.",
            )
        merged = dict(existing or {"tags": set(), "merge_fields": {}})
        merged["email_address"] = email
        merged["status"] = status or merged["status"]
        merged["merge_fields"] = {**merged["merge_fields"], **(body.get("merge_fields") or {})}
        return merged

    async def patch_member(self, request: web.Request) -> web.StreamResponse:
        members = self._prelude(request, member=True)
        if isinstance(members, web.Response):
            return members
        body = orjson.loads(await request.read() or b"{}")
        member = members[request.match_info["hash"]]
        outcome = self._upsert(member, body, member["email_address"])
        if isinstance(outcome, web.Response):
            return outcome
        members[request.match_info["hash"]] = outcome
        return web.json_response(member_json(request.match_info["hash"], outcome))

    async def post_tags(self, request: web.Request) -> web.StreamResponse:
        members = self._prelude(request, member=True)
        if isinstance(members, web.Response):
            return members
        tags = orjson.loads(await request.read() or b"{}").get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, dict) and t.get("name") for t in tags):
            return problem(400, "Invalid Resource", "tags must be a list of {name, status}.")
        if any(t.get("status") not in ("active", "inactive") for t in tags):
            return problem(400, "Invalid Resource", "tag status must be active or inactive.")
        member_tags = members[request.match_info["hash"]]["tags"]
        for tag in tags:
            (member_tags.add if tag["status"] == "active" else member_tags.discard)(tag["name"])
        return web.Response(status=204)

    async def archive_member(self, request: web.Request) -> web.StreamResponse:
        members = self._prelude(request, member=True)
        if isinstance(members, web.Response):
            return members
        members[request.match_info["hash"]]["status"] = "archived"
        members[request.match_info["hash"]]["tags"] = set()
        return web.Response(status=204)

    async def delete_permanent(self, request: web.Request) -> web.StreamResponse:
        members = self._prelude(request, member=True)
        if isinstance(members, web.Response):
            return members
        del members[request.match_info["hash"]]
        self.forgotten.add(request.match_info["hash"])
        return web.Response(status=204)


def member_json(subscriber_hash: str, member: dict[str, Any]) -> dict[str, Any]:
    tags = [{"id": i, "name": name} for i, name in enumerate(sorted(member["tags"]))]
    return {
        "id": subscriber_hash,
        "email_address": member["email_address"],
        "status": member["status"],
        "merge_fields": member["merge_fields"],
        "tags": tags,
    }
