"""LinkedIn Matched Audiences (DMP segment users): elements, per-element statuses, errors (pure).

Facts (learn.microsoft.com/linkedin/marketing/matched-audiences/create-and-manage-segment-users;
[SEG] linkedin-audiences api.ts, updateAudience/functions.ts, updateCompanyAudience/functions.ts and
types.ts at 970a17e; [RS] linkedin_audience config.ts/transform.ts):
- `POST /rest/dmpSegments/{id}/users` with `X-RestLi-Method: BATCH_CREATE`,
  `X-Restli-Protocol-Version: 2.0.0`, `LinkedIn-Version: YYYYMM` ([SEG] 202604, [RS] 202603) and
  `Authorization: Bearer`; body `{"elements": [{"action": "ADD" | "REMOVE", "userIds": [{"idType",
  "idValue"}], "firstName", "lastName", ...}]}`; idType SHA256_EMAIL, SHA512_EMAIL or GOOGLE_AID.
- The answer to a well-formed batch is HTTP 200 with one result per element, in request order:
  `{"elements": [{"status": 201}, {"status": 400, "error": {"message": ...}}]}` ([SEG] reads
  `elements[i].status` and `.error.message` and fails only that element).
- Email: all whitespace removed, lower-cased, then SHA-256 hex ([RS]). GOOGLE_AID is sent plain.
- Up to 5000 elements per call ([RS] MAX_BATCH_SIZE; LinkedIn's page states no figure).
- Throttling: 429; the DMP streaming APIs have a one-minute limit per member on top of daily app
  limits (LinkedIn page above), so without Retry-After we wait 60 s.
- Tokens: 401 → refresh with `grant_type=refresh_token` at https://www.linkedin.com/oauth/v2/accessToken
  (form client_id, client_secret, refresh_token; [SEG] index.ts refreshAccessToken).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

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

MAX_ELEMENTS = 5000
THROTTLE_WAIT_S = 60.0
PROTOCOL_VERSION = "2.0.0"
_SPACES = re.compile(r"\s+")
EMAIL_ID_TYPES = {"SHA256": "SHA256_EMAIL", "SHA512": "SHA512_EMAIL"}


@dataclass(frozen=True)
class Element:
    member: Member
    body: dict[str, JSONValue]


def normalize_linkedin_email(raw: str) -> str | None:
    return normalize_email(_SPACES.sub("", raw))


def email_digest(email: str, hashing: str) -> str:
    algorithm = hashlib.sha512 if hashing == "SHA512" else hashlib.sha256
    return algorithm(email.encode("utf-8")).hexdigest()


def user_ids(member: Member, *, hashing: str, send_google_aid: bool) -> list[dict[str, JSONValue]]:
    ids: list[dict[str, JSONValue]] = []
    emails = list(dict.fromkeys(e for e in map(normalize_linkedin_email, member.values("email")) if e))
    ids += [{"idType": EMAIL_ID_TYPES[hashing], "idValue": email_digest(e, hashing)} for e in emails]
    if send_google_aid:
        ids += [{"idType": "GOOGLE_AID", "idValue": v.strip()} for v in member.values("advertising_id")]
    return ids


def element(member: Member, action: str, *, hashing: str, send_google_aid: bool) -> Element | None:
    """One element per member with all its ids, plus plain first/last name to help matching."""
    ids = user_ids(member, hashing=hashing, send_google_aid=send_google_aid)
    if not ids:
        return None
    body: dict[str, JSONValue] = {"action": action, "userIds": list(ids)}
    for field, sources in (
        ("firstName", ("first_name", "firstName")),
        ("lastName", ("last_name", "lastName")),
    ):
        value = member.first(sources[0], *sources)
        if value:
            body[field] = value.strip()
    return Element(member, body)


def element_failures(body: object, sent: Sequence[Element]) -> list[RecordFailure]:
    """Per-element statuses, in request order: non-2xx → that member fails (429/5xx retryable); a
    missing result is a retryable failure too (LinkedIn did not say it applied the element)."""
    results = as_list(as_dict(body).get("elements"))
    failures = []
    for index, item in enumerate(sent):
        result = as_dict(results[index]) if index < len(results) else {}
        status = result.get("status")
        if isinstance(status, int) and 200 <= status < 300:
            continue
        error = as_dict(result.get("error"))
        message = excerpt(error.get("message") or result.get("message") or "no result for this element")
        permanent = isinstance(status, int) and status < 500 and status != 429
        failures.append(RecordFailure(item.member.profile_id, f"linkedin {status}: {message}", permanent))
    return failures


def classify_error(response: HttpResponse, *, records: bool) -> DestinationError:
    body = as_dict(response.json())
    code = body.get("code") or body.get("serviceErrorCode")
    reason = f"linkedin HTTP {response.status} {excerpt(code)}: {excerpt(body.get('message'))}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if response.status == 401:
        return AuthExpiredError(reason)
    if response.status == 429:
        return RetryableError(reason, retry_after if retry_after is not None else THROTTLE_WAIT_S)
    if response.status >= 500 or response.status in (408, 409):
        return RetryableError(reason, retry_after)
    if records and response.status in (400, 413, 422):
        return RejectedError(reason)
    return PermanentError(reason)
