"""Payloads shaped like what the mobile SDKs send (field names and nesting taken from their public
source: analytics-kotlin, analytics-swift, analytics-react-native, RudderStack Android and iOS).

Each entry: the path the SDK posts to, its headers, whether it gzips, and a batch of events.
"""

from __future__ import annotations

from typing import Any

SENT_AT = "2026-11-22T10:00:05.000Z"


def _kotlin_context() -> dict[str, Any]:
    return {
        "app": {"name": "Shop", "version": "3.4.1", "namespace": "com.example.shop", "build": "341"},
        "device": {
            "id": "b2f4c1d0e9a87f65",
            "manufacturer": "Google",
            "model": "Pixel 8",
            "name": "shiba",
            "type": "android",
            "adTrackingEnabled": True,
            "advertisingId": "38400000-8cf0-11bd-b23e-10b96e40000d",
        },
        "library": {"name": "analytics-kotlin", "version": "1.16.3"},
        "os": {"name": "Android", "version": "14"},
        "screen": {"density": 2.625, "height": 2400, "width": 1080},
        "network": {"wifi": True, "carrier": "T-Mobile", "bluetooth": False, "cellular": False},
        "locale": "en-US",
        "userAgent": "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UD1A.230803.041)",
        "timezone": "America/New_York",
        "instanceId": "6d3f6a8e-1c2b-4c1e-9a63-0b8d1f1c2a11",
    }


def _swift_context() -> dict[str, Any]:
    return {
        "app": {"name": "Shop", "version": "3.4.0", "namespace": "com.example.shop", "build": "340"},
        "device": {
            "id": "F1C5D3E2-4B6A-4E8F-9D21-3C5B7A9E1F02",
            "manufacturer": "Apple",
            "model": "iPhone15,2",
            "name": "iPhone",
            "type": "ios",
            "adTrackingEnabled": False,
            "advertisingId": "00000000-0000-0000-0000-000000000000",
        },
        "library": {"name": "analytics-swift", "version": "1.7.3"},
        "os": {"name": "iOS", "version": "17.5.1"},
        "screen": {"width": 393, "height": 852},
        "network": {"wifi": False, "cellular": True},
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "instanceId": "0E9A4C5D-2B1F-4E3A-8C7D-6F5E4D3C2B1A",
    }


def _react_native_context() -> dict[str, Any]:
    return {
        "app": {"name": "Shop", "version": "2.0.0", "namespace": "com.example.rn", "build": "200"},
        "device": {
            "id": "rn-device-7781",
            "manufacturer": "samsung",
            "model": "SM-S918B",
            "name": "dm3q",
            "type": "android",
            "advertisingId": "6f1c2a3b-4d5e-6f70-8192-a3b4c5d6e7f8",
            "adTrackingEnabled": True,
        },
        "library": {"name": "@segment/analytics-react-native", "version": "2.19.2"},
        "os": {"name": "Android", "version": "13"},
        "screen": {"width": 1080, "height": 2340, "density": 3},
        "network": {"wifi": True, "cellular": False},
        "locale": "fr-FR",
        "timezone": "Europe/Paris",
        "instanceId": "3f9a0b1c-2d3e-4f50-6172-8394a5b6c7d8",
    }


def _rudder_android_context() -> dict[str, Any]:
    return {
        "app": {"build": "512", "name": "Shop", "namespace": "com.example.shop", "version": "5.1.2"},
        "device": {
            "id": "a1b2c3d4e5f60718",
            "manufacturer": "OnePlus",
            "model": "CPH2449",
            "name": "OP5913L1",
            "type": "Android",
            "advertisingId": "9a8b7c6d-5e4f-3a2b-1c0d-9e8f7a6b5c4d",
            "adTrackingEnabled": True,
        },
        "library": {"name": "com.rudderstack.android.sdk.core", "version": "1.25.1"},
        "os": {"name": "Android", "version": "13"},
        "screen": {"density": 420, "width": 1080, "height": 2412},
        "network": {"carrier": "Vodafone", "wifi": True, "bluetooth": False, "cellular": True},
        "locale": "en-GB",
        "timezone": "Europe/London",
        "userAgent": "Dalvik/2.1.0 (Linux; U; Android 13; CPH2449 Build/TP1A.220905.001)",
        "traits": {"anonymousId": "a1b2c3d4e5f60718"},
    }


