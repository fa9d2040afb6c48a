"""TikTok Custom Audiences (Marketing API v1.3 `segment/mapping`): hashed rows and envelope reading (pure).

Facts (reference/destinations.md §3; [RS] tiktok_audience config.ts/recordTransform.ts; [SEG]
tiktok-audiences api/index.ts; TikTok's return-code table, business-api.tiktok.com/portal/docs
?id=1737172488964097, as harvested by api-evangelist/tiktok-ads errors/tiktok-ads-error-codes.yml):
- `POST /open_api/v1.3/segment/mapping/`, header `Access-Token` (no `Bearer`), body `{"advertiser_ids",
  "action": "add" | "delete", "id_schema": [...], "batch_data": [[{id, audience_ids} | {}, ...], ...]}`:
  one inner array per user, positional against `id_schema`, `{}` for a missing identifier.
- Nearly every answer is HTTP 200; the envelope `{"code", "message", "request_id", "data"}` decides:
  0 ok, 20001 partial success (no per-row detail), 40100/40016 app rate limit and 40133 advertiser
  QPS limit (throttling), 40102/40104/40105/40106 token expired/empty/invalid/wrong user, 40000/40002
  parameter errors, 40001 no permission, 40007 object does not exist, 40011 too many ids, 5xxxx
  service errors. Marketing API tokens are long-term and have no refresh grant (40107: refresh
  tokens do not apply to them), so an auth code means the token must be replaced.
- Normalisation (TikTok help "list of supported IDs and formats"): email trimmed, lower-cased, any
  `+suffix` before `@` removed; phone E.164 (TikTok "recommends" E.164; its file page also accepts
  digits without `+` — we hash the `+` form, as [SEG] documents); IDFA/GAID trimmed and lower-cased.
  All SHA-256 hex.
- Rows per request: not documented for segment/mapping; we send at most 1000 (Tealium's connector
  batches 1000; [RS]/[SEG] send what the caller batched).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from activation.destinations.base import (
    AuthExpiredError,
    DestinationError,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
)
from activation.destinations.http import as_dict, excerpt, parse_retry_after
from activation.destinations.normalize import (
    normalize_email,
    normalize_madid,
    normalize_phone_e164,
    sha256_hex,
)
from activation.net import HttpResponse

MAX_USERS_PER_REQUEST = 1000
OK_CODES = frozenset({0, 20001})
THROTTLE_WAIT_S = {40100: 10.0, 40016: 10.0, 40133: 1.0}
AUTH_CODES = frozenset({40102, 40104, 40105, 40106})
CONTENT_CODES = frozenset({40000, 40002, 40011})
ADVERTISING_SCHEMAS = ("IDFA_SHA256", "AAID_SHA256")

Row = dict[str, str]


def normalize_tiktok_email(raw: str) -> str | None:
    email = normalize_email(raw)
    if email is None:
        return None
    local, _, domain = email.partition("@")
    local = local.split("+", 1)[0]
    return f"{local}@{domain}" if local else None


def member_rows(member: Member, advertising_schema: str) -> list[Row]:
    """Hashed ids by schema column; extra emails, phones and device ids become extra rows (users)."""
    columns = (
        ("EMAIL_SHA256", [normalize_tiktok_email(v) for v in member.values("email")]),
        ("PHONE_SHA256", [normalize_phone_e164(v) for v in member.values("phone")]),
        (advertising_schema, [normalize_madid(v) for v in member.values("advertising_id")]),
    )
    main: Row = {}
    extras: list[Row] = []
    for column, values in columns:
        hashes = list(dict.fromkeys(sha256_hex(v) for v in values if v))
        if hashes:
            main[column] = hashes[0]
            extras.extend({column: h} for h in hashes[1:])
    return [main, *extras] if main else []


def mapping_bodies(
    rows: Sequence[Row], advertiser_id: str, audience_id: str, action: str
) -> Iterator[dict[str, object]]:
    """Request bodies of at most 1000 users; `id_schema` holds the columns the chunk uses."""
    order = ("EMAIL_SHA256", "PHONE_SHA256", *ADVERTISING_SCHEMAS)
    for start in range(0, len(rows), MAX_USERS_PER_REQUEST):
        chunk = rows[start : start + MAX_USERS_PER_REQUEST]
        schema = [c for c in order if any(c in row for row in chunk)]
        batch_data = [
            [{"id": row[c], "audience_ids": [audience_id]} if c in row else {} for c in schema]
            for row in chunk
        ]
        yield {
            "advertiser_ids": [advertiser_id],
            "action": action,
            "id_schema": schema,
            "batch_data": batch_data,
        }


def classify(response: HttpResponse, *, records: bool) -> DestinationError | None:
    """None when the envelope says success; otherwise the error it amounts to (the code decides, not
    the HTTP status, which is 200 for almost every error)."""
    body = as_dict(response.json())
    code = body.get("code")
    if response.status < 300 and code in OK_CODES:
        return None
    reason = f"tiktok HTTP {response.status} code {code}: {excerpt(body.get('message'))}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if isinstance(code, int) and code in THROTTLE_WAIT_S:
        return RetryableError(reason, retry_after if retry_after is not None else THROTTLE_WAIT_S[code])
    if code in AUTH_CODES or response.status == 401:
        return AuthExpiredError(reason)
    if (isinstance(code, int) and code >= 50000) or response.status >= 500 or response.status == 429:
        return RetryableError(reason, retry_after)
    if records and code in CONTENT_CODES:
        return RejectedError(reason)
    return PermanentError(reason)
