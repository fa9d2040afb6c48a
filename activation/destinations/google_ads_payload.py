"""Google Ads Customer Match: identifier building, operation chunking and response reading (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    AuthExpiredError,
    DestinationError,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
)
from activation.destinations.http import as_dict, as_list, excerpt, parse_retry_after
from activation.destinations.normalize import (
    canonical_gmail,
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone_e164,
    sha256_hex,
)
from activation.net import HttpResponse

IDENTIFIERS_PER_OPERATION = 20
MAX_IDENTIFIERS_PER_REQUEST = 100_000
RETRYABLE_CODES = frozenset(
    {"CONCURRENT_MODIFICATION", "RESOURCE_EXHAUSTED", "RESOURCE_TEMPORARILY_EXHAUSTED"}
)
RETRYABLE_KINDS = frozenset({"internalError", "quotaError"})
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")

Identifier = dict[str, object]


@dataclass(frozen=True)
class Operation:
    profile_id: str
    kind: str  # "create" | "remove"
    identifiers: tuple[Identifier, ...]

    def to_json(self) -> dict[str, object]:
        return {self.kind: {"userIdentifiers": list(self.identifiers)}}


def contact_identifiers(member: Member, *, gmail_rule: bool) -> list[Identifier]:
    """hashedEmail / hashedPhoneNumber / addressInfo objects: one oneof field each, per Google's rules."""
    found: list[Identifier] = []
    for raw in member.values("email"):
        email = normalize_email(raw)
        if email:
            found.append({"hashedEmail": sha256_hex(canonical_gmail(email) if gmail_rule else email)})
    for raw in member.values("phone"):
        phone = normalize_phone_e164(raw)
        if phone:
            found.append({"hashedPhoneNumber": sha256_hex(phone)})
    address = address_info(member)
    if address is not None:
        found.append({"addressInfo": address})
    return _dedupe(found)


def address_info(member: Member) -> dict[str, str] | None:
    """Names hashed; country code and postal code in plain text. All four parts or nothing."""
    first = normalize_name(member.first("first_name", "firstName", "first_name") or "")
    last = normalize_name(member.first("last_name", "lastName", "last_name") or "")
    country = normalize_country(member.first("country", "country") or "")
    postal = (member.first("zip", "postal_code", "postalCode") or "").strip()
    if not (first and last and country and postal):
        return None
    return {
        "hashedFirstName": sha256_hex(first),
        "hashedLastName": sha256_hex(last),
        "countryCode": country,
        "postalCode": postal,
    }


def member_identifiers(member: Member, upload_key_type: str, *, gmail_rule: bool) -> list[Identifier]:
    if upload_key_type == "CRM_ID":
        return _dedupe([{"thirdPartyUserId": v.strip()} for v in member.values("user_id")])
    if upload_key_type == "MOBILE_ADVERTISING_ID":
        return _dedupe([{"mobileId": v.strip()} for v in member.values("advertising_id")])
    return contact_identifiers(member, gmail_rule=gmail_rule)


def build_operations(
    members: Sequence[Member], kind: str, upload_key_type: str, *, gmail_rule: bool
) -> tuple[list[Operation], list[str]]:
    """Operations (≤ 20 identifiers each, one user per operation) and the profile ids with none."""
    operations: list[Operation] = []
    unmatchable: list[str] = []
    for member in members:
        identifiers = member_identifiers(member, upload_key_type, gmail_rule=gmail_rule)
        if not identifiers:
            unmatchable.append(member.profile_id)
        for start in range(0, len(identifiers), IDENTIFIERS_PER_OPERATION):
            chunk = tuple(identifiers[start : start + IDENTIFIERS_PER_OPERATION])
            operations.append(Operation(member.profile_id, kind, chunk))
    return operations, unmatchable