def _rudder_ios_context() -> dict[str, Any]:
    return {
        "app": {"build": "77", "name": "Shop", "namespace": "com.example.shop", "version": "7.7.0"},
        "device": {
            "id": "7C1E2D3F-4A5B-6C7D-8E9F-0A1B2C3D4E5F",
            "manufacturer": "Apple",
            "model": "iPhone",
            "name": "iPhone",
            "type": "iOS",
            "attTrackingStatus": 3,
            "advertisingId": "5D4C3B2A-1F0E-4D9C-8B7A-6F5E4D3C2B1A",
            "adTrackingEnabled": True,
        },
        "library": {"name": "rudder-ios-library", "version": "1.29.0"},
        "os": {"name": "iOS", "version": "17.4"},
        "screen": {"density": 3, "width": 430, "height": 932},
        "network": {"carrier": "AT&T", "wifi": False, "cellular": True},
        "locale": "en-US",
        "timezone": "America/Chicago",
        "traits": {"anonymousId": "7C1E2D3F-4A5B-6C7D-8E9F-0A1B2C3D4E5F"},
    }


def _lifecycle(context: dict[str, Any], anonymous_id: str, prefix: str, rudder: bool) -> list[dict[str, Any]]:
    app = context["app"]
    base = {
        "anonymousId": anonymous_id,
        "context": context,
        "integrations": {},
        "originalTimestamp": "2026-11-22T10:00:00.000Z",
    }
    if rudder:
        base |= {"channel": "mobile", "rudderId": f"{prefix}-rudder-id"}
    return [
        {
            **base,
            "type": "track",
            "event": "Application Installed",
            "messageId": f"{prefix}-1",
            "properties": {"version": app["version"], "build": app["build"]},
        },
        {
            **base,
            "type": "track",
            "event": "Application Opened",
            "messageId": f"{prefix}-2",
            "properties": {"from_background": False, "version": app["version"], "build": app["build"]},
        },
        {
            **base,
            "type": "screen",
            "name": "Home",
            "messageId": f"{prefix}-3",
            "properties": {"name": "Home"},
        },
        {
            **base,
            "type": "identify",
            "userId": f"{prefix}-user",
            "messageId": f"{prefix}-4",
            "traits": {"email": f"{prefix}@example.com"},
        },
        {
            **base,
            "type": "track",
            "event": "Application Backgrounded",
            "messageId": f"{prefix}-5",
            "properties": {},
        },
    ]


# name: (path, headers, gzip, context factory, expected typed columns)
SDKS: dict[str, dict[str, Any]] = {
    "analytics-kotlin": {
        "path": "/v1/b",
        "gzip": True,
        "context": _kotlin_context,
        "rudder": False,
        "headers": {"Content-Type": "text/plain", "User-Agent": "analytics-kotlin/1.16.3"},
    },
    "analytics-swift": {
        "path": "/v1/b",
        "gzip": False,
        "context": _swift_context,
        "rudder": False,
        "headers": {"Content-Type": "application/json; charset=utf-8", "User-Agent": "analytics-ios/1.7.3"},
    },
    "analytics-react-native": {
        "path": "/v1/b",
        "gzip": False,
        "context": _react_native_context,
        "rudder": False,
        "headers": {"Content-Type": "application/json; charset=utf-8"},
    },
    "rudder-android": {
        "path": "/v1/batch",
        "gzip": True,
        "context": _rudder_android_context,
        "rudder": True,
        "headers": {"Content-Type": "application/json; charset=utf-8", "AnonymousId": "YTFi"},
    },
    "rudder-ios": {
        "path": "/v1/batch",
        "gzip": True,
        "context": _rudder_ios_context,
        "rudder": True,
        "headers": {"Content-Type": "application/json", "AnonymousId": "N0Mx"},
    },
}


def batch_for(name: str, write_key: str, prefix: str) -> dict[str, Any]:
    sdk = SDKS[name]
    context = sdk["context"]()
    body: dict[str, Any] = {
        "batch": _lifecycle(context, f"{prefix}-anon", prefix, sdk["rudder"]),
        "sentAt": SENT_AT,
    }
    if not sdk["rudder"]:
        body["writeKey"] = write_key  # Segment's mobile libraries send the key in the body too
    return body
