"""SendGrid Marketing Contacts: contact bodies, request splitting, 400 attribution, errors (pure).

Facts (reference/destinations.md §6; rate-limit headers confirmed on twilio.com's "Rate Limits" page,
search/emails on "Get Contacts by Emails"): `PUT /v3/marketing/contacts` takes at most 30,000 contacts
or 6 MB and answers 202 `{"job_id"}` (the import is asynchronous); one invalid email fails the whole
request with 400 `{"errors": [{"field", "message": "email '<x>' is not valid"}]}` (the message shape is
what Segment's sendgrid-audiences parses, not a documented contract: an error we cannot attribute makes
the request a RejectedError, which the engine splits). `POST /v3/marketing/contacts/search/emails`
takes at most 100 addresses, answers `{"result": {"<email>": {"contact": {"id", …}} | {"error"}}}`, and
404 when none match. Every response carries X-RateLimit-Limit/-Remaining/-Reset (Unix seconds); 429
when the refresh period's allowance is spent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from activation.destinations.base import (
    DestinationError,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
)
from activation.destinations.http import as_dict, as_list, excerpt, json_bytes
from activation.destinations.normalize import normalize_email
from activation.destinations.ratelimit import reset_wait_s
from activation.net import HttpResponse

MAX_CONTACTS = 30_000
MAX_BYTES = 6_000_000
SEARCH_CHUNK = 100  # documented maximum of search/emails
REMOVE_CHUNK = 100  # contact ids per list removal ([SEG] chunks 100; no documented maximum)
_QUOTED_EMAIL = re.compile(r"'([^']+@[^']+)'")
_CONTACT_INDEX = re.compile(r"contacts\[(\d+)\]")

Contact = dict[str, str]


def contact_of(member: Member) -> Contact | None:
    """Email is the only identifier sent: SendGrid requires every identifier a contact already has to
    be present on update, so adding phone or external ids here could lock later updates out."""
    emails = [e for e in map(normalize_email, member.values("email")) if e]
    if not emails:
        return None
    contact = {"email": emails[0]}
    first = member.first("first_name", "first_name", "firstName")
    last = member.first("last_name", "last_name", "lastName")
    if first:
        contact["first_name"] = first.strip()[:50]
    if last:
        contact["last_name"] = last.strip()[:50]
    return contact


def upsert_body(list_id: str, contacts: Sequence[Contact]) -> dict[str, object]:
    return {"list_ids": [list_id], "contacts": list(contacts)}


def split_contacts(
    list_id: str, contacts: Sequence[Contact], max_count: int = MAX_CONTACTS, max_bytes: int = MAX_BYTES
) -> Iterator[list[Contact]]:
    """Consecutive parts within both the count and the body-size limit."""
    part: list[Contact] = []
    size = len(json_bytes(upsert_body(list_id, [])))
    for contact in contacts:
        grow = len(json_bytes(contact)) + 1
        if part and (len(part) >= max_count or size + grow > max_bytes):
            yield part
            part, size = [], len(json_bytes(upsert_body(list_id, [])))
        part.append(contact)
        size += grow
    if part:
        yield part


def refused_emails(body: object, sent: Sequence[Contact]) -> dict[str, str]:
    """Emails a 400 names (quoted in the message, or by `contacts[i]` field index) → the message."""
    sent_emails = [c["email"] for c in sent]
    found: dict[str, str] = {}
    for error in map(as_dict, as_list(as_dict(body).get("errors"))):
        message = excerpt(error.get("message"))
        index = _CONTACT_INDEX.search(str(error.get("field") or ""))
        if index and int(index.group(1)) < len(sent_emails):
            found[sent_emails[int(index.group(1))]] = message
        for quoted in _QUOTED_EMAIL.findall(message):
            if quoted.strip().lower() in sent_emails:
                found[quoted.strip().lower()] = message
    return found


def search_ids(body: object) -> dict[str, str]:
    """Contact id by lower-cased email from search/emails; per-address errors are simply absent."""
    found = {}
    for email, entry in as_dict(as_dict(body).get("result")).items():
        contact_id = as_dict(as_dict(entry).get("contact")).get("id")
        if isinstance(contact_id, str) and contact_id:
            found[str(email).lower()] = contact_id
    return found


def classify_error(response: HttpResponse, now_s: float | None = None) -> DestinationError:
    errors = as_list(as_dict(response.json()).get("errors"))
    message = excerpt(as_dict(errors[0]).get("message")) if errors else ""
    reason = f"sendgrid HTTP {response.status}: {message}"
    if response.status == 429 or response.status >= 500:
        return RetryableError(reason, reset_wait_s(response.headers, now_s))
    if response.status in (401, 403):
        return PermanentError(f"{reason} (API key rejected or lacks the marketing scopes)")
    if response.status in (400, 413):
        return RejectedError(reason)
    return PermanentError(reason)
