"""Klaviyo JSON:API: profile import bodies, pointer attribution, profile filters, errors (pure).

Facts (reference/destinations.md §9; developers.klaviyo.com reference pages, revision 2026-10-15):
`POST /api/profile-bulk-import-jobs` upserts up to 10,000 profiles / 5 MB and can add them to a list
(`relationships.lists`), answering 202 with a job (status queued → processing → complete); "Add
Profiles to List" / "Remove Profiles from List" take at most 1000 profile ids per call and answer 204;
`GET /api/profiles` pages at most 100 profiles and filters with `any(email,[...])`; errors are
`{"errors": [{"id", "status", "code", "title", "detail", "source": {"pointer"}}]}`; 429 carries
Retry-After. Unverified: that a bulk job refuses an invalid profile synchronously with a 400 whose
pointer names it (`/data/attributes/profiles/data/<i>/…`) — when no pointer names a sent profile the
400 is a RejectedError and the engine splits. Phone numbers must be E.164 (with `+`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from activation.destinations.base import (
    DestinationError,
    JSONValue,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
)
from activation.destinations.http import as_dict, as_list, excerpt, json_bytes, parse_retry_after
from activation.destinations.normalize import normalize_email, normalize_phone_e164
from activation.net import HttpResponse

MAX_PROFILES = 10_000
MAX_BYTES = 5_000_000
MAX_RELATIONSHIPS = 1000
PAGE_SIZE = 100  # profiles per GET page, and values per any(...) filter
MAX_EXTERNAL_ID = 255
_POINTER = re.compile(r"^/data/attributes/profiles/data/(\d+)(?:/|$)")

Profile = dict[str, JSONValue]


def profile_of(member: Member, *, external_id: bool) -> Profile | None:
    """Email (trimmed, lower-cased) and/or E.164 phone; None when the member has neither."""
    attrs: Profile = {}
    emails = [e for e in map(normalize_email, member.values("email")) if e]
    phones = [p for p in map(normalize_phone_e164, member.values("phone")) if p]
    if emails:
        attrs["email"] = emails[0]
    if phones:
        attrs["phone_number"] = phones[0]
    if not attrs:
        return None
    user_ids = member.values("user_id")
    if external_id and user_ids and len(user_ids[0].strip()) <= MAX_EXTERNAL_ID:
        attrs["external_id"] = user_ids[0].strip()
    first = member.first("first_name", "first_name", "firstName")
    last = member.first("last_name", "last_name", "lastName")
    if first:
        attrs["first_name"] = first.strip()
    if last:
        attrs["last_name"] = last.strip()
    return attrs


def import_body(list_id: str, profiles: Sequence[Profile]) -> dict[str, object]:
    return {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": [{"type": "profile", "attributes": p} for p in profiles]}},
            "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}},
        }
    }


def split_profiles(
    list_id: str, profiles: Sequence[Profile], max_count: int = MAX_PROFILES, max_bytes: int = MAX_BYTES
) -> Iterator[list[Profile]]:
    empty = len(json_bytes(import_body(list_id, [])))
    part: list[Profile] = []
    size = empty
    for profile in profiles:
        grow = len(json_bytes({"type": "profile", "attributes": profile})) + 1
        if part and (len(part) >= max_count or size + grow > max_bytes):
            yield part
            part, size = [], empty
        part.append(profile)
        size += grow
    if part:
        yield part


def refused_indexes(body: object, sent: int) -> dict[int, str]:
    """Index of each sent profile a 400's `source.pointer` names → the error detail."""
    found: dict[int, str] = {}
    for error in map(as_dict, as_list(as_dict(body).get("errors"))):
        match = _POINTER.match(str(as_dict(error.get("source")).get("pointer", "")))
        if match and int(match.group(1)) < sent:
            found[int(match.group(1))] = (
                f"klaviyo {excerpt(error.get('code'))}: {excerpt(error.get('detail'))}"
            )
    return found


def filter_expression(field: str, values: Sequence[str]) -> str | None:
    """`any(field,["a","b"])`; None when a value cannot be quoted safely (contains `"` or `\\`)."""
    if any('"' in v or "\\" in v for v in values):
        return None
    return f"any({field},[" + ",".join(f'"{v}"' for v in values) + "])"


def profile_ids(body: object) -> list[str]:
    """Profile ids of one GET /api/profiles page (several profiles may share an address)."""
    return [
        str(i["id"]) for i in map(as_dict, as_list(as_dict(body).get("data"))) if isinstance(i.get("id"), str)
    ]


def next_page(body: object) -> str | None:
    link = as_dict(as_dict(body).get("links")).get("next")
    return link if isinstance(link, str) and link else None


def relationship_body(ids: Sequence[str]) -> dict[str, object]:
    return {"data": [{"type": "profile", "id": i} for i in ids]}


def deletion_body(field: str, value: str) -> dict[str, object]:
    profile = {"data": {"type": "profile", "attributes": {field: value}}}
    return {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": profile}}}


def classify_error(response: HttpResponse) -> DestinationError:
    first = as_dict((as_list(as_dict(response.json()).get("errors")) or [{}])[0])
    reason = f"klaviyo HTTP {response.status} {excerpt(first.get('code'))}: {excerpt(first.get('detail'))}"
    if response.status == 429 or response.status >= 500:
        return RetryableError(reason, parse_retry_after(response.headers.get("retry-after")))
    if response.status in (401, 403):
        return PermanentError(f"{reason} (private API key rejected or lacks the lists/profiles scopes)")
    if response.status in (400, 413):
        return RejectedError(reason)
    return PermanentError(reason)
