"""The thin I/O edge shared by destinations: one call helper and generic response classification."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from urllib.parse import urlencode

import orjson

from activation.destinations.base import AuthExpiredError, PermanentError, RejectedError, RetryableError
from activation.net import HttpClient, HttpResponse, TransportError, UnsafeDestination

CONTENT_REJECTED = frozenset({400, 413, 422})  # the request's content was refused: maybe one record
JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
FORM_HEADERS = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}


def json_bytes(payload: object) -> bytes:
    return orjson.dumps(payload)


def form_bytes(fields: Mapping[str, str]) -> bytes:
    return urlencode(dict(fields)).encode("ascii")


async def call(
    session: HttpClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout_s: float | None = None,
) -> HttpResponse:
    """One request; transport failures become RetryableError, unsafe targets PermanentError."""
    try:
        return await session.request(
            method, url, headers=headers, params=params, body=body, timeout_s=timeout_s
        )
    except TransportError as exc:
        raise RetryableError(f"transport: {exc}") from None
    except UnsafeDestination as exc:
        raise PermanentError(str(exc)) from None


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or unparseable."""
    if not value:
        return None
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)


def as_dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def excerpt(text: object, limit: int = 200) -> str:
    return str(text)[:limit] if text is not None else ""


def raise_for_generic(response: HttpResponse, what: str, now_s: float | None = None) -> None:
    """Generic HTTP semantics for platforms without a richer error shape."""
    status = response.status
    if status < 400:
        return
    retry_after = parse_retry_after(response.headers.get("retry-after"), now_s)
    if status in (408, 425, 429) or status >= 500:
        raise RetryableError(f"{what}: HTTP {status}", retry_after)
    if status == 401:
        raise AuthExpiredError(f"{what}: HTTP 401")
    if status in CONTENT_REJECTED:
        raise RejectedError(f"{what}: HTTP {status}")
    raise PermanentError(f"{what}: HTTP {status}")
