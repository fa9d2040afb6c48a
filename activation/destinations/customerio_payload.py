"""Customer.io Track API: identifiers, v2 batch entries, 207 reading and error classification (pure).

Facts (checked against Customer.io's Track API reference, docs.customer.io/api/track, and the manual
segment operation it documents; [RS] customerio_audience config.ts/utils.ts agrees):
- Hosts: https://track.customer.io (US) and https://track-eu.customer.io (EU); an EU account whose
  traffic goes to the US host is redirected through US servers, a US account on the EU host fails.
- Auth: HTTP Basic `site_id:api_key`.
- Manual segments: `POST /api/v1/segments/{id}/add_customers` and `/remove_customers`, body
  `{"ids": [...]}`, query `id_type` = id | email | cio_id (default id), "limited to 1000 customer IDs
  per request"; ids that belong to nobody are ignored, so people are identified first.
- v2 batch: `POST /api/v2/batch` `{"batch": [{"type": "person", "identifiers": {...}, "action": ...}]}`,
  500 KB per request and 32 KB per entry; per-entry failures are HTTP 207 with
  `errors[{batch_index, reason, field, message}]` ([RS] customerio networkHandler.ts).
- Throttling is 429 (fair use around 100 requests/s; the figure is not a documented guarantee).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from activation.destinations.base import (
    AuthExpiredError,
    DestinationError,
    JSONValue,
    Member,
    PermanentError,
    RecordFailure,
    RejectedError,
    RetryableError,
)
from activation.destinations.http import as_dict, as_list, excerpt, parse_retry_after
from activation.destinations.normalize import normalize_email
from activation.net import HttpResponse

REGIONS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}
ID_TYPES = ("id", "email", "cio_id")
MAX_SEGMENT_IDS = 1000
MAX_BATCH_BYTES = 500_000
MAX_ENTRY_BYTES = 32_000
DEFAULT_THROTTLE_S = 1.0  # 429 without Retry-After: the fair-use limit is per second


@dataclass(frozen=True)
class Keyed:
    """A member with the value Customer.io knows it by (for the configured id_type)."""

    member: Member
    key: str


def member_key(member: Member, id_type: str) -> str | None:
    """`id` ← the user_id, `email` ← the trimmed lower-cased email, `cio_id` ← a stored cio_id."""
    if id_type == "email":
        emails = [e for e in map(normalize_email, member.values("email")) if e]
        return emails[0] if emails else None
    values = member.values("user_id" if id_type == "id" else "cio_id")
    return values[0].strip() if values else None


def keyed_members(members: Sequence[Member], id_type: str) -> tuple[list[Keyed], list[RecordFailure]]:
    keyed, failures = [], []
    for member in members:
        key = member_key(member, id_type)
        if key is None:
            failures.append(RecordFailure(member.profile_id, f"no_{id_type}", permanent=True))
        else:
            keyed.append(Keyed(member, key))
    return keyed, failures


def erase_targets(identifiers: Mapping[str, Sequence[str]]) -> list[str]:
    """Path identifiers for the v1 delete: ids as given, emails normalised, cio_ids prefixed `cio_`."""
    ids = [v.strip() for v in identifiers.get("user_id", ()) if v.strip()]
    emails = [e for e in map(normalize_email, identifiers.get("email", ())) if e]
    cio_ids = [v.strip() for v in identifiers.get("cio_id", ()) if v.strip()]
    cio = [v if v.startswith("cio_") else f"cio_{v}" for v in cio_ids]
    return list(dict.fromkeys([*ids, *emails, *cio]))


def person_attributes(member: Member) -> dict[str, JSONValue]:
    attributes: dict[str, JSONValue] = {}
    emails = [e for e in map(normalize_email, member.values("email")) if e]
    if emails:
        attributes["email"] = emails[0]
    for name, sources in (("first_name", ("firstName",)), ("last_name", ("lastName",))):
        value = member.first(name, name, *sources)
        if value:
            attributes[name] = value.strip()
    return attributes


def identify_entry(item: Keyed, id_type: str) -> dict[str, JSONValue]:
    entry: dict[str, JSONValue] = {"type": "person", "identifiers": {id_type: item.key}, "action": "identify"}
    attributes = person_attributes(item.member)
    if id_type == "email":
        attributes.pop("email", None)  # the identifier already is the email
    if attributes:
        entry["attributes"] = attributes
    return entry


def entry_size(entry: dict[str, JSONValue]) -> int:
    return len(orjson.dumps(entry))


def batch_chunks(entries: Sequence[dict[str, JSONValue]]) -> list[tuple[int, int]]:
    """[start, end) ranges whose `{"batch": [...]}` body stays under 500 KB (entries are ≤ 32 KB)."""
    chunks: list[tuple[int, int]] = []
    start, size = 0, len(b'{"batch":[]}')
    for index, entry in enumerate(entries):
        grown = size + entry_size(entry) + 1
        if index > start and grown > MAX_BATCH_BYTES:
            chunks.append((start, index))
            start, grown = index, len(b'{"batch":[]}') + entry_size(entry) + 1
        size = grown
    if start < len(entries):
        chunks.append((start, len(entries)))
    return chunks


def batch_errors(body: object, count: int) -> dict[int, str]:
    """207 `errors[].batch_index` → reason, for indexes inside a request of `count` entries."""
    errors: dict[int, str] = {}
    for error in map(as_dict, as_list(as_dict(body).get("errors"))):
        index = error.get("batch_index")
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count:
            parts = [excerpt(error[k]) for k in ("reason", "field", "message") if error.get(k) is not None]
            errors[index] = "customerio: " + (" ".join(parts) or "refused")
    return errors


def error_message(response: HttpResponse) -> str:
    """Track API errors: `{"meta": {"error": "..."}}` or `{"meta": {"errors": [...]}}`."""
    meta = as_dict(as_dict(response.json()).get("meta"))
    errors = as_list(meta.get("errors"))
    return excerpt(meta.get("error") or "; ".join(map(str, errors[:3])) or response.status)


def classify_error(response: HttpResponse, *, records: bool) -> DestinationError:
    """401: the key pair is wrong (Customer.io keys cannot be refreshed); 429/5xx: retry; 400/413 on a
    call carrying people: the content was refused, maybe by one of them."""
    reason = f"customerio HTTP {response.status}: {error_message(response)}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if response.status == 401:
        return AuthExpiredError(reason)
    if response.status == 429:
        return RetryableError(reason, retry_after if retry_after is not None else DEFAULT_THROTTLE_S)
    if response.status >= 500 or response.status == 408:
        return RetryableError(reason, retry_after)
    if records and response.status in (400, 413, 422):
        return RejectedError(reason)
    return PermanentError(reason)
