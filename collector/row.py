"""Typed columns taken from a Segment `context` (the `events` table's context_* family)."""

from __future__ import annotations

from typing import Any

import orjson

MAX_TEXT = 2048


def object_at(context: dict[str, Any], key: str) -> dict[str, Any]:
    """`context[key]` if it is an object, else an empty dict."""
    value = context.get(key)
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)[:MAX_TEXT]


def _flag(value: Any) -> int | None:
    return None if value is None else (1 if bool(value) else 0)


def _number(value: Any, kind: type[int] | type[float]) -> int | float:
    try:
        number = kind(value) if value is not None and not isinstance(value, bool) else 0
    except (TypeError, ValueError, OverflowError):
        return 0
    if kind is int and not 0 <= number <= 0xFFFFFFFF:
        return 0
    return number


def context_columns(context: dict[str, Any]) -> dict[str, Any]:
    library, page, app = object_at(context, "library"), object_at(context, "page"), object_at(context, "app")
    device, os_, network = (
        object_at(context, "device"),
        object_at(context, "os"),
        object_at(context, "network"),
    )
    screen = object_at(context, "screen")
    return {
        "ip": _text(context.get("ip")),
        "library_name": _text(library.get("name")),
        "library_version": _text(library.get("version")),
        "channel": _text(context.get("channel")),
        "locale": _text(context.get("locale")),
        "timezone": _text(context.get("timezone")),
        "user_agent": _text(context.get("userAgent")),
        "page_url": _text(page.get("url")),
        "page_path": _text(page.get("path")),
        "page_referrer": _text(page.get("referrer")),
        "page_title": _text(page.get("title")),
        "page_search": _text(page.get("search")),
        "app_name": _text(app.get("name")),
        "app_version": _text(app.get("version")),
        "app_build": _text(app.get("build")),
        "app_namespace": _text(app.get("namespace")),
        "device_id": _text(device.get("id")),
        "advertising_id": _text(device.get("advertisingId")),
        "ad_tracking_enabled": _flag(device.get("adTrackingEnabled")),
        "device_manufacturer": _text(device.get("manufacturer")),
        "device_model": _text(device.get("model")),
        "device_name": _text(device.get("name")),
        "device_type": _text(device.get("type")),
        "os_name": _text(os_.get("name")),
        "os_version": _text(os_.get("version")),
        "network_carrier": _text(network.get("carrier")),
        "network_wifi": _flag(network.get("wifi")),
        "network_cellular": _flag(network.get("cellular")),
        "screen_width": _number(screen.get("width"), int),
        "screen_height": _number(screen.get("height"), int),
        "screen_density": _number(screen.get("density"), float),
        "consent": _text(_consent(context)),
    }


def _consent(context: dict[str, Any]) -> str:
    consent = object_at(context, "consent").get("categoryPreferences")
    return orjson.dumps(consent).decode() if isinstance(consent, dict) else ""
