"""Fake Klaviyo JSON:API: bulk profile import onto lists, profile lookup by filter, list relationship
removal, data-privacy deletion jobs. Rules it enforces are listed in activation/destinations/README.md."""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

EMAIL = re.compile(r"^[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
FILTER = re.compile(
    r'^any\((email|phone_number),\[((?:"[^"\\]*",?)+)\]\)$|^equals\((email|phone_number),"([^"\\]*)"\)$'
)
REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
JSON_API = "application/vnd.api+json"
MAX_PROFILES = 10_000
MAX_BYTES = 5_000_000
MAX_RELATIONSHIPS = 1000
MAX_PAGE = 100


def kl_error(
    status: int, code: str, detail: str, pointer: str | None = None, **headers: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": secrets.token_hex(8),
        "status": status,
        "code": code,
        "title": code,
        "detail": detail,
    }
    if pointer is not None:
        entry["source"] = {"pointer": pointer}
    return entry


def errors(status: int, *entries: dict[str, Any], **headers: str) -> web.Response:
    body = orjson.dumps({"errors": list(entries)})
    return web.Response(status=status, body=body, content_type=JSON_API, headers=headers)


def one_error(status: int, code: str, detail: str, **headers: str) -> web.Response:
    return errors(status, kl_error(status, code, detail), **headers)


class FakeKlaviyo(FakeServer):
    uses_tokens = False
    api_key = "pk_fake0123456789"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.profiles: dict[str, dict[str, Any]] = {}  # profile id → attributes
        self.lists: dict[str, set[str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deletion_requests: list[dict[str, str]] = []

    def add_list(self, list_id: str) -> None:
        self.lists[list_id] = set()

    def list_emails(self, list_id: str) -> set[str]:
        return {str(self.profiles[p].get("email")) for p in self.lists[list_id] if p in self.profiles}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/profile-bulk-import-jobs", self.bulk_import)
        router.add_get("/api/profiles", self.get_profiles)
        router.add_get("/api/lists/{id}", self.get_list)
        router.add_delete("/api/lists/{id}/relationships/profiles", self.remove_profiles)
        router.add_post("/api/data-privacy-deletion-jobs", self.deletion_job)

    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        wait = str(int(fault.params.get("retry_after_s", 1)))
        detail = f"Request was throttled. Expected available in {wait} second."
        return one_error(429, "throttled", detail, **{"Retry-After": wait})

    def server_error_response(self) -> web.StreamResponse:
        return one_error(500, "error", "A server error occurred.")

    def auth_error_response(self) -> web.StreamResponse:
        return one_error(401, "not_authenticated", "Incorrect authentication credentials.")

    def echo_response(self, text: str) -> web.StreamResponse:
        return one_error(403, "permission_denied", text)

    async def _check(self, request: web.Request, *, body: bool) -> tuple[web.StreamResponse | None, Any]:
        if request.headers.get("Authorization") != f"Klaviyo-API-Key {self.api_key}":
            return self.auth_error_response(), None
        if not REVISION.match(request.headers.get("revision", "")):
            return one_error(400, "invalid", "A valid revision header is required (YYYY-MM-DD)."), None
        if not body:
            return None, None
        if request.content_type != JSON_API:
            return one_error(415, "unsupported_media_type", f"Content-Type must be {JSON_API}"), None
        raw = await request.read()
        if len(raw) > MAX_BYTES:
            return one_error(413, "payload_too_large", "Payload exceeds 5 MB"), None
        try:
            return None, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return one_error(400, "invalid", "Malformed JSON"), None

    async def bulk_import(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._check(request, body=True)
        if problem is not None:
            return problem
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("type") != "profile-bulk-import-job":
            return one_error(400, "invalid", "data.type must be profile-bulk-import-job")
        profiles = data.get("attributes", {}).get("profiles", {}).get("data")
        if not isinstance(profiles, list) or not 1 <= len(profiles) <= MAX_PROFILES:
            return one_error(400, "invalid", f"profiles must hold between 1 and {MAX_PROFILES} profiles")
        lists = [str(x.get("id")) for x in data.get("relationships", {}).get("lists", {}).get("data", [])]
        if any(list_id not in self.lists for list_id in lists):
            return one_error(404, "not_found", "A list in relationships.lists does not exist.")
        problems = [p for i, profile in enumerate(profiles) if (p := self._profile_problem(i, profile))]
        if problems:  # nothing is imported when any profile is invalid
            return errors(400, *problems)
        ids = [self._upsert(profile["attributes"]) for profile in profiles]
        for list_id in lists:
            self.lists[list_id].update(ids)
        job_id = secrets.token_hex(10)
        self.jobs[job_id] = {"status": "complete", "total_count": len(ids), "failed_count": 0}
        answer = {
            "type": "profile-bulk-import-job",
            "id": job_id,
            "attributes": {"status": "queued", "total_count": len(ids)},
        }
        return web.Response(status=202, body=orjson.dumps({"data": answer}), content_type=JSON_API)

    def _profile_problem(self, index: int, profile: Any) -> dict[str, Any] | None:
        pointer = f"/data/attributes/profiles/data/{index}"
        attrs = profile.get("attributes") if isinstance(profile, dict) else None
        if not isinstance(profile, dict) or profile.get("type") != "profile" or not isinstance(attrs, dict):
            return kl_error(400, "invalid", "Each profile must be {type: profile, attributes}", pointer)
        email, phone = attrs.get("email"), attrs.get("phone_number")
        if email is None and phone is None and not attrs.get("external_id"):
            return kl_error(400, "invalid", "One of email, phone_number or external_id is required", pointer)
        if email is not None and (not EMAIL.match(str(email)) or str(email).lower() in self.refused):
            return kl_error(400, "invalid", f"Invalid email address {email}", pointer + "/attributes/email")
        if phone is not None and not E164.match(str(phone)):
            return kl_error(
                400, "invalid", "Invalid phone number format (E.164)", pointer + "/attributes/phone_number"
            )
        return None

    def _upsert(self, attrs: dict[str, Any]) -> str:
        for key in ("email", "phone_number", "external_id"):
            value = attrs.get(key)
            existing = next((pid for pid, p in self.profiles.items() if value and p.get(key) == value), None)
            if existing:
                self.profiles[existing].update(attrs)
                return existing
        profile_id = "01" + secrets.token_hex(12).upper()
        self.profiles[profile_id] = dict(attrs)
        return profile_id

    async def get_profiles(self, request: web.Request) -> web.StreamResponse:
        problem, _ = await self._check(request, body=False)
        if problem is not None:
            return problem
        match = FILTER.match(request.query.get("filter", ""))
        size = request.query.get("page[size]", "20")
        if match is None:
            return one_error(400, "invalid", "Invalid filter provided")
        if not size.isdigit() or not 1 <= int(size) <= MAX_PAGE:
            return one_error(400, "invalid", f"page[size] must be between 1 and {MAX_PAGE}")
        field = match.group(1) or match.group(3)
        values = set(re.findall(r'"([^"]*)"', match.group(2))) if match.group(1) else {match.group(4)}
        found = [pid for pid, p in self.profiles.items() if p.get(field) in values]
        start = int(request.query.get("page[cursor]", "0"))
        page = found[start : start + int(size)]
        following = None
        if start + int(size) < len(found):
            query = {**request.query, "page[cursor]": str(start + int(size))}
            following = str(request.url.with_query(query))
        data = [
            {"type": "profile", "id": pid, "attributes": {field: self.profiles[pid].get(field)}}
            for pid in page
        ]
        return web.json_response({"data": data, "links": {"self": str(request.url), "next": following}})

    async def get_list(self, request: web.Request) -> web.StreamResponse:
        problem, _ = await self._check(request, body=False)
        if problem is not None:
            return problem
        if request.match_info["id"] not in self.lists:
            return one_error(404, "not_found", "A list with id was not found.")
        return web.json_response(
            {"data": {"type": "list", "id": request.match_info["id"], "attributes": {"name": "Fake"}}}
        )

    async def remove_profiles(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._check(request, body=True)
        if problem is not None:
            return problem
        if request.match_info["id"] not in self.lists:
            return one_error(404, "not_found", "A list with id was not found.")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_RELATIONSHIPS:
            return one_error(400, "invalid", f"data must hold between 1 and {MAX_RELATIONSHIPS} profiles")
        if any(not isinstance(d, dict) or d.get("type") != "profile" or not d.get("id") for d in data):
            return one_error(400, "invalid", "data items must be {type: profile, id}")
        self.lists[request.match_info["id"]].difference_update(str(d["id"]) for d in data)
        return web.Response(status=204)

    async def deletion_job(self, request: web.Request) -> web.StreamResponse:
        problem, body = await self._check(request, body=True)
        if problem is not None:
            return problem
        data = body.get("data", {}) if isinstance(body, dict) else {}
        attrs = data.get("attributes", {}).get("profile", {}).get("data", {}).get("attributes", {})
        if data.get("type") != "data-privacy-deletion-job" or len(attrs) != 1:
            return one_error(
                400, "invalid", "exactly one of email, phone_number or id identifies the profile"
            )
        self.deletion_requests.append(dict(attrs))
        ((field, value),) = attrs.items()
        self.profiles = {pid: p for pid, p in self.profiles.items() if p.get(field) != value}
        return web.Response(status=202)
