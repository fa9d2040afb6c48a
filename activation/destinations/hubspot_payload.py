"""HubSpot CRM v3: upsert inputs, 207 multi-status reading and 429 policy handling (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    AuthExpiredError,
    DestinationError,
    Member,
    PermanentError,
    RecordFailure,
    RejectedError,
    RetryableError,
)
from activation.destinations.http import as_dict, as_list, excerpt, parse_retry_after
from activation.destinations.normalize import normalize_email, normalize_phone_e164
from activation.net import HttpResponse

MAX_BATCH = 100
POLICY_WINDOW_S = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}


@dataclass(frozen=True)
class Keyed:
    """A member with the value of the HubSpot unique property used to find its contact."""

    member: Member
    key: str


def member_key(member: Member, id_property: str) -> str | None:
    if id_property == "email":
        emails = [e for e in map(normalize_email, member.values("email")) if e]
        return emails[0] if emails else None
    user_ids = member.values("user_id")
    return user_ids[0].strip() if user_ids else None


def contact_properties(member: Member, key: str, id_property: str) -> dict[str, str]:
    props = {id_property: key}
    first = member.first("first_name", "firstName", "first_name")
    last = member.first("last_name", "lastName", "last_name")
    phones = [p for p in map(normalize_phone_e164, member.values("phone")) if p]
    if first:
        props["firstname"] = first.strip()
    if last:
        props["lastname"] = last.strip()
    if phones:
        props["phone"] = phones[0]
    return props


def upsert_body(keyed: Sequence[Keyed], id_property: str) -> dict[str, object]:
    """One input per distinct key; `objectWriteTraceId` = the key, so results map back to members."""
    inputs: dict[str, dict[str, object]] = {}
    for item in keyed:
        inputs.setdefault(
            item.key,
            {
                "idProperty": id_property,
                "id": item.key,
                "properties": contact_properties(item.member, item.key, id_property),
                "objectWriteTraceId": item.key,
            },
        )
    return {"inputs": list(inputs.values())}


def read_body(keys: Sequence[str], id_property: str) -> dict[str, object]:
    unique = list(dict.fromkeys(keys))
    return {"idProperty": id_property, "properties": [id_property], "inputs": [{"id": k} for k in unique]}


def upsert_outcome(body: object, keyed: Sequence[Keyed]) -> tuple[dict[str, str], list[RecordFailure]]:
    """Record ids by key, and failures correlated by objectWriteTraceId (never by position)."""
    ids: dict[str, str] = {}
    for result in map(as_dict, as_list(as_dict(body).get("results"))):
        trace, record_id = result.get("objectWriteTraceId"), result.get("id")
        if isinstance(trace, str) and record_id is not None:
            ids[trace] = str(record_id)
    errors: dict[str, str] = {}
    for error in map(as_dict, as_list(as_dict(body).get("errors"))):
        reason = f"{excerpt(error.get('category'))}: {excerpt(error.get('message'))}"
        for trace in as_list(as_dict(error.get("context")).get("objectWriteTraceId")):
            errors[str(trace)] = reason
    failures = []
    for item in keyed:
        if item.key in errors:
            failures.append(RecordFailure(item.member.profile_id, errors[item.key], permanent=True))
        elif item.key not in ids:
            failures.append(RecordFailure(item.member.profile_id, "hubspot: no result for input", False))
    return ids, failures


def read_outcome(body: object, id_property: str) -> dict[str, str]:
    """Record ids by key from batch/read; missing contacts (OBJECT_NOT_FOUND) are simply absent."""
    found: dict[str, str] = {}
    for result in map(as_dict, as_list(as_dict(body).get("results"))):
        key = as_dict(result.get("properties")).get(id_property)
        if key is not None and result.get("id") is not None:
            found[str(key).lower() if id_property == "email" else str(key)] = str(result["id"])
    return found


def classify_error(
    response: HttpResponse, now: dt.datetime | None = None, *, records: bool = False
) -> DestinationError:
    """`records`: the call carried contact records (upsert), so a 400 VALIDATION_ERROR may be one
    record's fault (HubSpot refuses the whole batch for one invalid property value)."""
    body = as_dict(response.json())
    reason = (
        f"hubspot HTTP {response.status} {excerpt(body.get('category') or body.get('errorType'))}: "
        + excerpt(body.get("message"))
    )
    if response.status == 401:
        return AuthExpiredError(reason)
    if response.status == 429:
        return RetryableError(reason, rate_limit_wait_s(response, now))
    if response.status >= 500:
        return RetryableError(reason, parse_retry_after(response.headers.get("retry-after")))
    if records and response.status == 400 and body.get("category") == "VALIDATION_ERROR":
        return RejectedError(reason)
    return PermanentError(reason)


def rate_limit_wait_s(response: HttpResponse, now: dt.datetime | None = None) -> float:
    """Retry-After when given; else the policy window: 10 s rolling, or until the daily reset."""
    header = parse_retry_after(response.headers.get("retry-after"))
    if header is not None:
        return header
    policy = str(as_dict(response.json()).get("policyName", "")).upper()
    if policy == "DAILY":
        moment = now or dt.datetime.now(dt.UTC)
        midnight = (moment + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - moment).total_seconds()
    return POLICY_WINDOW_S.get(policy, 10.0)
