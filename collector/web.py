"""Small GET endpoints of the collector: analytics.js settings, the tracking pixel, the tag."""

from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from collector.body import BodyError
from collector.http import HttpError, TrackingApp
from collector.ingest import Intake

STATIC = Path(__file__).parent / "static"
# The smallest transparent GIF: 1×1, one colour, transparent.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_PIXEL_HEADERS = {"Cache-Control": "no-store, max-age=0", "Content-Type": "image/gif"}


def settings_document(write_key: str, public_url: str) -> dict[str, Any]:
    """What analytics.js fetches from its CDN; `Segment.io` points its API at this collector."""
    url = urlsplit(public_url)
    enabled = {"__default": {"enabled": True, "integrations": {}}}
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{url.netloc}{url.path.rstrip('/')}/v1",
                "protocol": url.scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
                "maybeBundledConfigIds": {},
                "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
            }
        },
        "plan": {"track": enabled, "identify": enabled, "group": enabled},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    digest: str

    @classmethod
    def load(cls, path: Path) -> Asset:
        body = path.read_bytes() if path.exists() else b"/* magpie tag not built: run `make tag` */\n"
        digest = hashlib.sha256(body).hexdigest()[:16]
        return cls(body, gzip.compress(body, 9, mtime=0), f'"{digest}"', digest)


def serve_asset(request: Request, asset: Asset, immutable: bool) -> Response:
    cache = "public, max-age=31536000, immutable" if immutable else "public, max-age=300"
    headers = {
        "ETag": asset.etag,
        "Cache-Control": cache,
        "Vary": "Accept-Encoding",
        "Access-Control-Allow-Origin": "*",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    media = "application/javascript; charset=utf-8"
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(asset.gzipped, media_type=media, headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=media, headers=headers)


def _set_path(target: dict[str, Any], dotted: str, value: str) -> None:
    parts = [p for p in dotted.split(".") if p][:6]
    if not parts:
        return
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[parts[-1]] = value


def pixel_event(kind: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """Build a Segment message from query parameters (dotted keys nest: properties.plan=pro),
    or from `data=<base64 JSON>` when given."""
    event: dict[str, Any] = {"type": kind}
    for name, value in params:
        if name == "data":
            decoded = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            if isinstance(decoded, dict):
                event.update(decoded)
        elif name != "writeKey":
            _set_path(event, name, value)
    event["type"] = kind
    return event


async def pixel(request: Request, tracking: TrackingApp) -> Response:
    kind = request.path_params["kind"]
    if kind not in ("track", "page"):
        return JSONResponse({"error": {"code": "not_found", "message": "pixel kinds: track, page"}}, 404)
    try:
        source = await tracking.authorize(request.query_params.get("writeKey", ""), "")
        event = pixel_event(kind, list(request.query_params.multi_items()))
        facts = tracking.facts(request.scope, dict(request.headers.items()), source, browser=True)
        await tracking.durable(tracking.ingestor.intake(Intake(event, facts, kind)))
    except HttpError as exc:
        return Response(PIXEL, exc.status, headers={**_PIXEL_HEADERS, **exc.headers})
    except (BodyError, ValueError):
        return Response(PIXEL, 400, headers=_PIXEL_HEADERS)
    return Response(PIXEL, 200, headers=_PIXEL_HEADERS)