def chunk_operations(
    operations: Sequence[Operation], identifiers_per_request: int
) -> Iterator[list[Operation]]:
    """Requests of at most `identifiers_per_request` identifiers (Google's hard cap is 100,000)."""
    limit = min(identifiers_per_request, MAX_IDENTIFIERS_PER_REQUEST)
    chunk: list[Operation] = []
    count = 0
    for op in operations:
        if chunk and count + len(op.identifiers) > limit:
            yield chunk
            chunk, count = [], 0
        chunk.append(op)
        count += len(op.identifiers)
    if chunk:
        yield chunk


def add_operations_body(operations: Sequence[Operation]) -> dict[str, object]:
    return {"enablePartialFailure": True, "operations": [op.to_json() for op in operations]}


def create_job_body(user_list: str, ad_user_data: str, ad_personalization: str) -> dict[str, object]:
    metadata = {
        "userList": user_list,
        "consent": {"adUserData": ad_user_data, "adPersonalization": ad_personalization},
    }
    return {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata}}


@dataclass(frozen=True)
class AdsError:
    kind: str  # e.g. "databaseError"
    code: str  # e.g. "CONCURRENT_MODIFICATION"
    message: str
    operation_index: int | None
    retry_delay_s: float | None

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES or self.kind in RETRYABLE_KINDS


def read_errors(status: object) -> list[AdsError]:
    """GoogleAdsFailure errors inside a google.rpc.Status (`error` or `partialFailureError`)."""
    found: list[AdsError] = []
    for detail in as_list(as_dict(status).get("details")):
        retry_info = _duration(as_dict(detail).get("retryDelay"))
        for err in as_list(as_dict(detail).get("errors")):
            found.append(_read_error(as_dict(err), retry_info))
    return found


def _read_error(err: dict[str, object], retry_info: float | None) -> AdsError:
    code_obj = as_dict(err.get("errorCode"))
    kind, code = next(iter(code_obj.items()), ("unknown", "UNKNOWN"))
    quota = as_dict(as_dict(err.get("details")).get("quotaErrorDetails"))
    index = None
    for element in as_list(as_dict(err.get("location")).get("fieldPathElements")):
        element_dict = as_dict(element)
        if element_dict.get("fieldName") == "operations" and isinstance(element_dict.get("index"), int):
            index = int(str(element_dict["index"]))
            break
    delay = _duration(quota.get("retryDelay")) or retry_info
    return AdsError(str(kind), str(code), excerpt(err.get("message")), index, delay)


def _duration(value: object) -> float | None:
    match = _DURATION.match(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def classify_error(response: HttpResponse) -> DestinationError:
    """The error for a non-2xx Google Ads response (CONCURRENT_MODIFICATION is retryable)."""
    status = as_dict(as_dict(response.json()).get("error"))
    errors = read_errors(status)
    codes = ",".join(f"{e.kind}.{e.code}" for e in errors) or str(status.get("status", ""))
    reason = f"google_ads HTTP {response.status} {codes}: {excerpt(status.get('message'))}"
    if response.status == 401:
        return AuthExpiredError(reason)
    delays = [e.retry_delay_s for e in errors if e.retry_delay_s is not None]
    retry_after = delays[0] if delays else parse_retry_after(response.headers.get("retry-after"))
    if response.status in (429, 408) or response.status >= 500 or any(e.retryable for e in errors):
        return RetryableError(reason, retry_after)
    if any(e.operation_index is not None for e in errors):
        return RejectedError(reason)  # located at operations[i]: a record, not the destination
    return PermanentError(reason)


def partial_failures(body: object) -> list[AdsError]:
    """Per-operation errors from a 200 response with `partialFailureError` (code != 0)."""
    failure = as_dict(as_dict(body).get("partialFailureError"))
    if not failure or failure.get("code", 0) == 0:
        return []
    return read_errors(failure)


def _dedupe(identifiers: list[Identifier]) -> list[Identifier]:
    seen: set[str] = set()
    unique: list[Identifier] = []
    for ident in identifiers:
        key = repr(sorted(ident.items()))
        if key not in seen:
            seen.add(key)
            unique.append(ident)
    return unique
