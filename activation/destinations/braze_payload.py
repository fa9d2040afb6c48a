"""Braze /users/track: membership attribute objects, chunking, partial-failure reading, errors (pure).

Facts (reference/destinations.md §7; braze.com/docs/api/errors confirms the shapes): a request that
Braze accepts answers `{"message": "success", …}`, possibly with non-fatal `errors` — each
`{"type", "input_array": "attributes", "index": i}` names one object, and the others still apply; any
other `message` is fatal for the whole request. At most 75 objects combined across attributes, events
and purchases per request (the stricter, current limit); `/users/track` allows 3,000 requests per 3 s,
then 429 with X-RateLimit-Reset. `/users/delete` takes up to 50 ids of one kind (external_ids,
email_addresses, …) per request (braze.com/docs/api/endpoints/user_data/post_user_delete).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from activation.destinations.base import (
    DestinationError,
    JSONValue,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
)
from activation.destinations.http import as_dict, as_list, excerpt
from activation.destinations.normalize import normalize_email
from activation.destinations.ratelimit import reset_wait_s
from activation.net import HttpResponse

T = TypeVar("T")
MAX_OBJECTS = 75
MAX_DELETE = 50
MAX_KEY_CHARS = 255


def attribute_name(prefix: str, audience_key: str) -> str:
    """The boolean custom attribute holding membership of one audience (keys: ≤ 255 chars, no `$`)."""
    return f"{prefix}{audience_key}".lstrip("$")[:MAX_KEY_CHARS]


def identifier(member: Member, identify_by: str) -> dict[str, str] | None:
    """`external_id` from the user id (plain, as the app's SDK sets it), or a lower-cased email."""
    if identify_by == "email":
        emails = [e for e in map(normalize_email, member.values("email")) if e]
        return {"email": emails[0]} if emails else None
    user_ids = member.values("user_id")
    return {"external_id": user_ids[0].strip()} if user_ids else None


def attribute_object(
    ident: dict[str, str], name: str, member_now: bool, update_existing_only: bool
) -> dict[str, JSONValue]:
    """Entered → true, exited → false (false, not null: "is false" stays segmentable)."""
    return {**ident, name: member_now, "_update_existing_only": update_existing_only}


def chunks(objects: Sequence[T]) -> list[list[T]]:
    """Parts of at most MAX_OBJECTS (the combined per-request object limit)."""
    return [list(objects[i : i + MAX_OBJECTS]) for i in range(0, len(objects), MAX_OBJECTS)]


def failed_indexes(body: object) -> dict[int, str]:
    """Index into `attributes` → error type, for the non-fatal errors of an accepted request."""
    found: dict[int, str] = {}
    for error in map(as_dict, as_list(as_dict(body).get("errors"))):
        index = error.get("index")
        if error.get("input_array") == "attributes" and isinstance(index, int):
            found[index] = excerpt(error.get("type"))
    return found


def classify_error(response: HttpResponse, now_s: float | None = None) -> DestinationError:
    message = excerpt(as_dict(response.json()).get("message"))
    reason = f"braze HTTP {response.status}: {message}"
    if response.status == 429 or response.status >= 500:
        return RetryableError(reason, reset_wait_s(response.headers, now_s))
    if response.status in (401, 403):
        return PermanentError(f"{reason} (REST API key rejected or lacks users.track)")
    if response.status in (400, 413, 422):
        return RejectedError(reason)
    return PermanentError(reason)
