"""Meta Custom Audiences: per-field normalisation, positional rows and error reading (pure)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator, Mapping, Sequence

import orjson

from activation.destinations.base import (
    AuthExpiredError,
    DestinationError,
    Member,
    PermanentError,
    RetryableError,
)
from activation.destinations.http import as_dict, as_list, excerpt, parse_retry_after
from activation.destinations.normalize import (
    normalize_country,
    normalize_email,
    normalize_madid,
    normalize_meta_city,
    normalize_meta_name,
    normalize_meta_zip,
    normalize_phone_digits,
    sha256_hex,
    strip_punctuation,
)
from activation.net import HttpResponse

MAX_ROWS_PER_REQUEST = 10_000
COLUMN_ORDER = ("EMAIL", "PHONE", "FN", "LN", "ZIP", "CT", "ST", "COUNTRY", "MADID", "EXTERN_ID")
UNHASHED = frozenset({"MADID", "EXTERN_ID"})
MULTI_VALUED = (("EMAIL", "email"), ("PHONE", "phone"), ("MADID", "advertising_id"))
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2, 341, 368, 5000})
AUTH_CODES = frozenset({102, 190})

Row = dict[str, str]


def _state(raw: str) -> str | None:
    return strip_punctuation(raw).replace(" ", "") or None


def _country(raw: str) -> str | None:
    code = normalize_country(raw)
    return code.lower() if code else None


NORMALISERS: dict[str, Callable[[str], str | None]] = {
    "EMAIL": normalize_email,
    "PHONE": normalize_phone_digits,
    "FN": normalize_meta_name,
    "LN": normalize_meta_name,
    "ZIP": normalize_meta_zip,
    "CT": normalize_meta_city,
    "ST": _state,
    "COUNTRY": _country,
    "MADID": normalize_madid,
    "EXTERN_ID": lambda raw: raw.strip() or None,
}

SINGLE_SOURCES: dict[str, tuple[str, ...]] = {
    "FN": ("first_name", "firstName"),
    "LN": ("last_name", "lastName"),
    "ZIP": ("zip", "postal_code", "postalCode"),
    "CT": ("city", "city"),
    "ST": ("state", "state"),
    "COUNTRY": ("country", "country"),
}


def field_value(column: str, raw: str) -> str | None:
    """Normalised and (except MADID and EXTERN_ID) SHA-256 hashed value, or None if unusable."""
    value = NORMALISERS[column](raw)
    if value is None:
        return None
    return value if column in UNHASHED else sha256_hex(value)


def member_rows(member: Member, *, extern_id: bool) -> list[Row]:
    """One main row with every field, plus one row per extra email, phone or mobile id."""
    main: Row = {}
    extras: list[Row] = []
    for column, kind in MULTI_VALUED:
        values = _unique(field_value(column, raw) for raw in member.values(kind))
        if values:
            main[column] = values[0]
            extras.extend({column: v} for v in values[1:])
    for column, (kind, *traits) in SINGLE_SOURCES.items():
        raw = member.first(kind, *traits)
        value = field_value(column, raw) if raw else None
        if value:
            main[column] = value
    if extern_id and member.values("user_id"):
        main["EXTERN_ID"] = member.values("user_id")[0].strip()
    return [main, *extras] if main else []


def build_payloads(rows: Sequence[Row]) -> Iterator[dict[str, object]]:
    """`{"schema": [...], "data": [[...]]}` payloads of at most 10,000 rows; missing cells are ""."""
    for start in range(0, len(rows), MAX_ROWS_PER_REQUEST):
        chunk = rows[start : start + MAX_ROWS_PER_REQUEST]
        used = {column for row in chunk for column in row}
        schema = [c for c in COLUMN_ORDER if c in used]
        yield {"schema": schema, "data": [[row.get(c, "") for c in schema] for row in chunk]}


def appsecret_proof(app_secret: str, access_token: str) -> str:
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def regain_access_s(headers: Mapping[str, str]) -> float | None:
    """Largest `estimated_time_to_regain_access` (minutes) in X-Business-Use-Case-Usage, as seconds."""
    try:
        usage = orjson.loads(headers.get("x-business-use-case-usage", "") or "null")
    except orjson.JSONDecodeError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in as_dict(usage).values()
        for entry in map(as_dict, as_list(entries))
    ]
    found = [float(m) for m in minutes if isinstance(m, int | float) and m > 0]
    return max(found) * 60 if found else None


def classify_error(response: HttpResponse) -> DestinationError:
    """Graph errors are classified by `code`, not HTTP status: throttling arrives as 400 (code 4/17/…)."""
    error = as_dict(as_dict(response.json()).get("error"))
    code = error.get("code")
    subcode = error.get("error_subcode")
    reason = f"meta HTTP {response.status} code {code}/{subcode}: {excerpt(error.get('message'))}"
    if code in THROTTLE_CODES:
        retry_after = regain_access_s(response.headers) or parse_retry_after(
            response.headers.get("retry-after")
        )
        return RetryableError(reason, retry_after)
    if code in AUTH_CODES:
        return AuthExpiredError(reason)
    if code in TRANSIENT_CODES or error.get("is_transient") is True or response.status >= 500:
        return RetryableError(reason, parse_retry_after(response.headers.get("retry-after")))
    if not error and response.status == 429:
        return RetryableError(reason, parse_retry_after(response.headers.get("retry-after")))
    return PermanentError(reason)


def _unique(values: Iterator[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
