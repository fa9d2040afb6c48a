"""Typed columns taken from a Segment `context` (the `events` table's context_* family).

This runs for every event, so it is written for speed: plain dict lookups, a type check before
any conversion, and empty values left out (JSONEachRow fills column defaults).
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_TEXT = 2048
_EMPTY: dict[str, Any] = {}

# column name -> (context object, key) for the text columns
_TEXT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("library_name", "library", "name"), ("library_version", "library", "version"),
    ("page_url", "page", "url"), ("page_path", "page", "path"), ("page_referrer", "page", "referrer"),
    ("page_title", "page", "title"), ("page_search", "page", "search"),
    ("app_name", "app", "name"), ("app_version", "app", "version"), ("app_build", "app", "build"),
    ("app_namespace", "app", "namespace"),
    ("device_id", "device", "id"), ("advertising_id", "device", "advertisingId"),
    ("device_manufacturer", "device", "manufacturer"), ("device_model", "device", "model"),
    ("device_name", "device", "name"), ("device_type", "device", "type"),
    ("os_name", "os", "name"), ("os_version", "os", "version"), ("network_carrier", "network", "carrier"),
)  # fmt: skip
_TOP_TEXT = (("ip", "ip"), ("channel", "channel"), ("locale", "locale"), ("timezone", "timezone"),
             ("user_agent", "userAgent"))  # fmt: skip
# the text columns grouped by context object, so an absent object costs one lookup
_OBJECT_TEXT: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = tuple(
    (name, tuple((column, key) for column, obj, key in _TEXT_COLUMNS if obj == name))
    for name in dict.fromkeys(obj for _, obj, _ in _TEXT_COLUMNS)
)
_FLAGS = (("ad_tracking_enabled", "device", "adTrackingEnabled"), ("network_wifi", "network", "wifi"),
          ("network_cellular", "network", "cellular"))  # fmt: skip


def object_at(context: dict[str, Any], key: str) -> dict[str, Any]:
    """`context[key]` if it is an object, else an empty dict."""
    value = context.get(key)
    return value if type(value) is dict else _EMPTY


def _text(value: Any) -> str:
    if type(value) is str:
        return value[:MAX_TEXT]
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)[:MAX_TEXT]


def _number(value: Any, kind: type[int] | type[float]) -> int | float:
    try:
        number = kind(value) if value is not None and not isinstance(value, bool) else 0
    except (TypeError, ValueError, OverflowError):
        return 0
    if kind is int and not 0 <= number <= 0xFFFFFFFF:
        return 0
    return number


def context_columns(context: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, key in _TOP_TEXT:
        value = context.get(key)
        if value:
            out[column] = _text(value)
    for name, columns in _OBJECT_TEXT:
        obj = context.get(name)
        if type(obj) is dict and obj:
            for column, key in columns:
                value = obj.get(key)
                if value:
                    out[column] = _text(value)
    for column, name, key in _FLAGS:
        value = object_at(context, name).get(key)
        if value is not None:
            out[column] = 1 if value else 0
    screen = context.get("screen")
    if type(screen) is dict:
        out["screen_width"] = _number(screen.get("width"), int)
        out["screen_height"] = _number(screen.get("height"), int)
        out["screen_density"] = _number(screen.get("density"), float)
    consent = object_at(context, "consent").get("categoryPreferences")
    if type(consent) is dict:
        out["consent"] = orjson.dumps(consent).decode()[:MAX_TEXT]
    return out


# Every column the collector may write into `events` (a row leaves out empty ones). A test checks
# this equals the migrated table, and that every built row stays inside it.
ENRICHMENT_COLUMNS = (
    "ua_browser", "ua_browser_version", "ua_os", "ua_os_version", "ua_device_type", "ua_device_brand",
    "ua_device_model", "is_bot", "geo_country", "geo_region", "geo_city", "geo_postal_code", "geo_timezone",
    "geo_latitude", "geo_longitude", "geo_asn", "geo_as_org", "utm_source", "utm_medium", "utm_campaign",
    "utm_term", "utm_content", "click_id_type", "click_id", "referrer_domain", "referrer_medium",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "source_id", "message_id", "type", "event", "name", "category", "user_id", "anonymous_id", "group_id",
    "previous_id", "timestamp", "original_timestamp", "sent_at", "received_at", "timestamp_clamped",
    "properties", "traits", "context", "integrations", "raw", "retention_days", "ingest_id",
)  # fmt: skip
EVENT_COLUMNS = (
    *MESSAGE_COLUMNS,
    *(c for c, _ in _TOP_TEXT),
    *(c for c, _, _ in _TEXT_COLUMNS),
    *(c for c, _, _ in _FLAGS),
    "screen_width", "screen_height", "screen_density", "consent",
    *ENRICHMENT_COLUMNS,
)  # fmt: skip
