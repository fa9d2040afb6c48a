"""Opaque cursors for keyset pagination: a base64url JSON list of the last row's sort key."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from activation.admin.errors import ApiError


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(raw: str | None, arity: int) -> list[Any] | None:
    if not raw:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not valid", {"cursor": "malformed"}) from None
    if not isinstance(key, list) or len(key) != arity:
        raise ApiError(400, "invalid_cursor", "cursor is not valid", {"cursor": "malformed"})
    return key
