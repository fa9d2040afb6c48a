"""Fake Google Ads API: OfflineUserDataJobService (create, addOperations, run), search, OAuth token.

Enforces: Bearer token + developer-token headers, digits-only customer ids, the job → add → run order,
one oneof field per UserIdentifier, 64-char lower-case hex in hashed fields, plain-text country and
postal codes, ≤ 20 identifiers per operation and ≤ 100,000 per request, the list's upload key type.
Membership changes only when a job runs. Errors use the google.rpc.Status / GoogleAdsFailure shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeServer, Fault

HEX64 = re.compile(r"^[0-9a-f]{64}$")
KEY_TYPE_FIELDS = {
    "CONTACT_INFO": {"hashedEmail", "hashedPhoneNumber", "addressInfo"},
    "CRM_ID": {"thirdPartyUserId"},
    "MOBILE_ADVERTISING_ID": {"mobileId"},
}
ONEOF = {"hashedEmail", "hashedPhoneNumber", "addressInfo", "thirdPartyUserId", "mobileId"}
FAILURE_TYPE = "type.googleapis.com/google.ads.googleads.v23.errors.GoogleAdsFailure"


@dataclass
class UserList:
    customer_id: str
    list_id: str
    upload_key_type: str = "CONTACT_INFO"
    members: set[str] = field(default_factory=set)


@dataclass
class Job:
    resource_name: str
    user_list: UserList
    status: str = "PENDING"
    operations: list[tuple[str, list[str]]] = field(default_factory=list)


def ads_error(http: int, status: str, errors: list[dict[str, Any]], message: str) -> web.Response:
    body = {"error": {"code": http, "message": message, "status": status, "details": [failure(errors)]}}
    return web.json_response(body, status=http)


def failure(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@type": FAILURE_TYPE, "errors": errors, "requestId": "fake-request"}


def error_entry(kind: str, code: str, message: str, index: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"errorCode": {kind: code}, "message": message}
    if index is not None:
        entry["location"] = {"fieldPathElements": [{"fieldName": "operations", "index": index}]}
    return entry


class FakeGoogleAds(FakeServer):
    developer_token = "dev-token"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lists: dict[str, UserList] = {}
        self.jobs: dict[str, Job] = {}
        self.login_customer_id: str | None = None

    def add_user_list(
        self, customer_id: str, list_id: str, upload_key_type: str = "CONTACT_INFO"
    ) -> UserList:
        user_list = UserList(customer_id, list_id, upload_key_type)
        self.lists[f"customers/{customer_id}/userLists/{list_id}"] = user_list
        return user_list

    def members(self, customer_id: str, list_id: str, prefix: str = "email:") -> set[str]:
        found = self.lists[f"customers/{customer_id}/userLists/{list_id}"].members
        return {m[len(prefix) :] for m in found if m.startswith(prefix)}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        base = r"/{version:v\d+}/customers/{cid:[^/:]+}"
        router.add_post(base + "/offlineUserDataJobs:create", self.create_job)
        router.add_post(base + r"/offlineUserDataJobs/{job:\d+}:addOperations", self.add_operations)
        router.add_post(base + r"/offlineUserDataJobs/{job:\d+}:run", self.run_job)
        router.add_post(base + "/googleAds:search", self.search)
        router.add_post("/token", self.token_endpoint)

    # -- faults --------------------------------------------------------------------------------------
    def throttle_response(self, fault: Fault) -> web.StreamResponse:
        delay = fault.params.get("retry_delay_s", 30)
        entry = error_entry(
            "quotaError", "RESOURCE_EXHAUSTED", f"Too many requests. Retry in {delay} seconds."
        )
        entry["details"] = {"quotaErrorDetails": {"rateScope": "ACCOUNT", "retryDelay": f"{delay}s"}}
        return ads_error(
            429, "RESOURCE_EXHAUSTED", [entry], "Resource has been exhausted (e.g. check quota)."
        )

    def server_error_response(self) -> web.StreamResponse:
        entry = error_entry("internalError", "INTERNAL_ERROR", "An internal error has occurred.")
        return ads_error(500, "INTERNAL", [entry], "Internal error encountered.")

    def auth_error_response(self) -> web.StreamResponse:
        entry = error_entry("authenticationError", "OAUTH_TOKEN_EXPIRED", "Authentication token expired.")
        return ads_error(401, "UNAUTHENTICATED", [entry], "Request had invalid authentication credentials.")

    def echo_response(self, text: str) -> web.StreamResponse:
        entry = error_entry("authorizationError", "USER_PERMISSION_DENIED", text)
        return ads_error(403, "PERMISSION_DENIED", [entry], text)

    async def custom_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "concurrent_modification":
            entry = error_entry(
                "databaseError", "CONCURRENT_MODIFICATION", "Multiple requests modified the list."
            )
            return ads_error(400, "INVALID_ARGUMENT", [entry], "Request contains an invalid argument.")
        return None

    # -- handlers ------------------------------------------------------------------------------------
    def _check_headers(self, request: web.Request) -> web.StreamResponse | None:
        if not self.bearer_ok(request):
            return self.auth_error_response()
        if request.headers.get("developer-token") != self.developer_token:
            entry = error_entry(
                "authorizationError", "DEVELOPER_TOKEN_PROHIBITED", "Developer token invalid."
            )
            return ads_error(403, "PERMISSION_DENIED", [entry], "The caller does not have permission")
        cid = request.match_info["cid"]
        login = request.headers.get("login-customer-id")
        if not cid.isdigit() or (login is not None and not login.isdigit()):
            entry = error_entry("requestError", "INVALID_CUSTOMER_ID", "Customer id must be digits only.")
            return ads_error(400, "INVALID_ARGUMENT", [entry], "Request contains an invalid argument.")
        if self.login_customer_id is not None and login != self.login_customer_id:
            entry = error_entry("authorizationError", "USER_PERMISSION_DENIED", "login-customer-id required.")
            return ads_error(403, "PERMISSION_DENIED", [entry], "The caller does not have permission")
        return None

    async def _json(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None
        return body if isinstance(body, dict) else None

    def _invalid(self, message: str, kind: str = "requestError", code: str = "INVALID_INPUT") -> web.Response:
        return ads_error(400, "INVALID_ARGUMENT", [error_entry(kind, code, message)], message)

    async def create_job(self, request: web.Request) -> web.StreamResponse:
        problem = self._check_headers(request)
        if problem is not None:
            return problem
        body = await self._json(request) or {}
        job = body.get("job") or {}
        metadata = job.get("customerMatchUserListMetadata") or {}
        user_list = self.lists.get(metadata.get("userList", ""))
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST" or user_list is None:
            return self._invalid("job.type or customerMatchUserListMetadata.userList is invalid")
        if user_list.customer_id != request.match_info["cid"]:
            return self._invalid("user list belongs to another customer")
        consent = metadata.get("consent") or {}
        if any(v not in ("GRANTED", "DENIED", "UNSPECIFIED") for v in consent.values()):
            return self._invalid("consent values must be GRANTED, DENIED or UNSPECIFIED")
        name = f"customers/{request.match_info['cid']}/offlineUserDataJobs/{self.next_id()}"
        self.jobs[name] = Job(name, user_list)
        return web.json_response({"resourceName": name})

    def _job(self, request: web.Request) -> Job | None:
        return self.jobs.get(
            f"customers/{request.match_info['cid']}/offlineUserDataJobs/{request.match_info['job']}"
        )

    async def add_operations(self, request: web.Request) -> web.StreamResponse:
        problem = self._check_headers(request)
        if problem is not None:
            return problem
        job, body = self._job(request), await self._json(request)
        if job is None:
            return ads_error(
                404, "NOT_FOUND", [error_entry("mutateError", "RESOURCE_NOT_FOUND", "No job")], "Not found"
            )
        if job.status != "PENDING":
            return self._invalid("job already started", "offlineUserDataJobError", "INVALID_JOB_STATE")
        operations = (body or {}).get("operations")
        if not isinstance(operations, list) or not operations:
            return self._invalid("operations must be a non-empty list")
        too_many = self._too_many(operations)
        if too_many is not None:
            return too_many
        errors = [
            e for i, op in enumerate(operations) if (e := self._check_op(i, op, job.user_list)) is not None
        ]
        if errors and not (body or {}).get("enablePartialFailure"):
            return ads_error(400, "INVALID_ARGUMENT", errors, "Request contains an invalid argument.")
        bad = {e["location"]["fieldPathElements"][0]["index"] for e in errors}
        for index, op in enumerate(operations):
            if index not in bad:
                kind = "create" if "create" in op else "remove"
                job.operations.append((kind, [identifier_key(i) for i in op[kind]["userIdentifiers"]]))
        if not errors:
            return web.json_response({})
        status = {"code": 3, "message": f"{len(errors)} operations failed", "details": [failure(errors)]}
        return web.json_response({"partialFailureError": status})

    def _too_many(self, operations: list[Any]) -> web.Response | None:
        counts = [
            len((next(iter(op.values()), None) or {}).get("userIdentifiers", []))
            for op in operations
            if isinstance(op, dict)
        ]
        if sum(counts) > 100_000 or any(c > 20 for c in counts):
            message = (
                "Maximum number of user identifiers allowed per request is 100,000 and per operation is 20"
            )
            return self._invalid(message, "userDataError", "TOO_MANY_USER_IDENTIFIERS")
        return None

    def _check_op(self, index: int, op: Any, user_list: UserList) -> dict[str, Any] | None:
        if not isinstance(op, dict) or len(op) != 1 or next(iter(op)) not in ("create", "remove"):
            return error_entry(
                "requestError", "INVALID_INPUT", "operation must set exactly one of create/remove", index
            )
        identifiers = (
            op[next(iter(op))].get("userIdentifiers") if isinstance(op[next(iter(op))], dict) else None
        )
        if not isinstance(identifiers, list) or not identifiers:
            return error_entry("fieldError", "REQUIRED", "userIdentifiers is required", index)
        for ident in identifiers:
            if isinstance(ident, dict) and set(map(str, ident.values())) & self.refused:
                message = "The user identifier was rejected."
                return error_entry("offlineUserDataJobError", "INVALID_USER_IDENTIFIER", message, index)
            problem = check_identifier(ident, user_list.upload_key_type)
            if problem is not None:
                return error_entry("offlineUserDataJobError", problem[0], problem[1], index)
        return None

    async def run_job(self, request: web.Request) -> web.StreamResponse:
        problem = self._check_headers(request)
        if problem is not None:
            return problem
        job = self._job(request)
        if job is None or job.status != "PENDING":
            return self._invalid("job missing or already run", "offlineUserDataJobError", "INVALID_JOB_STATE")
        for kind, keys in job.operations:
            if kind == "create":
                job.user_list.members.update(keys)
            else:
                job.user_list.members.difference_update(keys)
        job.status = "SUCCESS"
        return web.json_response(
            {"name": f"customers/{request.match_info['cid']}/operations/{self.next_id()}"}
        )

    async def search(self, request: web.Request) -> web.StreamResponse:
        problem = self._check_headers(request)
        if problem is not None:
            return problem
        query = str((await self._json(request) or {}).get("query", ""))
        match = re.search(r"user_list\.id\s*=\s*(\d+)", query)
        name = f"customers/{request.match_info['cid']}/userLists/{match.group(1) if match else ''}"
        results = (
            [{"userList": {"resourceName": name, "id": match.group(1)}}]
            if match and name in self.lists
            else []
        )
        return web.json_response({"results": results, "fieldMask": "userList.id,userList.name"})


def check_identifier(ident: Any, upload_key_type: str) -> tuple[str, str] | None:
    if not isinstance(ident, dict) or len(ident) != 1 or next(iter(ident)) not in ONEOF:
        return "INVALID_USER_IDENTIFIER", "each UserIdentifier sets exactly one identifier field"
    name, value = next(iter(ident.items()))
    if name not in KEY_TYPE_FIELDS[upload_key_type]:
        return "INCOMPATIBLE_UPLOAD_KEY_TYPE", f"{name} does not match the list's {upload_key_type}"
    if name in ("hashedEmail", "hashedPhoneNumber"):
        return None if isinstance(value, str) and HEX64.match(value) else ("INVALID_SHA256_FORMAT", f"{name}")
    if name == "addressInfo":
        return check_address(value)
    return None if isinstance(value, str) and value.strip() else ("INVALID_USER_IDENTIFIER", name)


def check_address(info: Any) -> tuple[str, str] | None:
    if not isinstance(info, dict):
        return "INVALID_USER_IDENTIFIER", "addressInfo must be an object"
    for part in ("hashedFirstName", "hashedLastName"):
        if not HEX64.match(str(info.get(part, ""))):
            return "INVALID_SHA256_FORMAT", f"addressInfo.{part}"
    country, postal = str(info.get("countryCode", "")), str(info.get("postalCode", ""))
    if not re.fullmatch(r"[A-Z]{2}", country) or not postal or HEX64.match(postal):
        return "INVALID_ADDRESS_INFO", "countryCode (2 letters) and postalCode are required in plain text"
    return None


def identifier_key(ident: dict[str, Any]) -> str:
    name, value = next(iter(ident.items()))
    if name == "addressInfo":
        parts = (value["hashedFirstName"], value["hashedLastName"], value["countryCode"], value["postalCode"])
        return "address:" + "|".join(parts)
    prefix = {
        "hashedEmail": "email",
        "hashedPhoneNumber": "phone",
        "thirdPartyUserId": "crm",
        "mobileId": "mobile",
    }
    return f"{prefix[name]}:{value}"
